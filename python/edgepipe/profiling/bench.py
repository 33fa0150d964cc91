"""The benchmark engine behind ``edgepipe bench``.

Figures follow TFLite's ``benchmark_model`` (init, first inference, warm-up,
steady-state latency distribution, throughput) and go further:

- sweeps: every combination of ``threads`` × ``workers`` × ``accelerators``,
  measured in interleaved rounds (each round runs a slice of every
  configuration, in a rotated order) so that a noisy moment hits all of them
  alike; the best configuration (highest throughput) is marked;
- real inputs (``.npz`` file or a folder of them) or random ones in a range;
- a time cap (``max_secs``) and a delay between runs (``run_delay``);
- model-attributable memory: the RssAnon and Pss growth caused by loading the
  model and by each configuration's instances (not the process peak);
- a per-op profile of the best configuration (:mod:`edgepipe.profiling.profile`).
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import Model, Pool, Session, TensorInfo, accelerators, runtime_version
from ..errors import InputError
from ..models import default_model_path
from .profile import profile as run_profile
from .profile import random_inputs

# -- configuration ----------------------------------------------------------------


@dataclass(frozen=True)
class BenchConfig:
    """One point of a sweep. ``workers=None`` benchmarks a plain Session."""

    accelerator: str = "cpu"  # one choice; "npu>gpu" is a preference list
    threads: int | None = None
    workers: int | None = None

    @property
    def label(self) -> str:
        t = "default" if self.threads is None else str(self.threads)
        w = "session" if self.workers is None else f"pool x{self.workers}"
        return f"{self.accelerator} t={t} {w}"


def parse_int_list(text: str | None, what: str) -> list[int | None]:
    """``"1,2,4"`` → ``[1, 2, 4]``; None → ``[None]``."""
    if text is None:
        return [None]
    try:
        values = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError as exc:
        raise InputError(f"{what} takes a number or a list like 1,2,4, not {text!r}") from exc
    if not values or any(v < 1 for v in values):
        raise InputError(f"{what} values must be >= 1, got {text!r}")
    return list(dict.fromkeys(values))


def parse_accelerators(text: str | None) -> list[str]:
    """``"cpu,gpu"`` → two configurations; ``"npu>gpu"`` is one preference list."""
    if not text:
        return ["cpu"]
    items = [x.strip() for x in str(text).split(",") if x.strip()]
    if not items:
        raise InputError(f"--accelerator {text!r} names no accelerator")
    return list(dict.fromkeys(items))


def configurations(
    accelerators: Sequence[str], threads: Sequence[int | None], workers: Sequence[int | None]
) -> list[BenchConfig]:
    """Every combination, accelerator-major."""
    return [BenchConfig(a, t, w) for a, t, w in itertools.product(accelerators, threads, workers)]


# -- inputs -----------------------------------------------------------------------


def _samples_from_npz(path: Path, infos: Sequence[TensorInfo]) -> list[dict[str, np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read inputs from {path}: {exc}") from exc
    by_name = all(t.name in arrays for t in infos)
    if not by_name:
        keys = list(arrays)
        if len(keys) != len(infos):
            raise InputError(
                f"{path} holds {keys}; the model takes {[t.name for t in infos]} "
                "(name the arrays after the inputs, or give one array per input in order)"
            )
        arrays = {t.name: arrays[k] for t, k in zip(infos, keys)}
    counts = set()
    for t in infos:
        a = arrays[t.name]
        shape = tuple(1 if d < 0 else d for d in t.shape)
        if t.dtype is not None and a.dtype != t.dtype:
            raise InputError(f"{path}: input {t.name!r} is {a.dtype}, the model takes {t.dtype}")
        if a.shape == shape:
            counts.add(0)
        elif a.shape[1:] == shape:
            counts.add(a.shape[0])
        else:
            raise InputError(
                f"{path}: input {t.name!r} has shape {a.shape}, the model takes "
                f"{shape} (or N samples stacked: (N, *{shape}))"
            )
    if counts == {0}:
        return [{t.name: np.ascontiguousarray(arrays[t.name]) for t in infos}]
    if len(counts) != 1 or 0 in counts:
        raise InputError(f"{path}: inputs must all be single samples or all stack the same N")
    n = counts.pop()
    return [{t.name: np.ascontiguousarray(arrays[t.name][i]) for t in infos} for i in range(n)]


def load_inputs(
    path: str | os.PathLike[str], infos: Sequence[TensorInfo]
) -> list[dict[str, np.ndarray]]:
    """Samples from an ``.npz`` file (arrays named after the inputs, or in
    order; a leading N stacks N samples) or a folder of such files."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix == ".npz" and f.is_file())
        if not files:
            raise InputError(f"{p} holds no .npz files")
        out: list[dict[str, np.ndarray]] = []
        for f in files:
            out.extend(_samples_from_npz(f, infos))
        return out
    if not p.is_file():
        raise InputError(f"inputs {p} is not a file or a folder")
    return _samples_from_npz(p, infos)


