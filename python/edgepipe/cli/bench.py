"""``edgepipe bench [MODEL] [--workers 1,2,4]``: the benchmark harness of edgepipe.bench."""

from __future__ import annotations

import argparse
from typing import Any

from ..bench import bench_pool, bench_session, format_pool_report, format_session_report
from ..models import default_model_path
from ..ray import cli as ray_cli
from .common import (
    UsageError,
    accelerator_kwargs,
    add_accelerator_arguments,
    non_negative_int,
    positive_int,
    print_json,
)


def parse_workers(text: str) -> list[int]:
    """``--workers 2`` or a sweep ``1,2,4``."""
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise UsageError(f"--workers takes a number or a list like 1,2,4, not {text!r}") from exc
    if not values or any(v < 1 for v in values):
        raise UsageError(f"--workers values must be >= 1, got {text!r}")
    return values


def run(args: argparse.Namespace) -> int:
    """Benchmark a session, or a pool per ``--workers`` value (or every node: ``--ray``)."""
    if args.ray:
        return ray_cli.run_bench_on_ray(
            args,
            str(args.model or default_model_path()),
            runs=args.runs,
            warmup=args.warmup,
            threads=args.threads or 1,
            as_json=args.json,
        )
    choice = accelerator_kwargs(args)
    if args.workers is None:
        if args.clients is not None:
            raise UsageError("--clients needs --workers (it is for pool benchmarks)")
        result = bench_session(
            args.model, runs=args.runs, warmup=args.warmup, threads=args.threads, **choice
        )
        if args.json:
            print_json(result)
        else:
            print(format_session_report(result))
        return 0
    sweep = parse_workers(args.workers)
    results = [
        bench_pool(
            args.model,
            workers=n,
            clients=args.clients,
            runs=args.runs,
            warmup=args.warmup,
            threads=args.threads or 1,
            **choice,
        )
        for n in sweep
    ]
    if args.json:
        print_json(results[0] if len(results) == 1 else {"mode": "pool_sweep", "results": results})
    else:
        first = results[0]
        print(
            f"Model: {first['model']} (sha256 {first['model_sha256'][:16]}..., "
            f"LiteRT {first['runtime_version']})"
        )
        for r in results:
            print(format_pool_report(r))
    return 0


def register(subparsers: Any) -> None:
    """Add ``bench``."""
    p = subparsers.add_parser("bench", help="benchmark a model (default: the bundled one)")
    p.add_argument("model", nargs="?", default=None)
    p.add_argument("--runs", type=positive_int, default=50)
    p.add_argument("--warmup", type=non_negative_int, default=5)
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads per instance")
    add_accelerator_arguments(p, "cpu")
    p.add_argument(
        "--workers", default=None, help="benchmark a pool with N workers, or sweep 1,2,4"
    )
    p.add_argument(
        "--clients",
        type=positive_int,
        default=None,
        help="concurrent clients for --workers (default 2N)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    ray_cli.add_bench_arguments(p)
    p.set_defaults(func=run)
