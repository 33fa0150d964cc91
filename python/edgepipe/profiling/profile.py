"""Per-op profiles from LiteRT's own profiler.

:func:`profile` compiles a second, profiling-enabled instance of the model
with the same accelerator and threads (profiling costs a little per op, so
ordinary sessions never carry it), runs it, and turns the runtime's events
into a :class:`Profile`: one row per op node with the engine that ran it,
a by-op-type summary, the top-N, and exports to JSON, CSV and a
Chrome-trace/Perfetto timeline.

How the runtime's events become rows (LiteRT 2.3.0):

- ``DELEGATE_PROFILED_OPERATOR_INVOKE`` / ``DELEGATE_OPERATOR_INVOKE``: an
  op inside a delegate (XNNPACK on the CPU: "Convolution (NHWC, F32) IGEMM");
  the delegate reports durations only (start 0), in run order. XNNPACK's
  are back-to-back intervals of its runtime, each truncated to whole µs.
- ``OPERATOR_INVOKE``: an op the interpreter ran with its builtin kernel
  ("CONV_2D"), with its node index and real timestamps; a delegate's own
  node is only a row when the delegate reported nothing inside it (XNNPACK
  sets the per-operator-profiling flag, so the interpreter records no event
  for its node). An op event inside another op event's interval (the body
  of a control-flow op) is counted once: the outer row keeps its self time.
- ``DEFAULT`` ``LiteRT::Run[...]``: events of the runtime around the graph,
  rows of kind ``runtime``; ``Invoke`` encloses the graph (not a row).
- Two rows of kind ``gap`` are intervals measured on the runtime's clock that
  no event covers: ``Invoke (outside op events)`` (the ``Invoke`` event's
  duration less its op events) and ``LiteRT::Run (between its events)`` (the
  gaps between consecutive top-level events, end of one to start of the next).
- Telemetry and instrumentation events carry status codes, not times (the
  ``Invoke`` telemetry event's "duration" is 2^32 µs, a status word): never
  rows. Any event longer than its run is dropped and listed in ``dropped``.

The profiler costs time of its own: 2.3.0 reads the process's memory usage
(``getrusage``, ``mallinfo2`` and a parse of ``/proc/self/status``) at both
ends of every non-operator event, 8 reads per run. Each profiled run is
therefore paired with an unprofiled run of the same instance, timed the
same way, and :meth:`Profile.check` compares the op rows alone with that
unprofiled run time.
"""

from __future__ import annotations

import csv
import io
import json
import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .. import Model, Session, TensorInfo, _core, runtime_version
from ..errors import InferenceError, InputError

# LiteRtProfilerEventType bits.
DEFAULT, OPERATOR, DELEGATE_OP, DELEGATE_PROFILED_OP = 1, 2, 4, 8
_FIELDS = ("run", "tag", "type", "start_us", "elapsed_us", "metadata1", "metadata2", "source")
#: Rows of runtime time no event covers (measured on the runtime's own clock).
INVOKE_GAP = "Invoke (outside op events)"
RUN_GAP = "LiteRT::Run (between its events)"
#: Row kinds: a measured op, an event of the runtime, a timestamp-derived gap.
OP, RUNTIME, GAP = "op", "runtime", "gap"
#: What :meth:`Profile.check` can compare, and against what.
CHECK_BASES = {
    "op_coverage": "op rows / wall time of unprofiled runs of the same instance (fastest runs)",
    "op_coverage_profiled": "op rows / wall time of the profiled run (with the profiler's cost)",
    "op_coverage_invoke": "op rows / the interpreter's Invoke event of the same run",
    "coverage_total": "all rows (ops, runtime events, gaps) / wall time of the profiled run",
}
#: The runtime keeps at most this many events per profiling session (one run here).
MAX_EVENTS = 512 * 1024


@dataclass
class OpRow:
    """One op node (or runtime phase) over all profiled runs."""

    name: str  # op type as the engine names it
    node: str  # "node 12" (interpreter node; "node 2 (subgraph 1)" outside the
    # primary subgraph) or "xnnpack 0:3" (delegate partition:op)
    engine: str  # "XNNPACK", "builtin", "delegate:<accelerator>", "runtime"
    count: int  # times it ran over all runs
    total_us: float
    avg_us: float  # per call
    percent: float  # share of the summed time of all rows (rows add up to 100)
    per_run_us: float  # total divided by the number of runs
    kind: str = OP  # "op", "runtime" (an event of the runtime) or "gap" (from timestamps)


