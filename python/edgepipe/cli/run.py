"""``edgepipe run MODEL --inputs IN.npz --outputs OUT.npz``."""

from __future__ import annotations

import argparse
import io
import zipfile
from typing import Any

import numpy as np

from .._files import atomic_write
from ..errors import EdgepipeError
from ..model import Model
from ..session import Session
from .common import UsageError, accelerator_kwargs, add_accelerator_arguments, positive_int


def load_npz(path: str) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file by key; a single-array ``.npy`` is refused."""
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError as exc:
        raise UsageError(f"inputs file {path} does not exist") from exc
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise UsageError(f"cannot read inputs file {path} as .npz: {exc}") from exc
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise UsageError(
            f"{path} holds a single array, not an .npz of arrays by input name; "
            "save inputs with numpy.savez(path, name=array, ...)"
        )
    try:
        with data:
            return {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise UsageError(f"cannot read inputs file {path} as .npz: {exc}") from exc


def write_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to exactly ``path`` (numpy would add ``.npz``), atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    try:
        atomic_write(path, buffer.getvalue())
    except OSError as exc:
        raise EdgepipeError(f"cannot write outputs to {path}: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    """Run the model once on the arrays of ``--inputs``; write ``--outputs``."""
    inputs = load_npz(args.inputs)
    model = Model.load(args.model)
    session = Session(model, threads=args.threads, **accelerator_kwargs(args))
    outputs = session.run(inputs)
    write_npz(args.outputs, outputs)
    if not args.quiet:
        for name, arr in outputs.items():
            print(f"{name}: {arr.dtype} {arr.shape}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``run``."""
    p = subparsers.add_parser("run", help="run a model on arrays from an .npz file")
    p.add_argument("model")
    p.add_argument("--inputs", required=True, help=".npz with arrays by input name or arg0…")
    p.add_argument(
        "--outputs",
        required=True,
        help="file to write the outputs to (.npz format, by name), exactly as named",
    )
    add_accelerator_arguments(p, "cpu")
    p.add_argument("--threads", type=positive_int, default=None)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)
