"""Tensors and types: what a model takes and gives, and turning what callers
pass into the arrays the core takes.

The lowest layer above the errors: it knows numpy and the core's type table,
nothing of the runtime.
Holds the one Python table of element types, the tensor descriptions
(:class:`TensorInfo`, :class:`Quantization`, :class:`Signature`), input
ordering and checking, deterministic random inputs and shape formatting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np

from . import _core
from .errors import InputError

#: Inputs as callers pass them: by name, by position, or one array.
Inputs: TypeAlias = Mapping[str, Any] | Sequence[Any] | np.ndarray

#: LiteRT element type names (as the core reports them) that numpy can hold,
#: from the core's element-type table (``_core.DTYPES``, one source).
DTYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(numpy_name) for name, numpy_name in _core.DTYPES.items() if numpy_name
}


def format_shape(shape: Sequence[int]) -> str:
    """``(1, 96, 96, 3)``; ``-1`` (set at run time) shows as ``?``."""
    dims = ["?" if int(d) < 0 else str(int(d)) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of a tensor: ``real = scale * (q - zero_point)``.

    ``axis`` is None for per-tensor quantization, else the channel dimension
    of per-channel ``scales`` and ``zero_points``.
    """

    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    axis: int | None = None

    @property
    def scale(self) -> float:
        """The per-tensor scale (the first one for per-channel tensors)."""
        return self.scales[0]

    @property
    def zero_point(self) -> int:
        """The per-tensor zero point (the first one for per-channel tensors)."""
        return self.zero_points[0]


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a model signature.

    ``shape`` has -1 for dimensions fixed only at run time; ``dtype`` is None
    for element types numpy cannot hold (e.g. int4).
    """

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any] | None
    element_type: str
    quantization: Quantization | None = None

    @classmethod
    def from_core(cls, d: Mapping[str, Any]) -> TensorInfo:
        """Build from the dict the core gives for a tensor."""
        q = d["quantization"]
        quant: Quantization | None = None
        if q["kind"] == "per_tensor":
            quant = Quantization((float(q["scale"]),), (int(q["zero_point"]),))
        elif q["kind"] == "per_channel":
            quant = Quantization(
                tuple(float(s) for s in q["scales"]),
                tuple(int(z) for z in q["zero_points"]),
                int(q["quantized_dimension"]),
            )
        return cls(
            name=d["name"],
            shape=tuple(int(x) for x in d["shape"]),
            dtype=DTYPES.get(d["element_type"]),
            element_type=d["element_type"],
            quantization=quant,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description."""
        quant: dict[str, Any] | None = None
        if self.quantization is not None:
            quant = {
                "scales": list(self.quantization.scales),
                "zero_points": list(self.quantization.zero_points),
                "axis": self.quantization.axis,
            }
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.element_type,
            "quantization": quant,
        }


@dataclass(frozen=True)
class Signature:
    """A runnable entry point of the model: its key, inputs and outputs."""

    key: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...] = field(default_factory=tuple)


def _as_array(value: Any, info: TensorInfo) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    # Plain Python data carries no dtype of its own, so taking the model's is
    # no silent cast; arrays of the wrong dtype are refused by the core.
    try:
        return np.ascontiguousarray(value, dtype=info.dtype)
    except (TypeError, ValueError) as exc:
        raise InputError(f"input {info.name!r} cannot be made into an array: {exc}") from exc


