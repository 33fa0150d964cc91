"""Run many (possibly crashing) cases in batched child processes and pin crashes to cases.

Protocol between the harness and a worker (``sys.executable -c worker_code <dir> <timeout>``):

- ``<dir>/<i>.bin`` holds case ``i``'s bytes; ``<dir>/todo.txt`` lists the indices the
  worker must process, one per line, in order.
- Before case ``i`` the worker prints ``START <i>`` and flushes; after it, it prints
  ``RESULT <i> <ok|error> <one-line detail>`` and flushes.
- Any other stdout line is ignored (native code may print whatever it likes).

If the child dies (signal, non-zero exit, or no progress within ``timeout`` seconds),
the case that was started but not finished is blamed, and a new child resumes the batch
after it. Thousands of cases thus cost only a handful of interpreter start-ups, yet a
crash is still attributed to exactly one case.

``make_worker(body)`` builds conforming worker code from a snippet that defines
``run_case(data: bytes) -> str`` (return a detail string; raise to report an error).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

__all__ = ["CaseResult", "make_worker", "run_cases_in_subprocess", "summarize"]

OUTCOMES = ("ok", "error", "crash", "timeout", "lost")

_WORKER_TEMPLATE = """\
import faulthandler as _eh_faulthandler
import os as _eh_os
import sys as _eh_sys

# A crash prints the Python stacks, and a case that is about to be called a
# hang prints every thread's stack, to stderr, whose tail the harness reports.
_eh_faulthandler.enable()
_eh_dump_after = max(1.0, float(_eh_sys.argv[2]) - 2.0)

{body}

def _eh_main(_dir):
    with open(_eh_os.path.join(_dir, "todo.txt")) as _f:
        _todo = [int(_line) for _line in _f if _line.strip()]
    for _i in _todo:
        with open(_eh_os.path.join(_dir, "%d.bin" % _i), "rb") as _f:
            _data = _f.read()
        print("START %d" % _i, flush=True)
        _eh_faulthandler.dump_traceback_later(_eh_dump_after)
        try:
            _detail = run_case(_data)
            _outcome = "ok"
        except BaseException as _exc:  # the harness wants every failure as a result line
            _detail = "%s: %s" % (type(_exc).__name__, _exc)
            _outcome = "error"
        _eh_faulthandler.cancel_dump_traceback_later()
        _detail = " ".join(str(_detail if _detail is not None else "").split())[:500]
        print("RESULT %d %s %s" % (_i, _outcome, _detail), flush=True)