@dataclass
class TypeRow:
    """Every node of one op type and engine."""

    name: str
    engine: str
    nodes: int
    count: int
    total_us: float
    avg_us: float
    percent: float


@dataclass
class Profile:
    """The per-op profile of ``runs`` runs of one model on one accelerator."""

    model: str
    model_sha256: str
    accelerator: str
    threads: int | None
    runs: int
    ops: list[OpRow]
    wall_us: list[float]  # per profiled run, measured around the runtime's run call
    rows_us: list[float]  # per run, sum of all rows
    summary: str  # LiteRT's benchmark_model-style text
    layout: str  # event layout used ("summary-only" if refused)
    layout_note: str = ""
    plain_wall_us: list[float] = field(default_factory=list)  # unprofiled run paired with each
    ops_us: list[float] = field(default_factory=list)  # per run, sum of the op rows alone
    invoke_us: list[float] = field(default_factory=list)  # per run, the Invoke event
    dropped: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list, repr=False)
    run_start_us: list[int] = field(default_factory=list, repr=False)

    # -- figures ---------------------------------------------------------
    @property
    def total_row_us(self) -> float:
        """Summed time of all rows (ops, runtime events, gaps) over all runs."""
        return float(sum(r.total_us for r in self.ops))

    @property
    def total_op_us(self) -> float:
        """Summed time of the op rows alone over all runs."""
        return float(sum(r.total_us for r in self.ops if r.kind == OP))

    @property
    def total_wall_us(self) -> float:
        return float(sum(self.wall_us))

    @staticmethod
    def _median_ratio(num: Sequence[float], den: Sequence[float]) -> float:
        ratios = [n / d for n, d in zip(num, den) if d > 0]
        return float(statistics.median(ratios)) if ratios else 0.0

    @property
    def op_coverage(self) -> float:
        """(op rows) / (unprofiled wall time), each the fastest of the runs.

        The share of a normal run that the measured ops account for. The op
        sum and the unprofiled run time come from different runs, so each is
        taken at its fastest: on a busy machine noise only ever adds time,
        and a preempted run on either side would otherwise decide the ratio.
        """
        if not self.ops_us or not self.plain_wall_us or min(self.plain_wall_us) <= 0:
            return 0.0
        return float(min(self.ops_us) / min(self.plain_wall_us))

    @property
    def op_coverage_profiled(self) -> float:
        """Median over runs of (op rows) / (the profiled run's wall time)."""
        return self._median_ratio(self.ops_us, self.wall_us)

    @property
    def op_coverage_invoke(self) -> float:
        """Median over runs of (op rows) / (the interpreter's ``Invoke`` event)."""
        return self._median_ratio(self.ops_us, self.invoke_us)

    @property
    def coverage_total(self) -> float:
        """Median over runs of (all rows) / (the profiled run's wall time)."""
        return self._median_ratio(self.rows_us, self.wall_us)

    @property
    def profiler_overhead_us(self) -> float:
        """(profiled wall time) - (unprofiled wall time), each the fastest of the runs."""
        if not self.wall_us or not self.plain_wall_us:
            return 0.0
        return float(min(self.wall_us) - min(self.plain_wall_us))

    def check(self, tolerance: float = 0.15, basis: str = "op_coverage") -> bool:
        """Whether ``basis`` (a key of :data:`CHECK_BASES`) is within ``tolerance`` of 1.

        The default compares the op rows alone (no runtime or gap rows) with
        the wall time of unprofiled runs of the same instance.
        """
        if basis not in CHECK_BASES:
            raise InputError(f"unknown check basis {basis!r}; use one of {sorted(CHECK_BASES)}")
        return bool(abs(float(getattr(self, basis)) - 1.0) <= tolerance)

    def check_result(self, tolerance: float = 0.15, basis: str = "op_coverage") -> dict[str, Any]:
        """The check as JSON: which figure it applied, its value and the outcome."""
        passed = self.check(tolerance, basis)
        return {
            "basis": basis,
            "compares": CHECK_BASES[basis],
            "value": float(getattr(self, basis)),
            "tolerance": tolerance,
            "passed": passed,
        }

    def by_type(self) -> list[TypeRow]:
        """Rows grouped by (op type, engine), largest total first."""
        groups: dict[tuple[str, str], list[OpRow]] = {}
        for r in self.ops:
            groups.setdefault((r.name, r.engine), []).append(r)
        total = self.total_row_us or 1.0
        out = []
        for (name, engine), rows in groups.items():
            t = sum(r.total_us for r in rows)
            c = sum(r.count for r in rows)
            out.append(
                TypeRow(name, engine, len(rows), c, t, t / c if c else 0.0, 100.0 * t / total)
            )
        return sorted(out, key=lambda r: -r.total_us)

    def by_engine(self) -> dict[str, float]:
        """Engine → share of the per-op time, in percent."""
        out: dict[str, float] = {}
        for r in self.ops:
            out[r.engine] = out.get(r.engine, 0.0) + r.percent
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def top(self, n: int = 10) -> list[OpRow]:
        """The ``n`` op rows (kind ``op``) with the largest total time."""
        return sorted((r for r in self.ops if r.kind == OP), key=lambda r: -r.total_us)[:n]

    # -- exports ---------------------------------------------------------
    def to_dict(self, *, top: int = 10) -> dict[str, Any]:
        """JSON-ready: ``ops[]`` (name, node, engine, count, total_us, avg_us,
        percent, per_run_us, kind), ``by_type[]``, ``top[]`` (op rows), the
        coverage figures (ops alone and all rows) and ``check`` (the basis it
        applied, its value and whether it passed)."""
        return {
            "model": self.model,
            "model_sha256": self.model_sha256,
            "accelerator": self.accelerator,
            "threads": self.threads,
            "runs": self.runs,
            "wall_us_per_run": self.total_wall_us / self.runs if self.runs else 0.0,
            "unprofiled_wall_us_per_run": _mean(self.plain_wall_us),
            "profiler_overhead_us_per_run": self.profiler_overhead_us,
            "invoke_us_per_run": _mean(self.invoke_us),
            "op_us_per_run": _mean(self.ops_us),
            "rows_us_per_run": self.total_row_us / self.runs if self.runs else 0.0,
            # Ops alone, and everything (ops + runtime events + gaps); the
            # check says which one it applied.
            "op_coverage": self.op_coverage,
            "op_coverage_profiled": self.op_coverage_profiled,
            "op_coverage_invoke": self.op_coverage_invoke,
            "coverage_total": self.coverage_total,
            # Profiled wall time in no row: edgepipe's call into the runtime
            # and the runtime's entry and exit around its first and last event.
            "unattributed_us_per_run": (self.total_wall_us - self.total_row_us) / self.runs
            if self.runs
            else 0.0,
            "check": self.check_result(0.15),
            "within_15_percent": self.check(0.15),
            "event_layout": self.layout,
            "event_layout_note": self.layout_note,
            "dropped_events": self.dropped,
            "by_engine_percent": self.by_engine(),
            "ops": [asdict(r) for r in self.ops],
            "by_type": [asdict(r) for r in self.by_type()],
            "top": [asdict(r) for r in self.top(top)],
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(**kwargs), indent=2)

    def to_csv(self) -> str:
        """One line per row: name, node, engine, count, total_us, avg_us, percent."""
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(
            ["name", "node", "engine", "count", "total_us", "avg_us", "percent", "per_run_us"]
        )
        for r in self.ops:
            w.writerow(
                [
                    r.name,
                    r.node,
                    r.engine,
                    r.count,
                    f"{r.total_us:.3f}",
                    f"{r.avg_us:.3f}",
                    f"{r.percent:.3f}",
                    f"{r.per_run_us:.3f}",
                ]
            )
        return buf.getvalue()

    def to_chrome_trace(self) -> dict[str, Any]:
        """A Chrome-trace (``chrome://tracing``, https://ui.perfetto.dev) timeline.

        Track 0: each run's wall time; track 1: the runtime's phases and the
        interpreter's ``Invoke``; track 2: builtin-kernel ops at their real
        times; track 3: delegate ops. The delegate reports durations only,
        so its ops are laid end to end from the start of ``Invoke``
        (``args.placed: true``).
        """
        trace: list[dict[str, Any]] = []
        pid = 1
        names = {0: "runs", 1: "runtime", 2: "builtin kernels", 3: "delegate ops (placed)"}
        for tid, name in names.items():
            trace.append(
                {"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": name}}
            )
        trace.append(
            {
                "ph": "M",
                "name": "process_name",
                "pid": pid,
                "args": {"name": f"edgepipe profile: {self.model} on {self.accelerator}"},
            }
        )
        by_run: dict[int, list[dict[str, Any]]] = {}
        for e in self.events:
            by_run.setdefault(e["run"], []).append(e)
        origin = self.run_start_us[0] if self.run_start_us else 0
        for k, start in enumerate(self.run_start_us):
            trace.append(
                {
                    "ph": "X",
                    "name": f"run {k}",
                    "cat": "run",
                    "pid": pid,
                    "tid": 0,
                    "ts": start - origin,
                    "dur": self.wall_us[k],
                }
            )
        for k, events in sorted(by_run.items()):
            run_start = self.run_start_us[k] if k < len(self.run_start_us) else origin
            invoke = next(
                (e for e in events if e["type"] == DEFAULT and e["tag"] == "Invoke"), None
            )
            cursor = (invoke["start_us"] if invoke else run_start) - origin
            for e in events:
                kind = _kind(e)
                if kind == "runtime" or (e["type"] == DEFAULT and e["tag"] == "Invoke"):
                    trace.append(
                        {
                            "ph": "X",
                            "name": e["tag"],
                            "cat": "runtime",
                            "pid": pid,
                            "tid": 1,
                            "ts": e["start_us"] - origin,
                            "dur": e["elapsed_us"],
                        }
                    )
                elif kind in ("builtin", "delegate-node"):
                    trace.append(
                        {
                            "ph": "X",
                            "name": e["tag"],
                            "cat": "builtin",
                            "pid": pid,
                            "tid": 2,
                            "ts": e["start_us"] - origin,
                            "dur": e["elapsed_us"],
                            "args": {"node": e["metadata1"], "subgraph": e["metadata2"]},
                        }
                    )
                elif kind == "delegate-op":
                    trace.append(
                        {
                            "ph": "X",
                            "name": e["tag"],
                            "cat": "delegate",
                            "pid": pid,
                            "tid": 3,
                            "ts": cursor,
                            "dur": e["elapsed_us"],
                            "args": {"op_index": e["metadata1"], "placed": True},
                        }
                    )
                    cursor += e["elapsed_us"]
        return {
            "traceEvents": trace,
            "displayTimeUnit": "ms",
            "otherData": {
                "model": self.model,
                "accelerator": self.accelerator,
                "runs": self.runs,
                "event_layout": self.layout,
            },
        }

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write by extension: ``.json`` (:meth:`to_dict`), ``.csv``,
        ``.trace.json`` / ``.perfetto.json`` (:meth:`to_chrome_trace`)."""
        p = os.fspath(path)
        if p.endswith((".trace.json", ".perfetto.json")):
            text = json.dumps(self.to_chrome_trace())
        elif p.endswith(".json"):
            text = self.to_json()
        elif p.endswith(".csv"):
            text = self.to_csv()
        else:
            raise InputError(f"cannot tell the format of {p!r}: use .json, .csv or .trace.json")
        with open(p, "w", encoding="utf-8") as f:
            f.write(text)

    def format_table(self, *, top: int = 15) -> str:
        """The text report: top-N rows, the by-type summary and the check."""
        lines = [
            f"Profile of {self.model} on {self.accelerator} ({self.runs} runs, "
            f"threads {self.threads or 'default'})",
            f"  wall {self.total_wall_us / max(self.runs, 1) / 1e3:.3f} ms/run profiled, "
            f"{_mean(self.plain_wall_us) / 1e3:.3f} ms/run unprofiled (the profiler's own cost "
            f"{self.profiler_overhead_us:.0f} us/run); ops {_mean(self.ops_us) / 1e3:.3f} ms/run",
            f"  ops = {100 * self.op_coverage:.1f}% of the unprofiled run, "
            f"{100 * self.op_coverage_profiled:.1f}% of the profiled run, "
            f"{100 * self.op_coverage_invoke:.1f}% of Invoke; all rows = "
            f"{100 * self.coverage_total:.1f}% of the profiled run",
            f"  check (op_coverage within 15%): {'passed' if self.check() else 'FAILED'}",
            "  engines: " + ", ".join(f"{k} {v:.1f}%" for k, v in self.by_engine().items()),
        ]
        if self.layout == "summary-only":
            lines.append(f"  per-op events refused ({self.layout_note}); LiteRT's summary:")
            lines.append(self.summary)
            return "\n".join(lines)
        lines.append("")
        lines.append(f"Top {top} ops:")
        lines.append(
            f"  {'op':<40} {'node':<12} {'engine':<10} {'count':>6} {'avg us':>9} "
            f"{'total us':>10} {'share':>7}"
        )
        lines.extend(
            f"  {r.name[:40]:<40} {r.node:<12} {r.engine:<10} {r.count:>6} "
            f"{r.avg_us:>9.1f} {r.total_us:>10.0f} {r.percent:>6.1f}%"
            for r in self.top(top)
        )
        lines.append("")
        lines.append("Not in any op (runtime events; gaps measured on the runtime's clock):")
        lines.extend(
            f"  {r.name[:40]:<40} {r.kind:<7} {r.per_run_us:>9.1f} us/run {r.percent:>6.1f}%"
            for r in sorted(self.ops, key=lambda r: -r.total_us)
            if r.kind != OP
        )
        lines.append("")
        lines.append("By op type:")
        lines.append(
            f"  {'op type':<40} {'engine':<10} {'nodes':>5} {'count':>6} "
            f"{'avg us':>9} {'total us':>10} {'share':>7}"
        )
        lines.extend(
            f"  {t.name[:40]:<40} {t.engine:<10} {t.nodes:>5} {t.count:>6} "
            f"{t.avg_us:>9.1f} {t.total_us:>10.0f} {t.percent:>6.1f}%"
            for t in self.by_type()
        )
        if self.dropped:
            lines.append(
                f"  ({len(self.dropped)} events with impossible durations dropped, "
                f"e.g. {self.dropped[0]['tag']!r} of type {self.dropped[0]['type']})"
            )
        return "\n".join(lines)


def _kind(e: Mapping[str, Any]) -> str:
    t = e["type"]
    if t in (DELEGATE_OP, DELEGATE_PROFILED_OP):
        return "delegate-op"
    if t == OPERATOR:
        tag = str(e["tag"])
        if "delegate" in tag.lower():
            return "delegate-node"
        return "builtin"
    if t == DEFAULT and str(e["tag"]).startswith("LiteRT::"):
        return "runtime"
    return "other"


def _engine_for(accelerator: str) -> str:
    return "XNNPACK" if accelerator == "cpu" else f"delegate:{accelerator.split(':')[0]}"


def _end(e: Mapping[str, Any]) -> int:
    return int(e["start_us"]) + int(e["elapsed_us"])


def _self_times(timed: Sequence[Mapping[str, Any]]) -> list[float]:
    """Each timestamped op event's time less the op events nested in it.

    An op of another subgraph inside an op's interval (the body of a WHILE,
    IF or CALL_ONCE) is its child. The subgraph must differ: ops of one
    subgraph run one after another, and with whole-µs timestamps a 0 µs op
    can look as if it were inside its neighbour.
    """
    self_us = [float(e["elapsed_us"]) for e in timed]
    order = sorted(range(len(timed)), key=lambda i: (int(timed[i]["start_us"]), -_end(timed[i])))
    stack: list[int] = []
    for i in order:
        e = timed[i]
        while stack and _end(timed[stack[-1]]) < int(e["start_us"]):
            stack.pop()
        parent = next(
            (
                j
                for j in reversed(stack)
                if timed[j]["metadata2"] != e["metadata2"] and _end(e) <= _end(timed[j])
            ),
            None,
        )
        if parent is not None:
            self_us[parent] -= float(e["elapsed_us"])
        stack.append(i)
    return [max(0.0, t) for t in self_us]


def _outermost(evs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The events not inside another of the list (a subgraph's Invoke inside the primary's)."""
    return [
        e
        for e in evs
        if not any(
            o is not e
            and int(o["start_us"]) <= int(e["start_us"])
            and _end(e) <= _end(o)
            and (int(o["elapsed_us"]), -int(o["start_us"]))
            > (int(e["elapsed_us"]), -int(e["start_us"]))
            for o in evs
        )
    ]