def order_inputs(infos: Sequence[TensorInfo], inputs: Inputs) -> list[np.ndarray]:
    """Arrange inputs in signature order.

    Accepts a mapping by input name (``arg0``, ``arg1``… also name inputs by
    position), a sequence by position, or a single array for a one-input model.
    Strided arrays (crops, ``frame[..., ::-1]``) are passed as they are: the
    core copies every input into the runtime's buffer element by element.
    """
    if isinstance(inputs, np.ndarray):
        if len(infos) != 1:
            raise InputError(
                f"the model takes {len(infos)} inputs ({', '.join(t.name for t in infos)}); "
                "pass a dict by name or a list by position"
            )
        return [inputs]
    if type(inputs) is dict and len(inputs) == len(infos):
        # The hot path of pool.run/session.run: arrays keyed by name, in full.
        try:
            arrays = [inputs[t.name] for t in infos]
        except KeyError:
            pass
        else:
            if all(type(a) is np.ndarray for a in arrays):
                return arrays
    if isinstance(inputs, Mapping):
        names = [t.name for t in infos]
        out: list[np.ndarray] = []
        used = set()
        for i, info in enumerate(infos):
            key = info.name if info.name in inputs else f"arg{i}"
            if key not in inputs:
                given = list(inputs)
                raise InputError(
                    f"missing input {info.name!r}: got {given}, the model takes {names} "
                    f"(name each array by input name, or arg0, arg1... by position)"
                )
            used.add(key)
            out.append(_as_array(inputs[key], info))
        extra = [k for k in inputs if k not in used]
        if extra:
            raise InputError(f"unknown input name(s) {extra}; the model takes {names}")
        return out
    if isinstance(inputs, (list, tuple)):
        if len(inputs) != len(infos):
            raise InputError(f"the model takes {len(infos)} inputs, got {len(inputs)}")
        return [_as_array(v, info) for v, info in zip(inputs, infos)]
    raise InputError(f"inputs must be a dict, a list or a numpy array, not {type(inputs).__name__}")


def output_indices(names: Sequence[str], wanted: Sequence[str] | None) -> list[int] | None:
    """Indices of the ``wanted`` output names, in that order (None: all outputs).

    The core then computes and copies out only those outputs.

    Raises:
        InputError: ``wanted`` is not a list of names, or names an output the
            model does not have.
    """
    if wanted is None:
        return None
    if isinstance(wanted, str) or not isinstance(wanted, Sequence):
        raise InputError(f"outputs must be a list of output names, not {wanted!r}")
    index = {n: i for i, n in enumerate(names)}
    unknown = [w for w in wanted if w not in index]
    if unknown:
        raise InputError(f"unknown output name(s) {unknown}; the model gives {list(names)}")
    return [index[w] for w in wanted]


def named(
    names: Sequence[str], indices: Sequence[int] | None, arrays: Sequence[np.ndarray]
) -> dict[str, np.ndarray]:
    """The core's returned ``arrays`` by output name (``indices`` as passed to it)."""
    if indices is None:
        return dict(zip(names, arrays))
    return {names[i]: a for i, a in zip(indices, arrays)}


def random_array(shape: Sequence[int], dtype: Any, rng: np.random.Generator) -> np.ndarray:
    """One deterministic random array: floats uniform in [0, 1), booleans 0/1,
    8- and 16-bit integers over their whole range, wider integers in [0, 100)
    (usable as ids or indices). Dimensions below 1 (set at run time) become 1.
    """
    dt = np.dtype(dtype)
    dims = tuple(max(1, int(d)) for d in shape)
    if dt.kind in "fc":
        return rng.random(dims).astype(dt)
    if dt.kind == "b":
        return rng.integers(0, 2, size=dims).astype(dt)
    if dt.kind in "iu" and dt.itemsize <= 2:
        info = np.iinfo(dt)
        return rng.integers(int(info.min), int(info.max) + 1, size=dims).astype(dt)
    if dt.kind in "iu":
        return rng.integers(0, 100, size=dims).astype(dt)
    raise InputError(f"no random values for dtype {dt}")


def random_inputs(infos: Sequence[TensorInfo], seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic inputs for a model, session or pool (see :func:`random_array`)."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for t in infos:
        if t.dtype is None:
            raise InputError(f"input {t.name!r} has type {t.element_type}, which numpy cannot hold")
        out[t.name] = random_array(t.shape, t.dtype, rng)
    return out
