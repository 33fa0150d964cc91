"""``python -m edgepipe.ota.probe MODEL [--golden NPZ]``: the child side of a health check.

Loads, compiles and runs the model once, so that a model which crashes the
runtime kills this process and not the app. Exit status: 0 ok, 3 the model is
refused (typed edgepipe error, non-finite outputs), 4 a transient failure
(memory, interrupted) that says nothing about the model; a signal means a crash.
"""

from __future__ import annotations

import argparse
import sys

EXIT_OK, EXIT_REFUSED, EXIT_TRANSIENT = 0, 3, 4


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgepipe.ota.probe")
    p.add_argument("model")
    p.add_argument("--golden", help=".npz of input arrays by name")
    p.add_argument("--accelerator", default="cpu")
    args = p.parse_args(argv)

    import numpy as np

    from edgepipe import Model, errors

    from .store import is_transient

    try:
        model = Model.load(args.model)
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
