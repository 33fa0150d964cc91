"""The benchmark harness behind ``edgepipe bench``.

Figures follow TFLite's ``benchmark_model``: init (load + compile), first
inference, warm-up mean, then the distribution of steady-state latencies,
throughput and peak RSS. Latencies here are wall-clock per call, in
milliseconds, measured with ``time.perf_counter`` (sub-microsecond
resolution); :meth:`edgepipe.Pool.stats` histograms are in microseconds.
"""

from __future__ import annotations

import os
import resource
import statistics
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import _args
from ._runtime import runtime_version
from .accelerators.spec import AcceleratorSpec
from .model import Model
from .models import default_model_path
from .pool import Pool
from .session import Session
from .tensors import random_inputs


def bench_fields(runner: Session | Pool) -> dict[str, Any]:
    """``{"accelerator", "fallbacks"}`` of a Session or Pool for ``bench --json``.

    For a pool, ``accelerator`` is the accelerator of most workers and
    ``worker_accelerators`` lists each one.
    """
    if isinstance(runner, Pool):
        per_worker = list(runner.stats()["worker_accelerators"])
        acc = max(set(per_worker), key=per_worker.count) if per_worker else "cpu"
        return {
            "accelerator": acc,
            "worker_accelerators": per_worker,
            "fallbacks": list(runner.events),
        }
    return {"accelerator": runner.accelerator, "fallbacks": list(runner.events)}


def _percentiles(latencies_ms: Sequence[float]) -> dict[str, float]:
    a = np.asarray(latencies_ms, dtype=np.float64)
    return {
        "mean": float(a.mean()),
        "std": float(a.std()),
        "min": float(a.min()),
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
    }


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_anon_mb() -> float:
    """Current anonymous resident memory (RssAnon) in MB; shared file maps excluded."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def bench_session(
    model_path: str | os.PathLike[str] | None = None,
    *,
    runs: int = 50,
    warmup: int = 5,
    threads: int | None = None,
    accelerator: AcceleratorSpec = "cpu",
    plugin_options: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Benchmark one session the way ``benchmark_model`` does."""
    runs = _args.integer("runs", runs, low=1)
    warmup = _args.integer("warmup", warmup, low=0)
    path = Path(model_path) if model_path else default_model_path()
    t0 = time.perf_counter()
    model = Model.load(path)
    t_load = time.perf_counter()
    session = Session(
        model, accelerator=accelerator, threads=threads, plugin_options=plugin_options
    )
    t_init = time.perf_counter()
    inputs = random_inputs(session.inputs)
    t = time.perf_counter()
    session.run(inputs)
    first_ms = (time.perf_counter() - t) * 1e3
    warm: list[float] = []
    for _ in range(warmup):
        t = time.perf_counter()
        session.run(inputs)
        warm.append((time.perf_counter() - t) * 1e3)
    lat: list[float] = []
    start = time.perf_counter()
    for _ in range(runs):
        t = time.perf_counter()
        session.run(inputs)
        lat.append((time.perf_counter() - t) * 1e3)
    total = time.perf_counter() - start
    return {
        "mode": "session",
        "model": str(path),
        "model_sha256": model.sha256,
        "runtime_version": runtime_version(),
        **bench_fields(session),
        "fully_accelerated": session.fully_accelerated,
        "threads": threads,
        "runs": runs,
        "warmup": warmup,
        "init_ms": (t_init - t0) * 1e3,
        "load_ms": (t_load - t0) * 1e3,
        "compile_ms": (t_init - t_load) * 1e3,
        "first_inference_ms": first_ms,
        "warmup_ms": statistics.fmean(warm) if warm else None,
        "latency_ms": _percentiles(lat),
        "throughput_per_s": runs / total,
        "peak_rss_mb": peak_rss_mb(),
    }


