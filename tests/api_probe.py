"""Call edgepipe's public API in a child process with values sent from the test.

The property tests (tests/test_properties_api.py) feed arbitrary Python values
to every argument of the public API. A value that crashes or hangs the process
must fail the example, never pytest, so the calls run in a long-lived child:
the parent sends ``(operation, args)`` pickled over the child's stdin and reads
back ``(outcome, detail)``, where outcome is

- ``"ok"``: the call worked;
- ``"typed"``: it raised an :class:`edgepipe.errors.EdgepipeError` (detail: class
  and message);
- ``"untyped"``: it raised anything else (a bare ``TypeError``...);
- ``"crash"`` / ``"hang"``: the child died or did not answer in time (it is
  restarted for the next call).

The child runs in a private working directory (relative paths land there) and
under a 6 GiB address-space limit, so that a runaway thread or allocation count
fails fast instead of starving the machine.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

_LEN = struct.Struct("<Q")
_ADDRESS_SPACE = 6 << 30


# -- child side ------------------------------------------------------------------
class _Fixtures:
    """The model, session and pool the operations use, made once per child."""

    def __init__(self, model_path: str) -> None:
        import edgepipe

        self.edgepipe = edgepipe
        self.path = model_path
        self.model = edgepipe.Model.load(model_path)
        self.session = self.model.compile()
        self.pool = edgepipe.Pool(self.model, workers=1, weight_cache=False)
        self.inputs = [__import__("numpy").ones(t.shape, t.dtype) for t in self.model.inputs]

    def call(self, op: str, args: Any) -> object:
        ep = self.edgepipe
        if op == "load":
            value, kwargs = args
            return ep.Model.load(value, **kwargs)
        if op == "from_bytes":
            return ep.Model.from_bytes(args)
        if op == "compile":
            self.model.compile(**args).close()
            return None
        if op == "session_run":
            return self.session.run(args)
        if op == "pool":
            ep.Pool(self.model, **args).close()
            return None
        if op == "pool_run":
            inputs, kwargs = args
            return self.pool.run(self.inputs if inputs is _GOOD else inputs, **kwargs)
        if op == "pool_submit":
            inputs, kwargs = args
            future = self.pool.submit(self.inputs if inputs is _GOOD else inputs, **kwargs)
            return future.result(timeout=30)
        if op == "pool_map":
            kwargs = args
            return list(self.pool.map([self.inputs, self.inputs], **kwargs))
        raise ValueError(f"unknown operation {op}")


class _Good:
    """Marker: "use the fixture's valid inputs here" (pickles as the singleton)."""

    def __reduce__(self) -> str:
        return "_GOOD"


_GOOD = _Good()
GOOD_INPUTS = _GOOD


def _read_exact(stream: Any, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _child_main(model_path: str) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (_ADDRESS_SPACE, _ADDRESS_SPACE))
    fixtures = _Fixtures(model_path)
    errors = fixtures.edgepipe.errors
    out = sys.stdout.buffer
    while True:
        try:
            (size,) = _LEN.unpack(_read_exact(sys.stdin.buffer, _LEN.size))
            op, args = pickle.loads(_read_exact(sys.stdin.buffer, size))  # from our parent
        except EOFError:
            return
        try:
            fixtures.call(op, args)
            reply = ("ok", "")
        except errors.EdgepipeError as exc:
            reply = ("typed", f"{type(exc).__name__}: {exc}")
        except BaseException as exc:
            reply = ("untyped", f"{type(exc).__module__}.{type(exc).__name__}: {exc}")
        blob = pickle.dumps((reply[0], reply[1][:400]))
        out.write(_LEN.pack(len(blob)) + blob)
        out.flush()


# -- parent side -----------------------------------------------------------------
class ApiProbe:
    """A child process that runs API calls; restarted after a crash or hang."""

    def __init__(self, model_path: Path, workdir: Path, timeout: float = 30.0) -> None:
        self.model_path = model_path
        self.workdir = workdir
        self.timeout = timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr_path = workdir / "probe-stderr.txt"

    def _start(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        here = str(Path(__file__).resolve().parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
        env["EDGEPIPE_CACHE_DIR"] = str(self.workdir / "cache")
        code = "import sys, api_probe; api_probe._child_main(sys.argv[1])"
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.stderr_path, "ab") as err:
            return subprocess.Popen(
                [sys.executable, "-c", code, str(self.model_path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                cwd=self.workdir,
                env=env,
            )

    def _stop(self) -> int | None:
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.kill()
        rc = proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        return rc

    def call(self, op: str, args: Any = None) -> tuple[str, str]:
        """Run one operation in the child; ``(outcome, detail)``."""
        if self.proc is None or self.proc.poll() is not None:
            self._stop()
            self.proc = self._start()
        proc = self.proc
        assert proc.stdin is not None and proc.stdout is not None
        blob = pickle.dumps((op, args))
        try:
            proc.stdin.write(_LEN.pack(len(blob)) + blob)
            proc.stdin.flush()
            head = self._read(proc, _LEN.size)
            (size,) = _LEN.unpack(head)
            outcome, detail = pickle.loads(self._read(proc, size))  # from our child
            return outcome, detail
        except TimeoutError:
            self._stop()
            return "hang", f"no answer within {self.timeout} s"
        except (EOFError, BrokenPipeError, OSError):
            rc = self._stop()
            how = (
                signal.Signals(-rc).name
                if rc is not None and rc < 0 and -rc in signal.valid_signals()
                else f"exit {rc}"
            )
            tail = self.stderr_path.read_text(errors="replace")[-600:]
            return "crash", f"child died ({how}); stderr: {tail}"

    def _read(self, proc: subprocess.Popen[bytes], n: int) -> bytes:
        assert proc.stdout is not None
        data = b""
        fd = proc.stdout.fileno()
        while len(data) < n:
            ready, _, _ = select.select([fd], [], [], self.timeout)
            if not ready:
                raise TimeoutError
            chunk = os.read(fd, n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def close(self) -> None:
        self._stop()
