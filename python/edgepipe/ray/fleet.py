"""Fleet benchmarks: the same benchmark on every node of a Ray cluster.

Nodes are chosen by the custom resources they advertise (``ray start
--resources='{"device:rpi5": 1}'``): with ``resources=["device:rpi5",
"device:x86"]`` each node holding one of them runs the benchmark once per
resource it holds, pinned to it with a hard node-affinity rule and a sliver of
that resource (so Ray itself enforces the match); without resources every alive
node runs it once. Each node loads the model shipped by hash, verifies it, and
measures load, compile, first run and steady-state latency with a
:class:`~edgepipe.Session`. A node that fails reports why; the others still report.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import Model, runtime_version
from .errors import connect, require_ray
from .shipping import ModelRef

#: Share of a custom resource a benchmark task asks for: enough for Ray to pin it.
RESOURCE_SLIVER = 0.001


def device_description() -> dict[str, Any]:
    """What this node is: machine, OS, CPU model, usable cores, LiteRT version."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return {
        "hostname": platform.node(),
        "machine": platform.machine(),
        "system": platform.platform(),
        "cpu": cpu,
        "cores": cores,
        "litert": runtime_version(),
    }


def bench_here(model: ModelRef, *, runs: int, warmup: int, threads: int) -> dict[str, Any]:
    """Benchmark ``model`` on this node (the body of each fleet task)."""
    t0 = time.perf_counter()
    m: Model = model.load()
    t1 = time.perf_counter()
    session = m.compile("cpu", threads=threads)
    t2 = time.perf_counter()
    rng = np.random.default_rng(0)
    inputs = {}
    for t in session.inputs:
        shape = tuple(1 if d < 0 else d for d in t.shape)
        dtype = t.dtype if t.dtype is not None else np.float32
        inputs[t.name] = (rng.random(shape) * 2 - 1).astype(dtype)
    session.run(inputs)
    t3 = time.perf_counter()
    for _ in range(warmup):
        session.run(inputs)
    lat = np.empty(runs)
    for i in range(runs):
        s = time.perf_counter()
        session.run(inputs)
        lat[i] = (time.perf_counter() - s) * 1e3
    session.close()
    return {
        "ran_on": require_ray().get_runtime_context().get_node_id(),
        "load_ms": (t1 - t0) * 1e3,
        "compile_ms": (t2 - t1) * 1e3,
        "first_ms": (t3 - t2) * 1e3,
        "latency_ms": {
            "mean": float(lat.mean()),
            "p50": float(np.percentile(lat, 50)),
            "p90": float(np.percentile(lat, 90)),
            "p99": float(np.percentile(lat, 99)),
            "min": float(lat.min()),
        },
        "throughput_per_s": float(1e3 / lat.mean()),
        "device": device_description(),
    }


def fleet_bench(
    model: Model | str | os.PathLike[str],
    *,
    address: str | None = None,
    resources: Sequence[str] = (),
    runs: int = 50,
    warmup: int = 5,
    threads: int = 1,
    timeout: float = 600.0,
) -> list[dict[str, Any]]:
    """One row per (node, resource): the node's figures, or ``ok: False`` and why.

    ``node_id`` is the node the row was planned for, ``ran_on`` the node the
    benchmark task reported it ran on (the same, by the hard affinity rule).

    A requested resource that no alive node holds gives a row with ``node_id``
    None saying so.
    """
    ray = connect(address)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ref = ModelRef.from_model(model)
    remote = ray.remote(bench_here)
    plan: list[tuple[dict[str, Any], Any]] = []  # (row, task or None when already decided)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    wanted: list[str | None] = list(resources) if resources else [None]
    for res in wanted:
        holders = [n for n in nodes if res is None or res in n.get("Resources", {})]
        if not holders:
            plan.append(
                (
                    {
                        "node_id": None,
                        "resource": res,
                        "ok": False,
                        "error": f"no alive node advertises resource {res!r}",
                    },
                    None,
                )
            )
            continue
        for n in holders:
            opts: dict[str, Any] = {
                "scheduling_strategy": NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
                "num_cpus": 0,
                "max_retries": 0,
            }
            if res in ("CPU", "GPU"):  # Ray's own resources have their own keywords
                opts["num_cpus" if res == "CPU" else "num_gpus"] = RESOURCE_SLIVER
            elif res is not None:
                opts["resources"] = {res: RESOURCE_SLIVER}
            row = {"node_id": n["NodeID"], "address": n.get("NodeManagerAddress"), "resource": res}
            try:
                task = remote.options(**opts).remote(ref, runs=runs, warmup=warmup, threads=threads)
            except ValueError as exc:  # Ray refused the options (a reserved resource name)
                row.update(ok=False, error=f"cannot schedule on resource {res!r}: {exc}")
                task = None
            plan.append((row, task))
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    for row, task in plan:
        if task is None:
            rows.append(row)
            continue
        try:
            figures = ray.get(task, timeout=max(0.0, deadline - time.monotonic()))
            row.update(ok=True, **figures)
        except Exception as exc:  # a node's failure is reported in its row
            ray.cancel(task, force=True)
            row.update(ok=False, error=f"{type(exc).__name__}: {exc}".splitlines()[0][:500])
        rows.append(row)
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The comparison table ``edgepipe bench --ray`` prints."""
    head = f"{'node':<10} {'resource':<16} {'machine':<8} {'p50 ms':>8} {'p99 ms':>8} "
    head += f"{'runs/s':>8}  device / error"
    lines = [head]
    for r in rows:
        node = (r.get("node_id") or "-")[:8]
        res = str(r.get("resource") or "-")
        if r.get("ok"):
            d = r["device"]
            lat = r["latency_ms"]
            lines.append(
                f"{node:<10} {res:<16} {d['machine']:<8} {lat['p50']:>8.3f} {lat['p99']:>8.3f} "
                f"{r['throughput_per_s']:>8.1f}  {d['cpu']} ({d['cores']} cores)"
            )
        else:
            lines.append(
                f"{node:<10} {res:<16} {'-':<8} {'-':>8} {'-':>8} {'-':>8}  "
                f"FAILED: {r.get('error')}"
            )
    return "\n".join(lines)


def plot(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> None:
    """A bar chart of p50 and p99 latency per node (needs matplotlib: ``edgepipe[plot]``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        from .errors import RayUnavailableError

        raise RayUnavailableError("plots need matplotlib: pip install 'edgepipe[plot]'") from exc
    ok = [r for r in rows if r.get("ok")]
    labels = [f"{(r['node_id'] or '')[:8]}\n{r.get('resource') or ''}" for r in ok]
    x = np.arange(len(ok))
    fig, ax = plt.subplots(figsize=(max(4, 1.5 * len(ok) + 2), 4))
    ax.bar(x - 0.2, [r["latency_ms"]["p50"] for r in ok], 0.4, label="p50")
    ax.bar(x + 0.2, [r["latency_ms"]["p99"] for r in ok], 0.4, label="p99")
    ax.set_xticks(x, labels)
    ax.set_ylabel("latency (ms)")
    ax.set_title("edgepipe fleet benchmark")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
