"""``edgepipe bench``: benchmarks, sweeps and per-op profiles from the command line.

The CLI package wires it with :func:`register` (or a parser of its own with
:func:`add_bench_arguments` and :func:`run_bench`)::

    edgepipe bench MODEL --profile --json
    edgepipe bench MODEL --threads 1,2 --workers 1,2 --plot out.png --csv out.csv
    edgepipe bench MODEL --accelerator cpu,gpu --inputs samples/ --max-secs 30
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, NoReturn

from .. import accelerators as acc
from ..errors import EdgepipeError, InputError
from . import bench as engine
from .plot import plot_bench


def _json_default(o: Any) -> Any:
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return str(o)


def _clean(o: Any) -> Any:
    # JSON has no NaN: unknown figures become null.
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def _int_at_least(low: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``bench``'s arguments to ``p``."""
    p.add_argument("model", nargs="?", default=None, help="the .tflite file (default: bundled)")
    p.add_argument(
        "--runs", type=_int_at_least(1), default=50, help="measured runs per configuration"
    )
    p.add_argument(
        "--warmup", type=_int_at_least(0), default=5, help="unmeasured runs after the first"
    )
    p.add_argument(
        "--rounds",
        type=_int_at_least(1),
        default=None,
        help="interleaved rounds over the configurations (default: runs/10, <= 5)",
    )
    p.add_argument(
        "--threads",
        default=None,
        metavar="N[,N...]",
        help="CPU threads per instance, or a sweep like 1,2,4",
    )
    p.add_argument(
        "--workers",
        default=None,
        metavar="N[,N...]",
        help="benchmark a pool with N workers, or sweep 1,2,4 (default: a session)",
    )
    p.add_argument(
        "--clients",
        type=_int_at_least(1),
        default=None,
        help="closed-loop client threads per pool (default: 2 x workers)",
    )
    p.add_argument(
        "--accelerator",
        default="cpu",
        metavar="A[,A...]",
        help="cpu, gpu, npu, auto, plugin:/path/lib.so; a comma list sweeps, "
        "'npu>gpu' is one preference list (always ending on the CPU)",
    )
    p.add_argument(
        "--plugin-option",
        action="append",
        metavar="KEY=VALUE",
        help="option for a delegate plugin (repeatable)",
    )
    p.add_argument(
        "--inputs",
        default=None,
        metavar="FILE.npz|DIR",
        help="real inputs: arrays named after the inputs (or in order; a leading "
        "N stacks N samples), or a folder of such .npz files",
    )
    p.add_argument(
        "--input-range",
        default=None,
        metavar="LOW,HIGH",
        help="range of the random inputs (default [0,1) floats, [-100,100] ints); "
        "write --input-range=-1,1 when LOW is negative",
    )
    p.add_argument(
        "--max-secs", type=_seconds, default=None, help="stop measuring after this many seconds"
    )
    p.add_argument(
        "--run-delay",
        type=_seconds,
        default=0.0,
        metavar="SECS",
        help="sleep after each run (like benchmark_model --run_delay)",
    )
    p.add_argument("--profile", action="store_true", help="profile the best configuration op by op")
    p.add_argument("--profile-runs", type=_int_at_least(1), default=None, help="profiled runs")
    p.add_argument(
        "--profile-out",
        action="append",
        default=[],
        metavar="FILE",
        help="write the profile: .json, .csv or .trace.json (Chrome/Perfetto)",
    )
    p.add_argument("--top", type=_int_at_least(1), default=15, help="rows of the per-op top list")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--csv", default=None, metavar="FILE", help="write one CSV line per config")
    p.add_argument(
        "--plot",
        default=None,
        metavar="FILE.png",
        help="write latency histograms/percentiles and the profile (matplotlib)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: only on a terminal)",
    )


def run_bench(args: argparse.Namespace) -> int:
    """Run ``bench`` for parsed ``args``; prints the report, returns the exit status."""
    if args.runs < 1 or args.warmup < 0:
        raise InputError("--runs must be >= 1 and --warmup >= 0")
    if args.rounds is not None and not 1 <= args.rounds <= args.runs:
        raise InputError("--rounds must be between 1 and --runs")
    if args.profile_out and not args.profile:
        args.profile = True
    for out in args.profile_out:
        if not out.endswith((".json", ".csv")):
            raise InputError(f"--profile-out {out!r}: use .json, .csv or .trace.json")
    for name in ("csv", "plot"):
        value = getattr(args, name)
        if value is not None and not Path(value).parent.is_dir():
            raise InputError(f"--{name} {value}: folder {Path(value).parent} does not exist")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError as exc:
            raise InputError("--plot needs matplotlib: pip install 'edgepipe[plot]'") from exc
    threads = engine.parse_int_list(args.threads, "--threads")
    workers = engine.parse_int_list(args.workers, "--workers")
    if args.clients is not None and workers == [None]:
        raise InputError("--clients needs --workers (it is for pool benchmarks)")
    accelerators = engine.parse_accelerators(args.accelerator)
    plugin_options = None
    if args.plugin_option:
        plugin_options = acc.parse_plugin_options(args.plugin_option)
    configs = engine.configurations(accelerators, threads, workers)
    result = engine.bench(
        args.model,
        configs=configs,
        runs=args.runs,
        warmup=args.warmup,
        rounds=args.rounds,
        clients=args.clients,
        inputs=args.inputs,
        input_range=engine.parse_range(args.input_range),
        max_secs=args.max_secs,
        run_delay=args.run_delay,
        plugin_options=plugin_options,
        profile=args.profile,
        profile_runs=args.profile_runs,
        progress=args.progress,
    )
    result["_top"] = args.top
    prof = result.get("_profile")
    if prof is not None:
        result["profile"] = prof.to_dict(top=args.top)
        result["profile"]["config"] = result["best"]["label"]
        for out in args.profile_out:
            prof.write(out)
    if args.csv:
        Path(args.csv).write_text(engine.to_csv(result), encoding="utf-8")
    if args.plot:
        plot_bench(result, args.plot)
    if args.json:
        public = engine.public(result)
        if len(configs) == 1:
            obj: dict[str, Any] = engine.flat_single(public)
        else:
            obj = {"mode": "sweep", **public, "results": public["configs"]}
        print(json.dumps(_clean(obj), indent=2, sort_keys=True, default=_json_default))
    else:
        print(engine.format_report(result))
    for label, path in (("CSV", args.csv), ("plot", args.plot)):
        if path:
            print(f"{label} written to {path}", file=sys.stderr)
    return 0


def register(subparsers: Any) -> None:
    """Add the ``bench`` subcommand to an ``edgepipe`` parser's subparsers."""
    p = subparsers.add_parser(
        "bench",
        help="benchmark a model: sweeps, profiles, plots",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_bench_arguments(p)
    p.set_defaults(func=run_bench)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one "error:" line, like edgepipe's CLI
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> int:
    """``python -m edgepipe.profiling.cli`` (the same as ``edgepipe bench``)."""
    parser = _Parser(
        prog="edgepipe bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_bench_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_bench(args)
    except (InputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if isinstance(exc, EdgepipeError):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
