"""Command-line parts of the scale-out layer.

- ``edgepipe score MODEL DATA --out OUT [--ray ADDRESS]`` (:func:`register`);
- ``edgepipe bench MODEL --ray ADDRESS [--resources a,b]``: :func:`add_bench_arguments`
  adds the options to the bench parser and :func:`run_bench_on_ray` runs it;
- ``edgepipe optimize MODEL --eval DATA --ray ADDRESS``: :func:`add_optimize_arguments`
  adds the option to the optimize parser and :func:`optimize_evaluator` makes the
  evaluator the optimize command is given.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from .evaluate import ClusterEvaluator


def register(subparsers: Any) -> None:
    """Add ``score`` to the ``edgepipe`` command line."""
    p = subparsers.add_parser(
        "score",
        help="write a model's outputs for a folder of .npz inputs (locally, or on Ray)",
        description="Runs MODEL on every DATA/*.npz and writes OUT/<name>.npz with its outputs.",
    )
    p.add_argument("model")
    p.add_argument("data", help="folder of .npz files, one sample each, arrays named as inputs")
    p.add_argument("--out", required=True, help="folder for the output .npz files")
    p.add_argument("--ray", metavar="ADDRESS", help="run on this Ray cluster ('auto' to discover)")
    p.add_argument("--workers", type=_positive, default=1, help="instances per pool (default 1)")
    p.add_argument("--actors", type=_positive, help="Ray actors (default: cluster CPUs / workers)")
    p.add_argument("--batch-size", type=_positive, default=32, help="rows per Ray batch")
    p.set_defaults(func=_cmd_score)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _cmd_score(args: argparse.Namespace) -> int:
    from .score import score

    summary = score(
        args.model,
        args.data,
        args.out,
        ray_address=args.ray,
        workers=args.workers,
        actors=args.actors,
        batch_size=args.batch_size,
    )
    print(json.dumps(summary))
    return 0


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--ray`` and ``--resources`` to ``edgepipe bench``."""
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="benchmark on every node of this Ray cluster ('auto' to discover)",
    )
    parser.add_argument(
        "--resources",
        metavar="R1,R2",
        help="with --ray: only nodes advertising these custom resources, "
        "one row per node and resource (e.g. device:rpi5,device:x86)",
    )
    parser.add_argument("--ray-plot", metavar="FILE.png", help="with --ray: a bar chart per node")


def run_bench_on_ray(
    args: argparse.Namespace, model: str, *, runs: int, warmup: int, threads: int, as_json: bool
) -> int:
    """The ``bench --ray`` path: a row per node; exit 1 if any node failed."""
    from .fleet import fleet_bench, format_table, plot

    resources = [r for r in (args.resources or "").split(",") if r]
    rows = fleet_bench(
        model, address=args.ray, resources=resources, runs=runs, warmup=warmup, threads=threads
    )
    if as_json:
        print(json.dumps({"fleet": rows}, indent=2))
    else:
        print(format_table(rows))
    if args.ray_plot:
        plot(rows, args.ray_plot)
    return 0 if all(r.get("ok") for r in rows) else 1


def add_optimize_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--ray`` to ``edgepipe optimize``."""
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="compute every variant's outputs on the --eval data on this Ray cluster "
        "('auto' to discover); latency is still measured here",
    )


def optimize_evaluator(args: argparse.Namespace) -> ClusterEvaluator | None:
    """The evaluator for ``optimize --ray ADDRESS``, or None without ``--ray``."""
    if not getattr(args, "ray", None):
        return None
    return ClusterEvaluator(args.ray)