def build_rows(
    events: Sequence[Mapping[str, Any]], runs: int, accelerator: str
) -> tuple[list[OpRow], dict[str, list[float]]]:
    """Rows, and per run: ``rows_us`` (all rows), ``ops_us`` (op rows alone)
    and ``invoke_us`` (the interpreter's outermost ``Invoke`` events)."""
    delegate_engine = _engine_for(accelerator)
    prefix = delegate_engine.split(":")[-1].lower()
    acc: dict[tuple[str, str, str, str], list[float]] = {}
    rows_us, ops_us, invoke_us = [0.0] * runs, [0.0] * runs, [0.0] * runs

    def add(key: tuple[str, str, str, str], run: int, us: float) -> None:
        acc.setdefault(key, []).append(us)
        rows_us[run] += us
        if key[3] == OP:
            ops_us[run] += us

    by_run: dict[int, list[Mapping[str, Any]]] = {}
    for e in events:
        by_run.setdefault(int(e["run"]), []).append(e)
    for run, evs in sorted(by_run.items()):
        if not 0 <= run < runs:
            continue
        has_delegate_ops = any(_kind(e) == "delegate-op" for e in evs)
        # A delegate numbers ops within each of its partitions; a partition
        # starts where the numbering does not go up.
        part, last = -1, 1 << 62
        timed: list[Mapping[str, Any]] = []
        for e in evs:
            kind = _kind(e)
            if kind == "delegate-op":
                if int(e["metadata1"]) <= last:
                    part += 1
                last = int(e["metadata1"])
                key = (str(e["tag"]), f"{prefix} {part}:{e['metadata1']}", delegate_engine, OP)
                add(key, run, float(e["elapsed_us"]))
            elif kind == "builtin" or (kind == "delegate-node" and not has_delegate_ops):
                timed.append(e)
            elif kind == "runtime":
                add((str(e["tag"]), "runtime", "runtime", RUNTIME), run, float(e["elapsed_us"]))
        for e, us in zip(timed, _self_times(timed)):
            engine = "builtin" if _kind(e) == "builtin" else delegate_engine
            node = f"node {e['metadata1']}"
            if int(e["metadata2"]) != 0:
                node += f" (subgraph {e['metadata2']})"
            add((str(e["tag"]), node, engine, OP), run, us)
        # What the runtime's clock shows and no event covers.
        invokes = _outermost([e for e in evs if e["type"] == DEFAULT and e["tag"] == "Invoke"])
        if invokes:
            invoke_us[run] = float(sum(int(e["elapsed_us"]) for e in invokes))
            add(
                (INVOKE_GAP, "runtime", "runtime", GAP), run, max(0.0, invoke_us[run] - ops_us[run])
            )
        top = sorted(
            [e for e in evs if _kind(e) == "runtime"] + invokes, key=lambda e: int(e["start_us"])
        )
        if top:
            gap, reached = 0, _end(top[0])
            for e in top[1:]:
                gap += max(0, int(e["start_us"]) - reached)
                reached = max(reached, _end(e))
            add((RUN_GAP, "runtime", "runtime", GAP), run, float(gap))
    total = sum(sum(v) for v in acc.values()) or 1.0
    rows = [
        OpRow(
            name=name,
            node=node,
            engine=engine,
            count=len(times),
            total_us=sum(times),
            avg_us=sum(times) / len(times),
            percent=100.0 * sum(times) / total,
            per_run_us=sum(times) / max(runs, 1),
            kind=kind,
        )
        for (name, node, engine, kind), times in acc.items()
    ]
    return rows, {"rows_us": rows_us, "ops_us": ops_us, "invoke_us": invoke_us}


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


