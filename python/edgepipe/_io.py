"""Turning what callers pass into the arrays the core takes, with clear errors."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._cache import WeightCache
from .errors import InputError
from .model import Model, TensorInfo

Inputs = Mapping[str, Any] | Sequence[Any] | np.ndarray


def _as_array(value: Any, info: TensorInfo) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    # Plain Python data carries no dtype of its own, so taking the model's is
    # no silent cast; arrays of the wrong dtype are refused by the core.
    try:
        return np.asarray(value, dtype=info.dtype)
    except (TypeError, ValueError) as exc:
        raise InputError(f"input {info.name!r} cannot be made into an array: {exc}") from exc


def order_inputs(infos: Sequence[TensorInfo], inputs: Inputs) -> list[np.ndarray]:
    """Arrange inputs in signature order.

    Accepts a mapping by input name (``arg0``, ``arg1``… also name inputs by
    position), a sequence by position, or a single array for a one-input model.
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
                raise InputError(
                    f"missing input {info.name!r}; the model takes {names}"
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
    raise InputError(
        f"inputs must be a dict, a list or a numpy array, not {type(inputs).__name__}"
    )


def resolve_weight_cache(
    model: Model, weight_cache: bool | str | os.PathLike[str] | None
) -> WeightCache:
    """The weight cache to compile with: checked (built if needed), or none.

    Never raises for a cache that cannot be had: the returned object then
    has an empty ``core_path`` and the reason in its ``events``.
    """
    return WeightCache(model, False if weight_cache is None else weight_cache)


def accelerator_list(accelerator: str | Sequence[str]) -> list[str]:
    """Normalise ``"gpu"``, ``"gpu,cpu"`` or ``["gpu", "cpu"]`` to a list."""
    if isinstance(accelerator, str):
        return [a.strip() for a in accelerator.split(",") if a.strip()]
    return [str(a) for a in accelerator]
