"""The ``edgepipe`` command line: info, run, bench (and accelerators, ota).

Errors print one line starting ``error:`` on stderr. Exit status 2 means bad
input (a bad model, bad arrays, bad arguments), 1 any other failure.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import __version__
from .errors import EdgepipeError, InputError, ModelError

_ACCELERATOR_HELP = (
    "cpu, gpu, npu, auto, PLUGIN.so or a preference list like npu,gpu; "
    "failures fall back to the CPU and are reported"
)


class UsageError(Exception):
    """Bad command-line input that is not an edgepipe error (e.g. unreadable .npz)."""


def _choice(model: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Session/Pool keyword arguments for ``--accelerator`` and ``--plugin-option``."""
    from .accelerators import parse_plugin_options, resolve_accelerator

    choice = resolve_accelerator(
        model, args.accelerator, plugin_options=parse_plugin_options(args.plugin_option or [])
    )
    return choice.kwargs()


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


def _format_tensor(t: dict[str, Any]) -> str:
    q = t.get("quantization")
    qtext = ""
    if q:
        if q["axis"] is None:
            qtext = f"  quant scale={q['scales'][0]:.6g} zero_point={q['zero_points'][0]}"
        else:
            qtext = f"  quant per-channel axis={q['axis']} ({len(q['scales'])} scales)"
    return f"    {t['name']:<24} {t['dtype']:<8} {tuple(t['shape'])}{qtext}"


def cmd_info(args: argparse.Namespace) -> int:
    from .model import Model

    model = Model.load(args.model)
    info = model.describe()
    if args.accelerator:
        from .accelerators import delegation_report, parse_plugin_options

        info["accelerator"] = delegation_report(
            model, args.accelerator,
            plugin_options=parse_plugin_options(args.plugin_option or []),
        )
    if args.json:
        _print_json(info)
        return 0
    print(f"Model: {info['path']}")
    print(f"  size {info['size']} bytes, sha256 {info['sha256']}")
    print(f"  schema v{info['schema_version']}, {info['num_subgraphs']} subgraph(s), "
          f"{info['num_operators']} operators, {info['num_tensors']} tensors, "
          f"{info['constant_bytes']} bytes of constants")
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
        from .accelerators import format_delegation

        print(format_delegation(info["accelerator"]))
    return 0


def _load_npz(path: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise UsageError(f"{path} holds a single array; save inputs with numpy.savez")
            return {k: data[k] for k in data.files}
    except FileNotFoundError as exc:
        raise UsageError(f"inputs file {path} does not exist") from exc
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise UsageError(f"cannot read inputs file {path} as .npz: {exc}") from exc


def cmd_run(args: argparse.Namespace) -> int:
    from .model import Model

    inputs = _load_npz(args.inputs)
    from .session import Session

    model = Model.load(args.model)
    session = Session(model, threads=args.threads, **_choice(model, args))
    outputs = session.run(inputs)
    try:
        np.savez(args.outputs, **outputs)  # type: ignore[arg-type]
    except OSError as exc:
        raise EdgepipeError(f"cannot write outputs to {args.outputs}: {exc}") from exc
    for e in session.events:
        print(f"fallback {e['from']} -> {e['to'] or 'none'} at {e['stage']}: {e['error']}",
              file=sys.stderr)
    if not args.quiet:
        for name, arr in outputs.items():
            print(f"{name}: {arr.dtype} {arr.shape}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``edgepipe`` command."""
    p = argparse.ArgumentParser(
        prog="edgepipe",
        description="Fast, safe TensorFlow Lite / LiteRT inference.",
    )
    p.add_argument("--version", action="version", version=f"edgepipe {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    info = sub.add_parser("info", help="describe a model: inputs, outputs, ops, sha256")
    info.add_argument("model")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.add_argument("--accelerator",
                      help="also compile for this accelerator and show which ops it takes")
    info.add_argument("--plugin-option", action="append", metavar="KEY=VALUE",
                      help="option for a delegate plugin (repeatable)")
    info.set_defaults(func=cmd_info)

    run = sub.add_parser("run", help="run a model on arrays from an .npz file")
    run.add_argument("model")
    run.add_argument("--inputs", required=True, help=".npz with arrays by input name or arg0…")
    run.add_argument("--outputs", required=True, help=".npz to write outputs to, by name")
    run.add_argument("--accelerator", default="cpu", help=_ACCELERATOR_HELP)
    run.add_argument("--plugin-option", action="append", metavar="KEY=VALUE",
                     help="option for a delegate plugin (repeatable)")
    run.add_argument("--threads", type=int, default=None)
    run.add_argument("--quiet", action="store_true")
    run.set_defaults(func=cmd_run)

    from .profiling.cli import register as register_bench

    register_bench(sub)

    for module, hook in (("accelerators", "add_accelerators_parser"),
                         ("ota.cli", "add_ota_parser")):
        try:
            mod = __import__(f"edgepipe.{module}", fromlist=[hook])
        except ImportError:
            continue
        if hasattr(mod, hook):
            getattr(mod, hook)(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``edgepipe`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
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