def _ordered_inputs(infos: Sequence[TensorInfo], inputs: Any) -> list[np.ndarray]:
    if isinstance(inputs, np.ndarray):
        inputs = [inputs]
    if isinstance(inputs, Mapping):
        missing = [t.name for t in infos if t.name not in inputs]
        if missing:
            raise InputError(f"inputs lack {missing}; the model takes {[t.name for t in infos]}")
        values = [inputs[t.name] for t in infos]
    else:
        values = list(inputs)
        if len(values) != len(infos):
            raise InputError(f"the model takes {len(infos)} inputs, got {len(values)}")
    out = []
    for t, v in zip(infos, values):
        a = np.ascontiguousarray(v)
        if t.dtype is not None and a.dtype != t.dtype:
            raise InputError(f"input {t.name!r} must be {t.dtype}, got {a.dtype}")
        shape = tuple(1 if d < 0 else d for d in t.shape)
        if a.shape != shape:
            raise InputError(f"input {t.name!r} must have shape {shape}, got {a.shape}")
        out.append(a)
    return out


def random_inputs(
    infos: Sequence[TensorInfo], seed: int = 0, value_range: tuple[float, float] | None = None
) -> dict[str, np.ndarray]:
    """Deterministic inputs for ``infos``: uniform in ``value_range`` (default
    [0, 1) for floats, [-100, 100] clipped to the type for integers)."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for t in infos:
        shape = tuple(1 if d < 0 else d for d in t.shape)
        if t.dtype is None:
            raise InputError(f"input {t.name!r} has type {t.element_type}, not benchmarkable")
        if t.dtype.kind == "b":
            out[t.name] = rng.random(shape) < 0.5
        elif t.dtype.kind in "iu":
            info = np.iinfo(t.dtype)
            lo, hi = value_range if value_range else (-100, 100)
            lo, hi = max(int(info.min), int(lo)), min(int(info.max), int(hi))
            out[t.name] = rng.integers(lo, hi + 1, size=shape).astype(t.dtype)
        else:
            lo, hi = value_range if value_range else (0.0, 1.0)
            out[t.name] = (lo + (hi - lo) * rng.random(shape)).astype(t.dtype)
    return out


def profile(
    target: Session | Model | str | os.PathLike[str],
    *,
    runs: int = 20,
    warmup: int = 2,
    inputs: Any = None,
    accelerator: str | Sequence[str] | None = None,
    threads: int | None = None,
    signature: str | None = None,
) -> Profile:
    """Profile ``runs`` runs of a model op by op.

    Args:
        target: a :class:`~edgepipe.Session` (its model and the accelerator it
            ended on are reused), a :class:`~edgepipe.Model` or a path.
        runs: profiled runs (after ``warmup`` unprofiled ones).
        inputs: arrays by name, by position or one array (default:
            deterministic random inputs).
        accelerator: override the accelerator (default: the session's, or "cpu").
        threads: CPU threads (default: the runtime's).
        signature: signature key (default: the first).

    Raises:
        InputError: bad runs/inputs. RuntimeLoadError: no profiler in this runtime.
    """
    if runs < 1 or warmup < 0:
        raise InputError(f"runs must be >= 1 and warmup >= 0, got {runs} and {warmup}")
    if isinstance(target, Session):
        model = target.model
        accel: str | Sequence[str] = accelerator or target.accelerator
    else:
        model = target if isinstance(target, Model) else Model.load(target)
        accel = accelerator or "cpu"
    if threads is not None and threads < 1:
        raise InputError(f"threads must be at least 1, got {threads}")
    names = [accel] if isinstance(accel, str) else list(accel)
    index_of = model.signature_index
    core = _core.ProfiledSession(
        model._core, names, threads or 0, index_of(signature), True, runtime_version()
    )
    infos = model.signatures[signature].inputs if signature else model.inputs
    arrays = _ordered_inputs(infos, inputs if inputs is not None else random_inputs(infos))
    raw = core.profile(arrays, runs, warmup)
    fields = list(raw["event_fields"])
    events = [dict(zip(fields, t)) for t in raw["events"]]
    per_run_events = [0] * runs
    for e in events:
        per_run_events[e["run"]] += 1
    if events and max(per_run_events) + len(raw["dropped"]) >= MAX_EVENTS:
        # Each run is read out on its own; one that fills the runtime's buffer
        # lost its later events, so its rows would be silently short.
        raise InferenceError(
            f"one run recorded {max(per_run_events)} profiler events, the runtime's limit "
            f"({MAX_EVENTS} per run): its later events were dropped and its per-op rows would "
            "be incomplete; profile a smaller signature or model"
        )
    accelerator_used = str(core.accelerator)
    rows, per_run = build_rows(events, runs, accelerator_used)
    return Profile(
        model=str(model.path.name if model.path else "<bytes>"),
        model_sha256=model.sha256,
        accelerator=accelerator_used,
        threads=threads,
        runs=runs,
        ops=rows,
        wall_us=list(raw["wall_us"]),
        rows_us=per_run["rows_us"],
        ops_us=per_run["ops_us"],
        invoke_us=per_run["invoke_us"],
        plain_wall_us=list(raw["plain_wall_us"]),
        summary=str(raw["summary"]),
        layout=str(raw["layout"]),
        layout_note=str(raw["layout_note"]),
        dropped=[
            {"run": d[0], "tag": d[1], "type": d[2], "elapsed_us": d[4]} for d in raw["dropped"]
        ][:20],
        events=events,
        run_start_us=list(raw["run_start_us"]),
    )
