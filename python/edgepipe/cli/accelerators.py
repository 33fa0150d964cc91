"""``edgepipe accelerators [--json] [--plugin LIB.so]...``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .._runtime import runtime_version
from ..accelerators import detect, device_facts, format_table


def run(args: argparse.Namespace) -> int:
    """Print every accelerator, whether it is usable here, and why not."""
    rows = detect(plugins=args.plugin or ())
    if args.json:
        doc = {
            "runtime": runtime_version(),
            "device": device_facts(),
            "accelerators": [r.as_dict() for r in rows],
        }
        print(json.dumps(doc, indent=2))
    else:
        print(format_table(rows))
    return 0


def register(subparsers: Any) -> None:
    """Add ``accelerators``."""
    p = subparsers.add_parser(
        "accelerators",
        help="list accelerators and whether they are usable here",
        description="Every accelerator the runtime knows, whether it is usable on this "
        "machine, and why not.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--plugin",
        action="append",
        metavar="LIB.so",
        help="also check this delegate plugin (repeatable)",
    )
    p.set_defaults(func=run)
