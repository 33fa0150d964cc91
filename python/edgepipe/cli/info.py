"""``edgepipe info MODEL [--json] [--accelerator A]``."""

from __future__ import annotations

import argparse
from typing import Any

from ..accelerators import delegation_report, format_delegation, parse_plugin_options
from ..model import Model
from ..tensors import format_shape
from .common import add_accelerator_arguments, print_json


def _format_tensor(t: dict[str, Any]) -> str:
    q = t.get("quantization")
    qtext = ""
    if q:
        if q["axis"] is None:
            qtext = f"  quant scale={q['scales'][0]:.6g} zero_point={q['zero_points'][0]}"
        else:
            qtext = f"  quant per-channel axis={q['axis']} ({len(q['scales'])} scales)"
    return f"    {t['name']:<24} {t['dtype']:<8} {format_shape(t['shape'])}{qtext}"


def run(args: argparse.Namespace) -> int:
    """Describe the model; with ``--accelerator``, also how a compile splits it."""
    model = Model.load(args.model)
    info = model.describe()
    if args.accelerator:
        info["accelerator"] = delegation_report(
            model,
            args.accelerator,
            plugin_options=parse_plugin_options(args.plugin_option or []),
        )
    if args.json:
        print_json(info)
        return 0
    print(f"Model: {info['path']}")
    print(f"  size {info['size']} bytes, sha256 {info['sha256']}")
    print(
        f"  schema v{info['schema_version']}, {info['num_subgraphs']} subgraph(s), "
        f"{info['num_operators']} operators, {info['num_tensors']} tensors, "
        f"{info['constant_bytes']} bytes of constants"
    )
    for sig in info["signatures"]:
        print(f"Signature {sig['key']!r}")
        print("  inputs:")
        for t in sig["inputs"]:
            print(_format_tensor(t))
        print("  outputs:")
        for t in sig["outputs"]:
            print(_format_tensor(t))
    print("Operators:")
    for name, count in sorted(info["op_counts"].items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {name:<28} {count}")
    print(f"Custom ops: {', '.join(info['custom_ops']) if info['custom_ops'] else 'none'}")
    if "accelerator" in info:
        print(format_delegation(info["accelerator"]))
    return 0


def register(subparsers: Any) -> None:
    """Add ``info``."""
    p = subparsers.add_parser("info", help="describe a model: inputs, outputs, ops, sha256")
    p.add_argument("model")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_accelerator_arguments(
        p, None, "also compile for this accelerator and show which ops it takes"
    )
    p.set_defaults(func=run)