def bench_pool(
    model_path: str | os.PathLike[str] | None = None,
    *,
    workers: int = 2,
    clients: int | None = None,
    runs: int = 200,
    warmup: int = 5,
    threads: int = 1,
    accelerator: AcceleratorSpec = "cpu",
    plugin_options: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Throughput of a pool with ``clients`` closed-loop client threads.

    ``runs`` requests in total are shared by the clients; latency is each
    request's time from submit to result. ``rss_per_worker_mb`` is the
    anonymous memory the pool added after its first runs, per worker.
    """
    workers = _args.integer("workers", workers, low=1, high=_args.MAX_WORKERS)
    runs = _args.integer("runs", runs, low=1)
    warmup = _args.integer("warmup", warmup, low=0)
    clients = _args.integer(
        "clients", 2 * workers if clients is None else clients, low=1, high=1024
    )
    path = Path(model_path) if model_path else default_model_path()
    model = Model.load(path)
    anon_before = rss_anon_mb()
    t0 = time.perf_counter()
    # The shared weight cache, as a serving pool would use it (rss_per_worker_mb).
    pool = Pool(
        model,
        workers=workers,
        threads=threads,
        accelerator=accelerator,
        weight_cache=True,
        plugin_options=plugin_options,
        queue_size=max(64, 4 * clients),
    )
    init_ms = (time.perf_counter() - t0) * 1e3
    try:
        inputs = random_inputs(pool.inputs)
        for f in [pool.submit(inputs) for _ in range(max(warmup, workers))]:
            f.result()
        anon_after = rss_anon_mb()
        remaining = [runs]
        lock = threading.Lock()
        per_client: list[list[float]] = [[] for _ in range(clients)]

        def client(i: int) -> None:
            while True:
                with lock:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                t = time.perf_counter()
                pool.run(inputs)
                per_client[i].append((time.perf_counter() - t) * 1e3)

        threads_list = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        start = time.perf_counter()
        for th in threads_list:
            th.start()
        for th in threads_list:
            th.join()
        total = time.perf_counter() - start
        lat = [x for c in per_client for x in c]
        stats = pool.stats()
        return {
            "mode": "pool",
            "model": str(path),
            "model_sha256": model.sha256,
            "runtime_version": runtime_version(),
            **bench_fields(pool),
            "workers": workers,
            "clients": clients,
            "threads_per_worker": threads,
            "runs": runs,
            "init_ms": init_ms,
            "latency_ms": _percentiles(lat),
            "throughput_per_s": runs / total,
            "rss_per_worker_mb": (anon_after - anon_before) / workers,
            "queue_wait_us_p50": stats["queue_wait"]["p50_us"],
            "run_time_us_p50": stats["run_time"]["p50_us"],
            "peak_rss_mb": peak_rss_mb(),
        }
    finally:
        pool.close()


def format_session_report(r: dict[str, Any]) -> str:
    """Human-readable report in benchmark_model's order."""
    lat = r["latency_ms"]
    lines = [
        f"Model: {r['model']}",
        f"  sha256 {r['model_sha256']}, runtime LiteRT {r['runtime_version']}",
        f"Accelerator: {r['accelerator']}",
    ]
    for e in r["fallbacks"]:
        to = e["to"] or "none"
        lines.append(f"  fallback {e['from']} -> {to} at {e['stage']}: {e['error']}")
    lines += [
        f"Init: {r['init_ms']:.2f} ms "
        f"(load {r['load_ms']:.2f} ms, compile {r['compile_ms']:.2f} ms)",
        f"First inference: {r['first_inference_ms']:.3f} ms",
    ]
    if r["warmup_ms"] is not None:
        lines.append(f"Warmup ({r['warmup']} runs): mean {r['warmup_ms']:.3f} ms")
    lines += [
        f"Inference ({r['runs']} runs): mean {lat['mean']:.3f} ms, std {lat['std']:.3f}, "
        f"p50 {lat['p50']:.3f}, p90 {lat['p90']:.3f}, p99 {lat['p99']:.3f}, max {lat['max']:.3f}",
        f"Throughput: {r['throughput_per_s']:.1f} inferences/s",
        f"Peak RSS: {r['peak_rss_mb']:.1f} MB",
    ]
    return "\n".join(lines)


def format_pool_report(r: dict[str, Any]) -> str:
    """Human-readable report of one pool measurement."""
    lat = r["latency_ms"]
    return (
        f"workers {r['workers']} clients {r['clients']} on {r['accelerator']}: "
        f"{r['throughput_per_s']:.1f} inferences/s, latency p50 {lat['p50']:.3f} ms "
        f"p90 {lat['p90']:.3f} p99 {lat['p99']:.3f} max {lat['max']:.3f}, "
        f"anon memory {r['rss_per_worker_mb']:.1f} MB/worker"
    )
