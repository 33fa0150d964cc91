"""``edgepipe optimize``: the command line of :func:`edgepipe.optimize.optimize`.

The main CLI calls :func:`register` with its subparsers. Errors are edgepipe
errors (the main CLI prints one ``error:`` line): bad data or ``--select`` is an
:class:`~edgepipe.errors.InputError`, a missing extra a
:class:`~edgepipe.optimize.MissingExtraError`.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from edgepipe.errors import InputError

if TYPE_CHECKING:
    from .measure import Evaluator

_RECIPES = ("fp16", "weight_int8", "dynamic_int8", "int8", "all")


def cmd_optimize(args: argparse.Namespace, evaluator: Evaluator | None = None) -> int:
    """Run ``edgepipe optimize``; 0 on success, 1 when ``--select`` matched nothing.

    ``evaluator`` computes the eval outputs elsewhere (the main CLI passes a Ray
    cluster's for ``--ray``; see :func:`edgepipe.optimize.optimize`).
    """
    from .core import optimize

    if args.runs < 1 or args.warmup < 0:
        raise InputError("--runs must be at least 1 and --warmup at least 0")
    accelerators = [a.strip() for a in args.accelerators.split(",") if a.strip()]
    report = optimize(
        args.model,
        args.recipe or "all",
        out_dir=args.out,
        calibration=args.calibration,
        eval_data=args.eval,
        accelerators=accelerators or ["cpu"],
        threads=args.threads,
        runs=args.runs,
        warmup=args.warmup,
        select=args.select,
        pick=args.pick,
        resize=args.resize,
        scale=args.scale,
        limit=args.limit,
        evaluator=evaluator,
    )
    print(report.table())
    if args.report:
        report.write_json(args.report)
        print(f"report: {args.report}")
    if args.plot:
        report.plot(args.plot)
        print(f"plot: {args.plot}")
    if report.selected is not None and report.selected["name"] is None:
        print(f"error: {report.selected['why']}", file=sys.stderr)
        return 1
    return 0


def register(subparsers: Any) -> None:
    """Add the ``optimize`` subcommand to the main CLI's ``subparsers``."""
    p = subparsers.add_parser(
        "optimize",
        help="quantize a float model (fp16, int8, ...) and compare size, latency and error",
        description="Normalise MODEL, quantize it with ai-edge-quantizer and measure every "
        "variant against it in one run. Needs pip install 'edgepipe[optimize]'.",
    )
    p.add_argument("model", help="the float .tflite model")
    p.add_argument(
        "--recipe",
        action="append",
        choices=_RECIPES,
        default=None,
        help="fp16, weight_int8, dynamic_int8, int8 (needs --calibration) or all; "
        "repeatable (default: all)",
    )
    p.add_argument(
        "--calibration", metavar="DATA", help="folder of .npz files or images for int8 calibration"
    )
    p.add_argument(
        "--eval",
        metavar="DATA",
        help="folder of .npz files or images (optional labels) to measure errors on "
        "(default: the calibration data, else random inputs)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="where variants are written")
    p.add_argument("--report", metavar="JSON", help="write the full report as JSON")
    p.add_argument("--plot", metavar="PNG", help="plot size vs latency vs error (matplotlib)")
    p.add_argument(
        "--select",
        metavar="EXPR",
        help='keep variants meeting e.g. "max_error<0.01 and speedup>1"; writes '
        "the chosen one to DIR/<model>.selected.tflite",
    )
    p.add_argument(
        "--pick",
        choices=("smallest", "fastest"),
        help="which passing variant to choose (default smallest)",
    )
    p.add_argument(
        "--accelerators",
        default="cpu,gpu",
        help="comma list to measure latency on (default cpu,gpu; fallbacks reported)",
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads of every session")
    p.add_argument("--runs", type=int, default=20, help="timed runs per variant")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    p.add_argument(
        "--resize",
        choices=("stretch", "crop"),
        default="stretch",
        help="image resize: stretch to the input size or center-crop first",
    )
    p.add_argument(
        "--scale",
        choices=("0,1", "-1,1", "0,255"),
        default="0,1",
        help="image pixel range fed to the model",
    )
    p.add_argument("--limit", type=int, default=None, help="use at most N samples per DATA")
    p.set_defaults(func=cmd_optimize)