_eh_main(_eh_sys.argv[1])
"""


def make_worker(body: str) -> str:
    """Wrap ``body`` (which must define ``run_case(data: bytes) -> str``) in the protocol."""
    return _WORKER_TEMPLATE.format(body=body)


@dataclasses.dataclass(frozen=True)
class CaseResult:
    """Outcome of one case.

    ``outcome`` is one of ``ok``, ``error`` (worker reported a handled failure),
    ``crash`` (the child died during this case), ``timeout`` (no progress within the
    timeout) or ``lost`` (the child exited cleanly without ever reporting this case).
    """

    index: int
    description: str
    outcome: str
    detail: str = ""
    returncode: int | None = None

    @property
    def signal_name(self) -> str | None:
        """Name of the killing signal for crashes by signal (e.g. ``SIGABRT``)."""
        if self.returncode is not None and self.returncode < 0:
            try:
                return signal.Signals(-self.returncode).name
            except ValueError:
                return f"signal {-self.returncode}"
        return None


def summarize(results: Sequence[CaseResult]) -> dict[str, int]:
    """Count results per outcome (all outcomes present, possibly 0)."""
    counts = dict.fromkeys(OUTCOMES, 0)
    for r in results:
        counts[r.outcome] += 1
    return counts


def _tail(path: pathlib.Path, limit: int = 6000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-limit:].strip()


def _run_child(
    workdir: pathlib.Path,
    todo: list[int],
    worker_code: str,
    timeout: float,
    env: dict[str, str] | None,
) -> tuple[dict[int, tuple[str, str]], int | None, int | None, bool, str]:
    """Run one child over ``todo``.

    Returns (finished results, started-but-unfinished index, returncode, timed_out,
    stderr tail).
    """
    (workdir / "todo.txt").write_text("".join(f"{i}\n" for i in todo))
    stderr_path = workdir / "stderr.txt"
    finished: dict[int, tuple[str, str]] = {}
    current: int | None = None
    timed_out = False
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", worker_code, str(workdir), repr(timeout)],
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        assert proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        pending = b""
        deadline = time.monotonic() + timeout
        eof = False
        while not eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                proc.kill()
                break
            if not sel.select(remaining):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                eof = True
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if eof and pending:
                lines.append(pending)
            for raw in lines:
                parts = raw.decode("utf-8", "replace").rstrip("\r").split(" ", 3)
                if len(parts) == 2 and parts[0] == "START" and parts[1].isdigit():
                    current = int(parts[1])
                    # The timeout is per case: progress re-arms it.
                    deadline = time.monotonic() + timeout
                elif len(parts) >= 3 and parts[0] == "RESULT" and parts[1].isdigit():
                    idx = int(parts[1])
                    if parts[2] in ("ok", "error"):
                        finished[idx] = (parts[2], parts[3] if len(parts) > 3 else "")
                        if idx == current:
                            current = None
        sel.close()
        proc.stdout.close()
        returncode = proc.wait()
    return finished, current, returncode, timed_out, _tail(stderr_path)


def run_cases_in_subprocess(
    cases: list[tuple[str, bytes]],
    worker_code: str,
    timeout: float,
    *,
    batch_size: int = 500,
    env: dict[str, str] | None = None,
) -> list[CaseResult]:
    """Run ``cases`` (description, bytes) through ``worker_code`` in child processes.

    ``timeout`` is the maximum time in seconds a single case (or the child's start-up
    before its first case) may take. Results are returned in case order, one per case.
    """
    if timeout <= 0:
        raise ValueError("timeout must be > 0")
    results: dict[int, CaseResult] = {}
    with tempfile.TemporaryDirectory(prefix="edgepipe-crash-") as tmp:
        workdir = pathlib.Path(tmp)
        for i, (_, blob) in enumerate(cases):
            (workdir / f"{i}.bin").write_bytes(blob)

        for start in range(0, len(cases), batch_size):
            todo = list(range(start, min(start + batch_size, len(cases))))
            while todo:
                finished, current, rc, timed_out, stderr = _run_child(
                    workdir, todo, worker_code, timeout, env
                )
                for idx, (outcome, detail) in finished.items():
                    results[idx] = CaseResult(idx, cases[idx][0], outcome, detail, None)
                died = timed_out or rc != 0
                if died and not finished and (current is None or current not in todo):
                    # Died before its first case (bad worker code, import error): every
                    # retry would die the same way, so report the whole rest at once.
                    outcome = "timeout" if timed_out else "crash"
                    detail = f"worker died before its first case (exit {rc})"
                    if stderr:
                        detail += f"; stderr: {stderr}"
                    for i in todo:
                        results[i] = CaseResult(i, cases[i][0], outcome, detail, rc)
                    todo = []
                    continue
                if current is not None and current not in todo:
                    current = None
                if current is None and died:
                    # Died between cases (e.g. in cleanup after a result line): blame
                    # the next unreported case so the loop always makes progress.
                    current = next((i for i in todo if i not in finished), None)
                if current is not None:
                    if timed_out:
                        outcome, detail = "timeout", f"no result within {timeout}s"
                    else:
                        outcome = "crash"
                        detail = f"child exited with {rc}"
                    if stderr:
                        detail += f"; stderr: {stderr}"
                    results[current] = CaseResult(
                        current, cases[current][0], outcome, detail, None if timed_out else rc
                    )
                    position = todo.index(current)
                    todo = [i for i in todo[position + 1 :] if i not in finished]
                    continue
                # Clean exit: anything not reported is lost (worker skipped it).
                for i in todo:
                    if i not in finished:
                        results[i] = CaseResult(
                            i, cases[i][0], "lost", f"child exited {rc} without reporting it"
                        )
                todo = []
    return [results[i] for i in range(len(cases))]
