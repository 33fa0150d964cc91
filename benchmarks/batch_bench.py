#!/usr/bin/env python3
"""Dynamic batching: a pool with ``max_batch`` against the same pool without, and the peer.

One run, interleaved rounds, ONE JSON document on stdout (progress on stderr).
Per model, three contenders, all on one CPU thread of inference:

- ``pool_batched``: ``Pool(workers=1, threads=1, max_batch=8, max_batch_delay=...)``,
- ``pool_unbatched``: the same pool with ``max_batch=1``,
- ``interpreter``: one ``ai_edge_litert`` ``Interpreter`` (``num_threads=1``) driven by
  one thread (set_tensor / invoke / get_tensor), as in run_benchmarks.py.

Both pools are driven the same way, by one client thread: ``--driver map`` (the
default) streams chunks of ``--chunk`` requests through ``pool.map`` with
``--window`` requests in flight (enough for batches to fill, one thread like the
peer, no GIL convoy); ``--driver run`` uses ``--clients`` threads each calling
``pool.run``. Every contender runs once per round, in an order that rotates from
round to round; ratios are taken between contenders of the same round and the
median over rounds is reported.

Targets (issue 14, item 2), on the default model: ``pool_batched`` >= 3x
``pool_unbatched`` and >= 2x ``interpreter`` throughput. They are reported, with
``met``, never asserted here (see docs/benchmarks.md).

    python benchmarks/batch_bench.py [--quick] [--models convnet,add_mul]
        [--seconds 6] [--rounds 6] [--driver map|run] [--window 32] [--chunk 64]
        [--clients 16] [--max-batch 8] [--delay-us 200] [--out r.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib

TARGETS = {"batched_vs_unbatched_pool": 3.0, "batched_vs_interpreter_1_thread": 2.0}
TARGET_MODEL = "convnet"
CONTENDERS = ("pool_batched", "pool_unbatched", "interpreter")


def log(msg: str) -> None:
    """Progress on stderr (stdout carries only the JSON document)."""
    print(f"[batch-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def bench_model(name: str, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Interleaved rounds of the three contenders on one model."""
    edgepipe = benchlib.import_edgepipe()
    model = edgepipe.Model.load(path)
    inputs = benchlib.edgepipe_inputs(model)
    queue = max(64, 2 * args.clients, 2 * args.window)
    batched = edgepipe.Pool(
        model,
        workers=1,
        threads=1,
        queue_size=queue,
        max_batch=args.max_batch,
        max_batch_delay=args.delay_us * 1e-6,
    )
    unbatched = edgepipe.Pool(model, workers=1, threads=1, queue_size=queue)
    peer = benchlib.InterpreterPeer(path)
    seg = args.seconds / args.rounds
    rounds: dict[str, list[dict[str, Any]]] = {c: [] for c in CONTENDERS}
    batch_stats: list[dict[str, float]] = []
    try:
        chunk = [inputs] * args.chunk

        def calls(c: str) -> tuple[list[Any], int]:
            """The closed loop's calls for contender ``c`` and the requests each makes."""
            if c == "interpreter":
                return [peer.run], 1
            pool = batched if c == "pool_batched" else unbatched
            if args.driver == "run":
                return [lambda pool=pool: pool.run(inputs)] * args.clients, 1

            def stream(pool: Any = pool) -> None:
                for _ in pool.map(chunk, window=args.window):
                    pass

            return [stream], args.chunk

        for r in range(args.rounds):
            order = CONTENDERS[r % len(CONTENDERS) :] + CONTENDERS[: r % len(CONTENDERS)]
            for c in order:
                before = batched.stats() if c == "pool_batched" else None
                fns, per_call = calls(c)
                res = benchlib.closed_loop(
                    fns, seg, warmup=min(0.3, seg / 4), runs_per_call=per_call
                )
                if before is not None:
                    after = batched.stats()
                    runs = after["batches"] - before["batches"]
                    held = after["batched_requests"] - before["batched_requests"]
                    batch_stats.append({"batches": runs, "mean_batch": held / runs if runs else 0})
                rounds[c].append(res)
            log(
                f"{name} round {r + 1}/{args.rounds}: "
                + ", ".join(f"{c} {rounds[c][-1]['throughput_per_s']:.0f}/s" for c in CONTENDERS)
            )
    finally:
        batched.close()
        unbatched.close()

    def ratio_rounds(num: str, den: str) -> list[float]:
        return [
            a["throughput_per_s"] / b["throughput_per_s"]
            for a, b in zip(rounds[num], rounds[den])
            if b["throughput_per_s"] > 0
        ]

    vs_pool = ratio_rounds("pool_batched", "pool_unbatched")
    vs_peer = ratio_rounds("pool_batched", "interpreter")
    return {
        "model": name,
        "path": str(path),
        "contenders": {c: benchlib.summarize_rounds(rounds[c]) for c in CONTENDERS},
        "mean_batch_rounds": [s["mean_batch"] for s in batch_stats],
        "mean_batch": _median([s["mean_batch"] for s in batch_stats]),
        "ratios": {
            "batched_vs_unbatched_pool": _median(vs_pool),
            "batched_vs_unbatched_pool_rounds": vs_pool,
            "batched_vs_interpreter_1_thread": _median(vs_peer),
            "batched_vs_interpreter_1_thread_rounds": vs_peer,
        },
    }


def compute_targets(models: dict[str, Any]) -> dict[str, Any]:
    """Each target's ratio on the default model, its threshold and whether it was met."""
    out: dict[str, Any] = {}
    result = models.get(TARGET_MODEL)
    for key, threshold in TARGETS.items():
        value = None if result is None else result["ratios"][key]
        out[key] = {
            "model": TARGET_MODEL,
            "value": value,
            "threshold": threshold,
            "op": ">=",
            "met": None if value is None else value >= threshold,
        }
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="convnet,add_mul", help="comma-separated model names")
    ap.add_argument("--seconds", type=float, default=6.0, help="measured seconds per contender")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--driver", choices=("map", "run"), default="map")
    ap.add_argument("--window", type=int, default=32, help="requests in flight (map driver)")
    ap.add_argument("--chunk", type=int, default=64, help="requests per map() call")
    ap.add_argument("--clients", type=int, default=16, help="threads calling run() (run driver)")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--delay-us", type=float, default=200.0, help="max_batch_delay in µs")
    ap.add_argument("--quick", action="store_true", help="short run to check the script works")
    ap.add_argument("--out", type=Path, help="also write the JSON document here")
    args = ap.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds = min(args.seconds, 1.5), min(args.rounds, 3)
    if min(args.rounds, args.clients, args.window, args.chunk) < 1 or args.seconds <= 0:
        ap.error("need --rounds, --clients, --window, --chunk >= 1 and --seconds > 0")
    if args.max_batch < 2:
        ap.error("--max-batch must be >= 2 (1 is the unbatched pool)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    paths = benchlib.resolve_models(names)
    models: dict[str, Any] = {}
    for name in names:
        log(f"{name}: {args.rounds} rounds of {args.seconds / args.rounds:.2f} s per contender")
        models[name] = bench_model(name, paths[name], args)
    report = {
        "meta": {
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "quick": args.quick,
            "seconds": args.seconds,
            "rounds": args.rounds,
            "driver": args.driver,
            "window": args.window,
            "chunk": args.chunk,
            "clients": args.clients,
            "max_batch": args.max_batch,
            "max_batch_delay_us": args.delay_us,
        },
        "models": models,
        "targets": compute_targets(models),
    }
    text = json.dumps(report, indent=2, default=float)
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
