"""``python -m edgepipe.ota.probe MODEL [--golden NPZ]``: the child side of a health check.

Loads, compiles and runs the model once, so that a model which crashes the
runtime kills this process and not the app. Exit status: 0 ok, 3 the model is
refused (typed edgepipe error, non-finite outputs), 4 a transient failure
(memory, interrupted) that says nothing about the model; a signal means a crash.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_OK, EXIT_REFUSED, EXIT_TRANSIENT = 0, 3, 4


def contract_mismatch(model: Any, contract: dict[str, Any]) -> str | None:
    """What differs between ``model`` and a declared ``{"inputs": [...], "outputs": [...]}``
    (each ``{"name", "shape", "dtype"}``; -1 in a shape matches any size), or None."""
    import numpy as np

    for what in ("inputs", "outputs"):
        declared = contract.get(what)
        if declared is None:
            continue
        actual = {t.name: t for t in getattr(model, what)}
        if sorted(d["name"] for d in declared) != sorted(actual):
            return f"{what} {sorted(actual)} != declared {sorted(d['name'] for d in declared)}"
        for d in declared:
            t = actual[d["name"]]
            shape = [int(x) for x in t.shape]
            if len(shape) != len(d["shape"]) or any(
                w not in (-1, a) for w, a in zip(d["shape"], shape, strict=True)
            ):
                return f"{what[:-1]} {d['name']!r} has shape {shape}, declared {d['shape']}"
            try:
                same = np.dtype(t.dtype) == np.dtype(d["dtype"])
            except TypeError:
                same = False
            if not same:
                return f"{what[:-1]} {d['name']!r} is {np.dtype(t.dtype)}, declared {d['dtype']}"
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgepipe.ota.probe")
    p.add_argument("model")
    p.add_argument("--golden", help=".npz of input arrays by name")
    p.add_argument("--accelerator", default="cpu")
    p.add_argument("--contract", help="JSON file: the target's declared inputs/outputs")
    args = p.parse_args(argv)

    import numpy as np

    from edgepipe import Model, errors

    from .store import is_transient

    try:
        model = Model.load(args.model)
        if args.contract:
            with open(args.contract, encoding="utf-8") as f:
                problem = contract_mismatch(model, json.load(f))
            if problem:
                print(f"contract: {problem}", file=sys.stderr)
                return EXIT_REFUSED
        if args.golden:
            with np.load(args.golden, allow_pickle=False) as z:
                inputs = {k: z[k] for k in z.files}
        else:
            inputs = {
                t.name: np.zeros([max(int(d), 1) for d in t.shape], dtype=t.dtype)
                for t in model.inputs
            }
        session = model.compile(accelerator=args.accelerator)
        try:
            outputs = session.run(inputs)
        finally:
            session.close()
        for name, arr in outputs.items():
            a = np.asarray(arr)
            if np.issubdtype(a.dtype, np.inexact) and not np.all(np.isfinite(a)):
                print(f"output {name!r} is not finite", file=sys.stderr)
                return EXIT_REFUSED
    except (errors.EdgepipeError, OSError, MemoryError, ValueError) as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_TRANSIENT if is_transient(e) else EXIT_REFUSED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
