"""Float in, float out for models whose inputs or outputs are integer-quantized.

A full-integer (``int8``) model takes and gives ``int8`` tensors with a scale
and zero point (``real = scale * (q - zero_point)``). These helpers convert,
so callers keep passing and getting floats::

    from edgepipe.optimize import FloatIOSession, quantize_inputs, dequantize_outputs

    session = model.compile("cpu")
    outputs = dequantize_outputs(session, session.run(quantize_inputs(session, {"input": x})))

    # or, the same in one object:
    outputs = FloatIOSession(model).run({"input": x})

Tensors without quantization parameters (float ones) pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edgepipe import Model, Session, TensorInfo
from edgepipe.errors import InputError


def _infos(target: Model | Session, which: str) -> list[TensorInfo]:
    return list(getattr(target, which))


def quantize_array(x: np.ndarray, info: TensorInfo) -> np.ndarray:
    """Quantize float array ``x`` for tensor ``info`` (returned unchanged when ``info``
    is not an integer tensor with quantization parameters)."""
    q = info.quantization
    if q is None or info.dtype is None or info.dtype.kind not in "iu":
        return x
    arr = np.asarray(x)
    if arr.dtype.kind not in "f":
        if arr.dtype == info.dtype:
            return arr  # already quantized by the caller
        raise InputError(
            f"input {info.name!r} is quantized ({info.element_type}); pass floats to "
            f"quantize or {info.element_type} values, got {arr.dtype}"
        )
    scales = np.asarray(q.scales, np.float64)
    zps = np.asarray(q.zero_points, np.float64)
    if q.axis is not None and len(scales) > 1:
        shape = [1] * arr.ndim
        shape[q.axis] = -1
        scales, zps = scales.reshape(shape), zps.reshape(shape)
    lim = np.iinfo(info.dtype)
    values = np.round(arr.astype(np.float64) / scales) + zps
    return np.clip(values, lim.min, lim.max).astype(info.dtype)


def dequantize_array(x: np.ndarray, info: TensorInfo) -> np.ndarray:
    """Float32 values of quantized array ``x`` of tensor ``info`` (unchanged when
    ``info`` has no quantization parameters or is a float tensor)."""
    q = info.quantization
    arr = np.asarray(x)
    if q is None or arr.dtype.kind not in "iu":
        return arr
    scales = np.asarray(q.scales, np.float64)
    zps = np.asarray(q.zero_points, np.float64)
    if q.axis is not None and len(scales) > 1:
        shape = [1] * arr.ndim
        shape[q.axis] = -1
        scales, zps = scales.reshape(shape), zps.reshape(shape)
    return ((arr.astype(np.float64) - zps) * scales).astype(np.float32)


def quantize_inputs(
    target: Model | Session,
    inputs: Mapping[str, np.ndarray] | Sequence[np.ndarray] | np.ndarray,
) -> dict[str, np.ndarray]:
    """Inputs by name, floats quantized for every integer-quantized input of ``target``.

    ``inputs`` is what :meth:`edgepipe.Session.run` takes: a dict by name, a
    list by position or one array for a single-input model.
    """
    infos = _infos(target, "inputs")
    if isinstance(inputs, np.ndarray):
        inputs = [inputs]
    if isinstance(inputs, Mapping):
        unknown = [k for k in inputs if k not in {i.name for i in infos}]
        if unknown:
            raise InputError(
                f"unknown input(s) {unknown}; the model takes {[i.name for i in infos]}"
            )
        return {i.name: quantize_array(inputs[i.name], i) for i in infos if i.name in inputs}
    items = list(inputs)
    if len(items) != len(infos):
        raise InputError(f"the model takes {len(infos)} input(s), got {len(items)}")
    return {i.name: quantize_array(x, i) for i, x in zip(infos, items)}


def dequantize_outputs(
    target: Model | Session, outputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Outputs by name, integer-quantized ones turned back into float32."""
    by_name = {i.name: i for i in _infos(target, "outputs")}
    return {k: dequantize_array(v, by_name[k]) if k in by_name else v for k, v in outputs.items()}


def has_quantized_io(target: Model | Session) -> bool:
    """True when any input or output of ``target`` is an integer-quantized tensor."""
    return any(
        i.quantization is not None and i.dtype is not None and i.dtype.kind in "iu"
        for i in _infos(target, "inputs") + _infos(target, "outputs")
    )


class FloatIOSession:
    """A :class:`edgepipe.Session` that takes and returns floats for quantized I/O.

    Args:
        model: a :class:`edgepipe.Model`, a path or an open :class:`edgepipe.Session`.
        **session_kwargs: passed to :class:`edgepipe.Session` (accelerator, threads, ...)
            when ``model`` is not a session already.
    """

    def __init__(self, model: Model | Session | str, **session_kwargs: Any) -> None:
        self.session = model if isinstance(model, Session) else Session(model, **session_kwargs)

    def run(
        self, inputs: Mapping[str, np.ndarray] | Sequence[np.ndarray] | np.ndarray
    ) -> dict[str, np.ndarray]:
        """Quantize ``inputs``, run, and return float32 outputs by name."""
        raw = self.session.run(quantize_inputs(self.session, inputs))
        return dequantize_outputs(self.session, raw)

    def close(self) -> None:
        """Close the wrapped session."""
        self.session.close()

    def __enter__(self) -> FloatIOSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
