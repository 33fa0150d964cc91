"""The parser, the subcommand hooks and the error policy of ``edgepipe``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from .. import __version__
from .._runtime import log_level_name
from ..errors import EdgepipeError, InputError, ModelError
from ..models import default_model_path
from ..optimize import cli as optimize_cli
from ..ota import cli as ota_cli
from ..profiling import cli as profiling_cli
from ..ray import cli as ray_cli
from . import accelerators, info, run
from .common import UsageError


def _register_bench(subparsers: Any) -> None:
    """``bench`` from edgepipe.profiling, plus ``--ray``/``--resources`` from edgepipe.ray
    (a fleet benchmark: the same figures from every node of a cluster)."""
    profiling_cli.register(subparsers)
    parser = subparsers.choices["bench"]
    ray_cli.add_bench_arguments(parser)
    local = parser.get_default("func")

    def run(args: argparse.Namespace) -> int:
        if not args.ray:
            return int(local(args))
        threads = [int(t) for t in str(args.threads or "1").split(",") if t.strip()]
        if len(threads) != 1:
            raise UsageError("--ray benchmarks one configuration: give --threads one number")
        return int(
            ray_cli.run_bench_on_ray(
                args,
                str(args.model or default_model_path()),
                runs=args.runs,
                warmup=args.warmup,
                threads=threads[0],
                as_json=args.json,
            )
        )

    parser.set_defaults(func=run)


def _register_optimize(subparsers: Any) -> None:
    """``optimize`` from edgepipe.optimize, plus ``--ray`` from edgepipe.ray (the
    eval outputs of every variant computed on a cluster)."""
    optimize_cli.register(subparsers)
    parser = subparsers.choices["optimize"]
    ray_cli.add_optimize_arguments(parser)

    def run(args: argparse.Namespace) -> int:
        return optimize_cli.cmd_optimize(args, evaluator=ray_cli.optimize_evaluator(args))

    parser.set_defaults(func=run)


#: The subcommand hooks, in ``--help`` order: each ``register(subparsers)``
#: adds one or more subcommands and sets their ``func``. Feature packages
#: expose ``<package>.cli.register`` and are added here.
COMMANDS: list[Callable[[Any], object]] = [
    info.register,
    run.register,
    _register_bench,
    accelerators.register,
    ota_cli.add_ota_parser,
    _register_optimize,
    ray_cli.register,
]

# EDGEPIPE_LOG_LEVEL for the edgepipe logger on the command line: warnings
# (a fallback, a weight cache that could not be used) show at the default.
_PY_LEVELS = {
    "debug": logging.DEBUG,
    "verbose": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.WARNING,
    "silent": logging.CRITICAL + 1,
}


class _Parser(argparse.ArgumentParser):
    """argparse with the one ``error: ...`` line of every other failure."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``edgepipe`` command."""
    p = _Parser(
        prog="edgepipe",
        description="Fast, safe TensorFlow Lite / LiteRT inference.",
    )
    p.add_argument("--version", action="version", version=f"edgepipe {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for register in COMMANDS:
        register(sub)
    return p


class _LineFormatter(logging.Formatter):
    # "warning: accelerator gpu failed ..." like the "error: ..." lines.
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def _setup_logging(level_name: str) -> None:
    logger = logging.getLogger("edgepipe")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LineFormatter())
    logger.addHandler(handler)
    logger.setLevel(_PY_LEVELS[level_name])


def _quiet_broken_pipe() -> int:
    # The reader went away (`edgepipe info M | head`): stop quietly, as cat
    # and grep do, and keep Python from complaining at exit while flushing.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``edgepipe`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _setup_logging(log_level_name())
        status = int(args.func(args))
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except (ModelError, InputError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except EdgepipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
