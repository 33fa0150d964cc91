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
  the delegate reports durations only (start 0), in run order.
- ``OPERATOR_INVOKE``: an op the interpreter ran with its builtin kernel
  ("CONV_2D"), with its node index and real timestamps; a delegate's own
  node is only a row when the delegate reported nothing inside it.
- ``DEFAULT`` ``LiteRT::Run[...]``: the runtime's buffer work around the
  graph, rows of engine ``runtime``; ``Invoke`` encloses the graph (timeline only).
- Two ``runtime`` rows hold what the runtime's own timestamps show but no
  event covers: ``Invoke (between ops)`` (the interpreter and delegate between
  ops) and ``LiteRT::Run (between phases)``. They are what is left of the
  run once every op is counted, so a large one says "not in the ops".
- Telemetry and instrumentation events carry status codes, not times (the
  ``Invoke`` telemetry event's "duration" is 2^32 µs): never rows. Any
  event longer than its run is dropped and listed in ``dropped``.
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
from ..errors import InputError

# LiteRtProfilerEventType bits.
DEFAULT, OPERATOR, DELEGATE_OP, DELEGATE_PROFILED_OP = 1, 2, 4, 8
_FIELDS = ("run", "tag", "type", "start_us", "elapsed_us", "metadata1", "metadata2", "source")
#: Rows of runtime time no event covers (measured on the runtime's own clock).
INVOKE_GAP = "Invoke (between ops)"
RUN_GAP = "LiteRT::Run (between phases)"
#: The runtime keeps at most this many events per profiling session.
MAX_EVENTS = 512 * 1024


@dataclass
class OpRow:
    """One op node (or runtime phase) over all profiled runs."""

    name: str  # op type as the engine names it
    node: str  # "node 12" (interpreter node) or "xnnpack 0:3" (delegate partition:op)
    engine: str  # "XNNPACK", "builtin", "delegate:<accelerator>", "runtime"
    count: int  # times it ran over all runs
    total_us: float
    avg_us: float  # per call
    percent: float  # share of the summed per-op time (rows add up to 100)
    per_run_us: float  # total divided by the number of runs


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
    wall_us: list[float]  # per run, measured around the runtime's run call
    op_sum_us: list[float]  # per run, sum of the rows' events
    summary: str  # LiteRT's benchmark_model-style text
    layout: str  # event layout used ("summary-only" if refused)
    layout_note: str = ""
    dropped: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list, repr=False)
    run_start_us: list[int] = field(default_factory=list, repr=False)

    # -- figures ---------------------------------------------------------
    @property
    def total_op_us(self) -> float:
        return float(sum(r.total_us for r in self.ops))

    @property
    def total_wall_us(self) -> float:
        return float(sum(self.wall_us))

    @property
    def coverage(self) -> float:
        """Median over runs of (sum of per-op times) / (wall time of the run).

        The median keeps a run the OS preempted (time in no op) from
        deciding; :attr:`coverage_total` is the plain ratio of sums.
        """
        ratios = [s / w for s, w in zip(self.op_sum_us, self.wall_us) if w > 0]
        return float(statistics.median(ratios)) if ratios else 0.0

    @property
    def op_coverage(self) -> float:
        """Share of the wall time in ops alone (no ``runtime`` rows)."""
        ops = sum(r.total_us for r in self.ops if r.engine != "runtime")
        return ops / self.total_wall_us if self.total_wall_us else 0.0

    @property
    def coverage_total(self) -> float:
        return self.total_op_us / self.total_wall_us if self.total_wall_us else 0.0

    def check(self, tolerance: float = 0.15) -> bool:
        """Whether the per-op sum is within ``tolerance`` of the measured run time."""
        return abs(self.coverage - 1.0) <= tolerance

    def by_type(self) -> list[TypeRow]:
        """Rows grouped by (op type, engine), largest total first."""
        groups: dict[tuple[str, str], list[OpRow]] = {}
        for r in self.ops:
            groups.setdefault((r.name, r.engine), []).append(r)
        total = self.total_op_us or 1.0
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
        """The ``n`` rows with the largest total time."""
        return sorted(self.ops, key=lambda r: -r.total_us)[:n]

    # -- exports ---------------------------------------------------------
    def to_dict(self, *, top: int = 10) -> dict[str, Any]:
        """JSON-ready: ``ops[]`` (name, node, engine, count, total_us, avg_us,
        percent, per_run_us), ``by_type[]``, ``top[]`` and the check figures."""
        return {
            "model": self.model,
            "model_sha256": self.model_sha256,
            "accelerator": self.accelerator,
            "threads": self.threads,
            "runs": self.runs,
            "wall_us_per_run": self.total_wall_us / self.runs if self.runs else 0.0,
            "op_us_per_run": self.total_op_us / self.runs if self.runs else 0.0,
            "coverage": self.coverage,
            "coverage_total": self.coverage_total,
            "op_coverage": self.op_coverage,
            # Wall time in no profiled event: LiteRT::Run's own work between
            # its instrumented phases, and preemption. Tens of µs per run.
            "unattributed_us_per_run": (self.total_wall_us - self.total_op_us) / self.runs
            if self.runs
            else 0.0,
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
                elif kind == "builtin" or kind == "delegate-node":
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
            f"  wall {self.total_wall_us / max(self.runs, 1) / 1e3:.3f} ms/run, per-op sum "
            f"{self.total_op_us / max(self.runs, 1) / 1e3:.3f} ms/run, coverage "
            f"{100 * self.coverage:.1f}% (median of runs); "
            f"{(self.total_wall_us - self.total_op_us) / max(self.runs, 1):.0f} us/run in no "
            "profiled event",
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


def build_rows(
    events: Sequence[Mapping[str, Any]], runs: int, accelerator: str
) -> tuple[list[OpRow], list[float]]:
    """Rows and the per-run sum of their events, from decoded events."""
    delegate_engine = _engine_for(accelerator)
    runs_with_delegate_ops = {e["run"] for e in events if _kind(e) == "delegate-op"}
    acc: dict[tuple[str, str, str], list[float]] = {}
    per_run = [0.0] * runs
    # A delegate numbers ops within each of its partitions; a partition
    # starts where the numbering does not go up.
    prefix = delegate_engine.split(":")[-1].lower()
    partition: dict[int, tuple[int, int]] = {}  # run -> (partition, last index)
    for e in events:
        kind = _kind(e)
        if kind == "delegate-op":
            part, last = partition.get(e["run"], (-1, 1 << 62))
            if int(e["metadata1"]) <= last:
                part += 1
            partition[e["run"]] = (part, int(e["metadata1"]))
            key = (str(e["tag"]), f"{prefix} {part}:{e['metadata1']}", delegate_engine)
        elif kind == "builtin":
            key = (str(e["tag"]), f"node {e['metadata1']}", "builtin")
        elif kind == "delegate-node":
            if e["run"] in runs_with_delegate_ops:
                continue  # its ops are rows already
            key = (str(e["tag"]), f"node {e['metadata1']}", delegate_engine)
        elif kind == "runtime":
            key = (str(e["tag"]), "runtime", "runtime")
        else:
            continue
        acc.setdefault(key, []).append(float(e["elapsed_us"]))
        if 0 <= e["run"] < runs:
            per_run[e["run"]] += float(e["elapsed_us"])
    # The runtime's own time that no event covers, from its timestamps: inside
    # Invoke between ops, and inside LiteRT::Run between its phases.
    by_run: dict[int, list[Mapping[str, Any]]] = {}
    for e in events:
        by_run.setdefault(e["run"], []).append(e)
    for run, evs in by_run.items():
        if not 0 <= run < runs:
            continue
        invoke = [e for e in evs if e["type"] == DEFAULT and e["tag"] == "Invoke"]
        ops = sum(
            float(e["elapsed_us"])
            for e in evs
            if _kind(e) in ("delegate-op", "builtin")
            or (_kind(e) == "delegate-node" and run not in runs_with_delegate_ops)
        )
        top = [e for e in evs if _kind(e) == "runtime"] + invoke
        gaps = []
        if invoke:
            gaps.append((INVOKE_GAP, max(0.0, sum(float(e["elapsed_us"]) for e in invoke) - ops)))
        if top:
            begin = min(int(e["start_us"]) for e in top)
            end = max(int(e["start_us"]) + int(e["elapsed_us"]) for e in top)
            covered = sum(float(e["elapsed_us"]) for e in top)
            gaps.append((RUN_GAP, max(0.0, (end - begin) - covered)))
        for name, us in gaps:
            acc.setdefault((name, "runtime", "runtime"), []).append(us)
            per_run[run] += us
    total = sum(sum(v) for v in acc.values()) or 1.0
    rows = []
    for (name, node, engine), times in acc.items():
        t = sum(times)
        rows.append(
            OpRow(
                name=name,
                node=node,
                engine=engine,
                count=len(times),
                total_us=t,
                avg_us=t / len(times),
                percent=100.0 * t / total,
                per_run_us=t / max(runs, 1),
            )
        )
    return rows, per_run


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
    if len(events) >= MAX_EVENTS or (max(per_run_events) > 0 and min(per_run_events) == 0):
        # The runtime's buffer holds MAX_EVENTS events; later runs recorded none.
        raise InputError(
            f"{runs} runs overflow the runtime's profiler buffer "
            f"({MAX_EVENTS} events, {max(per_run_events)} per run here); "
            "profile fewer runs"
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
        op_sum_us=per_run,
        summary=str(raw["summary"]),
        layout=str(raw["layout"]),
        layout_note=str(raw["layout_note"]),
        dropped=[
            {"run": d[0], "tag": d[1], "type": d[2], "elapsed_us": d[4]} for d in raw["dropped"]
        ][:20],
        events=events,
        run_start_us=list(raw["run_start_us"]),
    )
