"""``edgepipe score``: outputs of a model for a folder of inputs, locally or on Ray.

Inputs are the ``*.npz`` files of one folder, one sample per file: an array per
model input, named as the input (a single-input model also takes a file with
exactly one array under any name). Each array has the input's shape, with or
without its leading batch dimension of 1. For each ``NAME.npz`` the result is
``OUT/NAME.npz`` holding the model's outputs by name, exactly as
:meth:`edgepipe.Session.run` returns them.

On a cluster the driver reads the inputs and ships them through Ray's object
store (nodes need no shared file system); actors hold one edgepipe Pool each;
outputs come back to the driver, which writes them only after every input has
exactly one result, so a failed job writes nothing and a retried one writes no
duplicates.
"""

from __future__ import annotations

import io
import os
import stat
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from .. import Model, Pool, TensorInfo
from .._files import atomic_write
from .errors import RayJobError, ScoreDataError, connect
from .predictor import PoolPredictor, conform
from .shipping import ModelRef

KEY = "__edgepipe_key__"
NODE = "__edgepipe_node__"


def read_inputs(model: Model, data: str | os.PathLike[str]) -> list[tuple[str, dict[str, Any]]]:
    """``[(name, {input: array})]`` for every ``*.npz`` in ``data``, sorted by name."""
    folder = Path(data)
    if not folder.is_dir():
        raise ScoreDataError(f"{folder} is not a folder of .npz input files")
    infos: list[TensorInfo] = list(model.inputs)
    rows: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(folder.glob("*.npz")):
        mode = os.lstat(path).st_mode
        if not stat.S_ISREG(mode):
            raise ScoreDataError(f"{path} is not a regular file; only plain .npz files are read")
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except Exception as exc:  # zipfile/numpy raise many kinds for a bad file
            raise ScoreDataError(f"{path} is not a readable .npz file: {exc}") from exc
        if len(infos) == 1 and len(arrays) == 1:
            arrays = {infos[0].name: next(iter(arrays.values()))}
        missing = [t.name for t in infos if t.name not in arrays]
        if missing:
            raise ScoreDataError(
                f"{path} has arrays {sorted(arrays)}; the model needs {[t.name for t in infos]} "
                f"(missing {missing})"
            )
        row = {t.name: conform(t, arrays[t.name], where=str(path)) for t in infos}
        rows.append((path.stem, row))
    if not rows:
        raise ScoreDataError(f"{folder} holds no .npz input files")
    return rows


def _write_outputs(out: Path, results: dict[str, dict[str, np.ndarray]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if not out.is_dir():
        raise ScoreDataError(f"{out} exists and is not a folder")
    for key, arrays in results.items():
        buf = io.BytesIO()
        np.savez(buf, **cast(dict[str, Any], arrays))
        atomic_write(out / f"{key}.npz", buf.getvalue())


def score_local(
    model: Model, rows: Sequence[tuple[str, dict[str, Any]]], *, workers: int = 1
) -> dict[str, dict[str, np.ndarray]]:
    """Outputs for ``rows`` from a local Pool."""
    with Pool(model, workers=workers, queue_size=max(64, 4 * workers)) as pool:
        futures = [(key, pool.submit(inputs)) for key, inputs in rows]
        return {key: fut.result() for key, fut in futures}


def actor_pool(ray: Any, actors: int) -> Any:
    """``actors`` actors, all started before the work begins.

    A fixed pool spreads the job over the nodes from its first batch: a pool
    that starts work with its first ready actor (``min_size=1``) scored all
    1,000 inputs of a short job on one node, the other node's actor still
    starting. The caller sizes ``actors`` to what the cluster can hold.
    """
    return ray.data.ActorPoolStrategy(min_size=actors, max_size=actors)


def score_ray(
    model: Model,
    rows: Sequence[tuple[str, dict[str, Any]]],
    *,
    address: str | None = None,
    actors: int | None = None,
    workers: int = 1,
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
    nodes: dict[str, int] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Outputs for ``rows`` from Ray Data actors holding edgepipe Pools.

    ``progress(done, total)`` is called on the driver after each batch arrives;
    ``nodes``, if given, is filled with the number of rows each Ray node scored.
    """
    ray = connect(address)
    ref = ModelRef.from_model(model)
    if actors is None:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        actors = max(1, cpus // workers)
    ds = ray.data.from_items([{KEY: key, **inputs} for key, inputs in rows])
    out_names = [t.name for t in model.outputs]
    scored = ds.map_batches(
        PoolPredictor,
        fn_constructor_kwargs={"model": ref, "workers": workers, "node_column": NODE},
        batch_size=batch_size,
        batch_format="numpy",
        compute=actor_pool(ray, actors),
        num_cpus=workers,
    )
    results: dict[str, dict[str, np.ndarray]] = {}
    try:
        for batch in scored.iter_batches(batch_format="numpy", batch_size=None):
            for i, key in enumerate(batch[KEY]):
                key = str(key)
                if key in results:
                    raise RayJobError(f"the cluster returned input {key!r} twice")
                results[key] = {n: np.asarray(batch[n][i]) for n in out_names}
                if nodes is not None:
                    node = str(batch[NODE][i])
                    nodes[node] = nodes.get(node, 0) + 1
            if progress is not None:
                progress(len(results), len(rows))
    except RayJobError:
        raise
    except Exception as exc:  # Ray raises its own error types for failed jobs
        raise RayJobError(f"the scoring job failed on the cluster, nothing written: {exc}") from exc
    missing = [k for k, _ in rows if k not in results]
    if missing:
        raise RayJobError(
            f"the cluster returned no result for {len(missing)} inputs: {missing[:5]}"
        )
    return results


def score(
    model: Model | str | os.PathLike[str],
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    ray_address: str | None = None,
    use_ray: bool = False,
    workers: int = 1,
    actors: int | None = None,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Score every ``*.npz`` in ``data`` and write ``out/<name>.npz``; return a summary.

    Runs locally unless ``use_ray`` or ``ray_address`` is given (``"auto"`` joins the
    cluster this machine belongs to). Outputs are written only when every input has
    exactly one result. On Ray the summary's ``nodes`` counts the inputs each
    node scored.
    """
    m = model if isinstance(model, Model) else Model.load(model)
    start = time.perf_counter()
    rows = read_inputs(m, data)
    nodes: dict[str, int] = {}
    if use_ray or ray_address:
        results = score_ray(
            m,
            rows,
            address=ray_address,
            actors=actors,
            workers=workers,
            batch_size=batch_size,
            nodes=nodes,
        )
        mode = "ray"
    else:
        results = score_local(m, rows, workers=workers)
        mode = "local"
    _write_outputs(Path(out), results)
    return {
        "mode": mode,
        "model": m.sha256,
        "inputs": len(rows),
        "written": len(results),
        "out": str(Path(out)),
        "seconds": round(time.perf_counter() - start, 3),
        **({"nodes": nodes} if mode == "ray" else {}),
    }
