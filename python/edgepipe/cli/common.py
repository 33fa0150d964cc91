"""What several subcommands share: argument helpers and the usage error."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..accelerators import parse_plugin_options

ACCELERATOR_HELP = (
    "cpu, gpu, npu, auto, PLUGIN.so or a preference list like npu,gpu; "
    "failures fall back to the CPU and are reported"
)


class UsageError(Exception):
    """Bad command-line input that is not an edgepipe error (e.g. unreadable .npz)."""


def add_accelerator_arguments(
    parser: argparse.ArgumentParser, default: str | None, help: str = ACCELERATOR_HELP
) -> None:
    """``--accelerator`` and the repeatable ``--plugin-option KEY=VALUE``."""
    parser.add_argument("--accelerator", default=default, help=help)
    parser.add_argument(
        "--plugin-option",
        action="append",
        metavar="KEY=VALUE",
        help="option for a delegate plugin (repeatable)",
    )


def accelerator_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Session/Pool keyword arguments for ``--accelerator`` and ``--plugin-option``."""
    return {
        "accelerator": args.accelerator,
        "plugin_options": parse_plugin_options(args.plugin_option or []),
    }


def print_json(obj: Any) -> None:
    """Print ``obj`` as indented, key-sorted JSON."""
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    return value