def parse_range(text: str | None) -> tuple[float, float] | None:
    """``"-1,1"`` → ``(-1.0, 1.0)``."""
    if text is None:
        return None
    parts = str(text).split(",")
    try:
        lo, hi = (float(x) for x in parts)
    except ValueError as exc:
        raise InputError(f"--input-range takes LOW,HIGH, not {text!r}") from exc
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise InputError(f"--input-range needs finite LOW < HIGH, got {text!r}")
    return lo, hi


# -- memory -----------------------------------------------------------------------


def memory_mb() -> dict[str, float]:
    """This process's anonymous resident memory (RssAnon) and proportional set
    size (Pss) in MB; NaN where /proc does not have them."""
    out = {"rss_anon_mb": float("nan"), "pss_mb": float("nan")}
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    out["rss_anon_mb"] = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    try:
        with open("/proc/self/smaps_rollup", encoding="ascii") as f:
            for line in f:
                if line.startswith("Pss:"):
                    out["pss_mb"] = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return out


def _delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in after}


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (NaN where ``resource`` is missing)."""
    try:
        import resource  # POSIX only: edgepipe imports on platforms without it
    except ImportError:
        return float("nan")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _percentiles(latencies_ms: Sequence[float]) -> dict[str, float]:
    a = np.asarray(latencies_ms, dtype=np.float64)
    if a.size == 0:
        return {k: float("nan") for k in ("mean", "std", "min", "p50", "p90", "p99", "max")}
    return {
        "mean": float(a.mean()),
        "std": float(a.std()),
        "min": float(a.min()),
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
    }


# -- runners ----------------------------------------------------------------------


def _events(obj: Any) -> list[dict[str, Any]]:
    ev = obj.events
    return list(ev() if callable(ev) else ev)


def bench_fields(runner: Any) -> dict[str, Any]:
    """``{"accelerator", "fallbacks"}`` of a Session or Pool, as ``bench --json`` shows them.

    For a pool, ``accelerator`` is that of most workers and
    ``worker_accelerators`` lists each one.
    """
    if hasattr(runner, "stats") and hasattr(runner, "workers"):
        per_worker = list(runner.stats()["worker_accelerators"])
        acc = max(set(per_worker), key=per_worker.count) if per_worker else "cpu"
        return {"accelerator": acc, "worker_accelerators": per_worker, "fallbacks": _events(runner)}
    return {"accelerator": runner.accelerator, "fallbacks": _events(runner)}


def _pool_parameters() -> set[str]:
    import inspect

    return set(inspect.signature(Pool).parameters)


class _Runner:
    """A Session or a Pool for one configuration, measured in batches."""

    def __init__(
        self, model: Model, config: BenchConfig, accel_kwargs: dict[str, Any], clients: int | None
    ) -> None:
        self.config = config
        before = memory_mb()
        t0 = time.perf_counter()
        self.pool: Pool | None = None
        self.session: Session | None = None
        if config.workers is None:
            self.session = Session(model, threads=config.threads, **accel_kwargs)
            self.infos = self.session.inputs
        else:
            self.clients = clients or 2 * config.workers
            threads_kw = "threads" if "threads" in _pool_parameters() else "threads_per_worker"
            pool_kwargs: dict[str, Any] = {threads_kw: config.threads or 1, **accel_kwargs}
            self.pool = Pool(
                model, workers=config.workers, queue_size=max(64, 4 * self.clients), **pool_kwargs
            )
            self.infos = self.pool.inputs
        self.init_ms = (time.perf_counter() - t0) * 1e3
        self._mem_before = before
        self.memory: dict[str, float] = {}
        self.first_ms = float("nan")
        self.warmup_ms: float | None = None
        self.latencies: list[float] = []
        self.busy_s = 0.0

    def warm(self, sample: dict[str, np.ndarray], warmup: int) -> None:
        t = time.perf_counter()
        self._one(sample)
        self.first_ms = (time.perf_counter() - t) * 1e3
        warm = []
        for _ in range(max(warmup, self.config.workers or 0)):
            t = time.perf_counter()
            self._one(sample)
            warm.append((time.perf_counter() - t) * 1e3)
        self.warmup_ms = float(np.mean(warm)) if warm else None
        # After the first runs: XNNPACK packs weights and plans on first use.
        self.memory = _delta(memory_mb(), self._mem_before)

    def _one(self, sample: dict[str, np.ndarray]) -> None:
        if self.session is not None:
            self.session.run(sample)
        else:
            assert self.pool is not None
            self.pool.run(sample)

    def batch(
        self,
        n: int,
        samples: Callable[[], dict[str, np.ndarray]],
        run_delay: float,
        tick: Callable[[int], None],
    ) -> None:
        """Run ``n`` requests; latencies in ms go to ``self.latencies``."""
        if self.session is not None:
            for _ in range(n):
                x = samples()
                t = time.perf_counter()
                self.session.run(x)
                dt = time.perf_counter() - t
                self.latencies.append(dt * 1e3)
                self.busy_s += dt
                tick(1)
                if run_delay:
                    time.sleep(run_delay)
            return
        assert self.pool is not None
        pool = self.pool
        remaining = [n]
        lock = threading.Lock()
        lat: list[float] = []
        errors: list[BaseException] = []

        def client() -> None:
            try:
                while True:
                    with lock:
                        if remaining[0] <= 0:
                            return
                        remaining[0] -= 1
                        x = samples()
                    t = time.perf_counter()
                    pool.run(x)
                    dt = (time.perf_counter() - t) * 1e3
                    with lock:
                        lat.append(dt)
                    tick(1)
                    if run_delay:
                        time.sleep(run_delay)
            except BaseException as exc:  # re-raised below, in the caller's thread
                errors.append(exc)

        threads = [threading.Thread(target=client) for _ in range(min(self.clients, n))]
        start = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        self.busy_s += time.perf_counter() - start - (run_delay * n / max(len(threads), 1))
        self.latencies.extend(lat)
        if errors:
            raise errors[0]

    def result(self, model: Model, path: Path) -> dict[str, Any]:
        runner: Any = self.session if self.session is not None else self.pool
        runs = len(self.latencies)
        out: dict[str, Any] = {
            "label": self.config.label,
            "mode": "session" if self.session is not None else "pool",
            "model": str(path),
            "model_sha256": model.sha256,
            "requested_accelerator": self.config.accelerator,
            "threads": self.config.threads,
            "workers": self.config.workers,
            "runs": runs,
            "init_ms": self.init_ms,
            "first_inference_ms": self.first_ms,
            "warmup_ms": self.warmup_ms,
            "latency_ms": _percentiles(self.latencies),
            "throughput_per_s": runs / self.busy_s if self.busy_s > 0 else 0.0,
            "memory_mb": self.memory,
            **bench_fields(runner),
        }
        if self.session is not None:
            out["fully_accelerated"] = self.session.fully_accelerated
        else:
            assert self.pool is not None
            stats = self.pool.stats()
            out["clients"] = self.clients
            out["threads_per_worker"] = self.config.threads or 1
            out["rss_per_worker_mb"] = self.memory.get("rss_anon_mb", float("nan")) / (
                self.config.workers or 1
            )
            out["queue_wait_us_p50"] = stats["queue_wait"]["p50_us"]
            out["run_time_us_p50"] = stats["run_time"]["p50_us"]
        return out

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
        if self.session is not None:
            self.session.close()


# -- the engine -------------------------------------------------------------------


def _accel_kwargs(
    model: Model, accelerator: str, plugin_options: dict[str, str] | None
) -> dict[str, Any]:
    spec = accelerator.replace(">", ",")
    choice = accelerators.resolve_accelerator(model, spec, plugin_options=plugin_options or {})
    return dict(choice.kwargs())


def _progress(total: int, enabled: bool | None) -> Any:
    """A tqdm bar on a terminal (stderr), nothing when piped."""
    show = sys.stderr.isatty() if enabled is None else enabled
    if not show:
        return None
    from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]

    return tqdm(total=total, unit="run", file=sys.stderr, dynamic_ncols=True, leave=False)


def bench(
    model_path: str | os.PathLike[str] | None = None,
    *,
    configs: Sequence[BenchConfig] | None = None,
    runs: int = 50,
    warmup: int = 5,
    rounds: int | None = None,
    clients: int | None = None,
    inputs: str | os.PathLike[str] | None = None,
    input_range: tuple[float, float] | None = None,
    max_secs: float | None = None,
    run_delay: float = 0.0,
    plugin_options: dict[str, str] | None = None,
    profile: bool = False,
    profile_runs: int | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Benchmark every configuration of ``configs`` on one model.

    Args:
        model_path: the model (default: the bundled one).
        configs: sweep points (default: one CPU session).
        runs: measured requests per configuration (fewer if ``max_secs`` ends it).
        warmup: unmeasured runs per configuration after the first.
        rounds: interleaved rounds (default: up to 5, one per 10 runs).
        clients: closed-loop client threads per pool (default: 2 × workers).
        inputs: an ``.npz`` file or a folder of them (samples are cycled).
        input_range: ``(low, high)`` of random inputs (default [0, 1) / [-100, 100]).
        max_secs: stop measuring after this many seconds (each configuration
            keeps at least one measured run).
        run_delay: seconds to sleep after each request.
        profile: also profile the best configuration op by op.
        profile_runs: profiled runs (default: ``min(runs, 50)``, at least 10).
        progress: show a progress bar (default: when stderr is a terminal).

    Returns:
        ``{"configs": [...], "best": {...}, "profile": {...}?, ...}``.
    """
    if runs < 1 or warmup < 0:
        raise InputError(f"runs must be >= 1 and warmup >= 0, got {runs} and {warmup}")
    if run_delay < 0 or (max_secs is not None and not max_secs > 0):
        raise InputError("run_delay must be >= 0 and max_secs > 0")
    configs = list(configs or [BenchConfig()])
    path = Path(model_path) if model_path else default_model_path()
    mem0 = memory_mb()
    t0 = time.perf_counter()
    model = Model.load(path)
    load_ms = (time.perf_counter() - t0) * 1e3
    model_mem = _delta(memory_mb(), mem0)
    if inputs is not None:
        samples = load_inputs(inputs, model.inputs)
    else:
        samples = [random_inputs(model.inputs, value_range=input_range)]
    cycle: Iterator[dict[str, np.ndarray]] = itertools.cycle(samples)
    lock = threading.Lock()

    def next_sample() -> dict[str, np.ndarray]:
        with lock:
            return next(cycle)

    rounds = rounds or max(1, min(5, runs // 10))
    per_round = [runs // rounds + (1 if i < runs % rounds else 0) for i in range(rounds)]
    bar = _progress(runs * len(configs), progress)
    tick: Callable[[int], None] = bar.update if bar is not None else (lambda n: None)
    runners: list[_Runner] = []
    deadline = time.monotonic() + max_secs if max_secs else math.inf
    stopped_early = False
    try:
        for c in configs:
            kwargs = _accel_kwargs(model, c.accelerator, plugin_options)
            r = _Runner(model, c, kwargs, clients)
            r.warm(samples[0], warmup)
            runners.append(r)
        for k, n in enumerate(per_round):
            order = runners[k % len(runners) :] + runners[: k % len(runners)]
            for r in order:
                if time.monotonic() > deadline and r.latencies:
                    stopped_early = True
                    continue
                r.batch(n, next_sample, run_delay, tick)
        results = [r.result(model, path) for r in runners]
    finally:
        if bar is not None:
            bar.close()
        for r in runners:
            r.close()
    best = max(
        range(len(results)),
        key=lambda i: (results[i]["throughput_per_s"], -results[i]["latency_ms"]["p50"]),
    )
    for i, res in enumerate(results):
        res["best"] = i == best
        res["load_ms"] = load_ms
        res["compile_ms"] = res["init_ms"]
        res["init_ms"] = load_ms + res["init_ms"]
    out: dict[str, Any] = {
        "model": str(path),
        "model_sha256": model.sha256,
        "runtime_version": runtime_version(),
        "settings": {
            "runs": runs,
            "warmup": warmup,
            "rounds": rounds,
            "max_secs": max_secs,
            "run_delay": run_delay,
            "inputs": str(inputs) if inputs else "random",
            "samples": len(samples),
            "input_range": input_range,
            "stopped_early": stopped_early,
        },
        "load_ms": load_ms,
        "model_memory_mb": model_mem,
        "peak_rss_mb": peak_rss_mb(),
        "configs": results,
        "best": {"index": best, "label": results[best]["label"], "by": "throughput_per_s"},
        "_latencies_ms": [list(r.latencies) for r in runners],
    }
    if profile:
        b = results[best]
        n = profile_runs or max(10, min(runs, 50))
        prof = run_profile(
            model,
            runs=n,
            warmup=max(1, min(warmup, 5)),
            accelerator=b["accelerator"],
            threads=b["threads"],
            inputs=samples[0],
        )
        out["profile"] = prof.to_dict()
        out["profile"]["config"] = b["label"]
        out["_profile"] = prof
    return out


def public(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` without the private ``_``-keys (raw latencies, Profile object)."""
    return {k: v for k, v in result.items() if not k.startswith("_")}


def flat_single(result: dict[str, Any]) -> dict[str, Any]:
    """A one-configuration result as one flat object (``bench --json`` without a sweep)."""
    out = dict(result["configs"][0])
    for key in ("runtime_version", "settings", "model_memory_mb", "peak_rss_mb", "profile"):
        if key in result:
            out[key] = result[key]
    out["warmup"] = result["settings"]["warmup"]
    return out


# -- reports ----------------------------------------------------------------------


def format_report(result: dict[str, Any]) -> str:
    """Text report: benchmark_model's figures per configuration, the best marked."""
    lines = [
        f"Model: {result['model']}",
        f"  sha256 {result['model_sha256']}, runtime LiteRT {result['runtime_version']}",
        f"  load {result['load_ms']:.2f} ms; model memory: RssAnon "
        f"{result['model_memory_mb']['rss_anon_mb']:+.1f} MB, Pss "
        f"{result['model_memory_mb']['pss_mb']:+.1f} MB",
    ]
    s = result["settings"]
    lines.append(
        f"  {s['runs']} runs per configuration in {s['rounds']} interleaved rounds, "
        f"inputs: {s['inputs']}" + (" (stopped at --max-secs)" if s["stopped_early"] else "")
    )
    for r in result["configs"]:
        lat = r["latency_ms"]
        mark = "  <== best" if r["best"] and len(result["configs"]) > 1 else ""
        lines.append("")
        lines.append(f"[{r['label']}] Accelerator: {r['accelerator']}{mark}")
        lines.extend(
            f"  fallback {e['from']} -> {e['to'] or 'none'} at {e['stage']}: {e['error']}"
            for e in r["fallbacks"]
        )
        lines.append(
            f"  Init: {r['init_ms']:.2f} ms (load {r['load_ms']:.2f} ms, compile "
            f"{r['compile_ms']:.2f} ms)"
        )
        lines.append(f"  First inference: {r['first_inference_ms']:.3f} ms")
        if r["warmup_ms"] is not None:
            lines.append(f"  Warmup ({s['warmup']} runs): mean {r['warmup_ms']:.3f} ms")
        lines.append(
            f"  Inference ({r['runs']} runs): mean {lat['mean']:.3f} ms, std "
            f"{lat['std']:.3f}, p50 {lat['p50']:.3f}, p90 {lat['p90']:.3f}, p99 "
            f"{lat['p99']:.3f}, max {lat['max']:.3f}"
        )
        lines.append(f"  Throughput: {r['throughput_per_s']:.1f} inferences/s")
        m = r["memory_mb"]
        lines.append(
            f"  Memory of this configuration: RssAnon {m['rss_anon_mb']:+.1f} MB, "
            f"Pss {m['pss_mb']:+.1f} MB"
        )
    lines.append("")
    lines.append(f"Peak RSS: {result['peak_rss_mb']:.1f} MB")
    prof = result.get("_profile")
    if prof is not None:
        lines.append("")
        lines.append(prof.format_table(top=int(result.get("_top", 15))))
    return "\n".join(lines)


CSV_FIELDS = (
    "label",
    "accelerator",
    "threads",
    "workers",
    "runs",
    "init_ms",
    "first_inference_ms",
    "mean_ms",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "throughput_per_s",
    "rss_anon_mb",
    "pss_mb",
    "best",
)


def to_csv(result: dict[str, Any]) -> str:
    """One line per configuration (:data:`CSV_FIELDS`)."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_FIELDS)
    for r in result["configs"]:
        lat = r["latency_ms"]
        w.writerow(
            [
                r["label"],
                r["accelerator"],
                r["threads"] or "",
                r["workers"] or "",
                r["runs"],
                f"{r['init_ms']:.3f}",
                f"{r['first_inference_ms']:.3f}",
                f"{lat['mean']:.4f}",
                f"{lat['p50']:.4f}",
                f"{lat['p90']:.4f}",
                f"{lat['p99']:.4f}",
                f"{lat['max']:.4f}",
                f"{r['throughput_per_s']:.3f}",
                f"{r['memory_mb']['rss_anon_mb']:.2f}",
                f"{r['memory_mb']['pss_mb']:.2f}",
                int(r["best"]),
            ]
        )
    return buf.getvalue()
