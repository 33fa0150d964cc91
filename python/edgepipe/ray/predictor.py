"""A callable class for Ray Data's ``Dataset.map_batches``: one edgepipe Pool per actor.

::

    import ray, edgepipe.ray as er

    ref = er.ModelRef.from_model("detector.tflite")
    out = ds.map_batches(
        er.PoolPredictor,
        fn_constructor_kwargs={"model": ref},
        batch_size=64,
        concurrency=4,
        batch_format="numpy",
    )

Each row holds one sample: a column per model input, named as the input, whose
value has the input's shape, with or without its leading batch dimension of 1.
The result keeps every other column (ids, paths) and adds a column per model
output holding that row's output, exactly as :meth:`edgepipe.Session.run`
returns it (same shape, same dtype, same values). ``batch_format`` may be
``"numpy"`` (a dict of arrays) or ``"pandas"`` (a DataFrame).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import Pool, TensorInfo
from .errors import ScoreDataError, require_ray
from .shipping import ModelRef


def row_inputs(
    infos: list[TensorInfo], columns: Mapping[str, Any], index: int
) -> dict[str, np.ndarray]:
    """The model inputs of row ``index``, reshaped to the model's shapes."""
    row: dict[str, np.ndarray] = {}
    for t in infos:
        if t.name not in columns:
            raise ScoreDataError(
                f"batch has no column {t.name!r} for model input {t.name!r}; "
                f"columns: {sorted(columns)}"
            )
        value = np.asarray(columns[t.name][index])
        row[t.name] = conform(t, value, where=f"row {index}")
    return row


def conform(t: TensorInfo, value: np.ndarray, *, where: str) -> np.ndarray:
    """``value`` with the input's shape (adding a leading batch dim of 1), same dtype."""
    shape = tuple(t.shape)
    if t.dtype is not None and value.dtype != t.dtype:
        raise ScoreDataError(
            f"{where}: input {t.name!r} is {value.dtype}, the model takes {t.dtype}; "
            "convert it before scoring"
        )
    if value.shape == shape:
        return value
    if shape and shape[0] == 1 and value.shape == shape[1:]:
        return value.reshape(shape)
    raise ScoreDataError(
        f"{where}: input {t.name!r} has shape {list(value.shape)}, the model takes "
        f"{list(shape)} (or {list(shape[1:])} without the batch dimension)"
    )


class PoolPredictor:
    """Runs each row of a batch through an edgepipe :class:`~edgepipe.Pool`.

    Args:
        model: the :class:`ModelRef` of the model (shipped by hash, verified on arrival).
        workers: instances in this actor's pool (give the actor as many ``num_cpus``).
        threads_per_worker: CPU threads of each instance.
        accelerator: the pool's accelerator spec; failures fall back to the CPU.
        node_column: if set, a column of that name holding the id of the Ray node
            that ran each row (how ``score`` counts the rows each node scored).
    """

    def __init__(
        self,
        model: ModelRef,
        *,
        workers: int = 1,
        threads_per_worker: int = 1,
        accelerator: Any = "cpu",
        node_column: str | None = None,
    ) -> None:
        self._pool = Pool(
            model.load(),
            workers=workers,
            threads_per_worker=threads_per_worker,
            accelerator=accelerator,
            queue_size=max(64, 4 * workers),
        )
        self._inputs = list(self._pool.inputs)
        self._outputs = [t.name for t in self._pool.outputs]
        self._node_column = node_column
        self._node_id = require_ray().get_runtime_context().get_node_id() if node_column else ""

    def __call__(self, batch: Any) -> Any:
        is_pandas = hasattr(batch, "to_dict") and hasattr(batch, "columns")
        columns: Mapping[str, Any] = (
            {c: batch[c].to_numpy() for c in batch.columns} if is_pandas else batch
        )
        n = len(next(iter(columns.values()))) if columns else 0
        futures = [self._pool.submit(row_inputs(self._inputs, columns, i)) for i in range(n)]
        results = [f.result() for f in futures]
        input_names = {t.name for t in self._inputs}
        out: dict[str, Any] = {k: v for k, v in columns.items() if k not in input_names}
        for name in self._outputs:
            stacked = [r[name] for r in results]
            out[name] = np.stack(stacked) if stacked else np.empty((0,))
        if self._node_column:
            out[self._node_column] = np.array([self._node_id] * n, dtype=object)
        if is_pandas:
            import pandas as pd

            return pd.DataFrame(
                {
                    k: (list(v) if isinstance(v, np.ndarray) and v.ndim > 1 else v)
                    for k, v in out.items()
                }
            )
        return out

    def __del__(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.close()
