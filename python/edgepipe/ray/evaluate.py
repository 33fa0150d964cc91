"""Outputs of several models on the same samples, computed across a Ray cluster.

The evaluation half of ``edgepipe optimize --eval DATA --ray ADDRESS``: every
model (the original and each variant) runs every eval sample on the cluster,
and the driver compares the outputs as a local run would. Each model is shipped
once by content hash (:class:`~edgepipe.ray.ModelRef`, verified on arrival);
the samples are cut into chunks put into the object store once each; one Ray
task per (model, chunk) compiles a CPU :class:`~edgepipe.Session` on its node
and runs the chunk. Tasks are spread over the nodes (``SPREAD``).

A model that edgepipe cannot load, compile or run on a node gives
``ok: False`` with the runtime's message, as a local run would report it;
a cluster failure (a node lost for good, a timeout) is a :class:`RayJobError`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .. import Model, Session
from ..errors import EdgepipeError, InputError
from .errors import RayJobError, connect, require_ray
from .shipping import ModelRef

#: How a task runs one sample: ``run(session, sample) -> outputs`` (default ``Session.run``).
RunSample = Callable[[Session, dict[str, np.ndarray]], Mapping[str, Any]]


def _session_run(session: Session, sample: dict[str, np.ndarray]) -> Mapping[str, Any]:
    return session.run(sample)


def evaluate_chunk(
    model: ModelRef,
    samples: Sequence[dict[str, np.ndarray]],
    *,
    run: RunSample,
    threads: int | None,
) -> dict[str, Any]:
    """Run ``samples`` through ``model`` on this node (the body of each task).

    Returns ``{"ok": True, "outputs": [...], "ms": [...], "node_id": ...}``, or
    ``{"ok": False, "error": ..., "node_id": ...}`` when edgepipe refused the
    model or a sample.
    """
    ray = require_ray()
    node_id = ray.get_runtime_context().get_node_id()
    try:
        m = model.load()
        with Session(m, accelerator="cpu", threads=threads) as session:
            outputs: list[dict[str, np.ndarray]] = []
            ms: list[float] = []
            for sample in samples:
                t = time.perf_counter()
                out = run(session, sample)
                ms.append((time.perf_counter() - t) * 1e3)
                outputs.append({k: np.asarray(v) for k, v in out.items()})
    except EdgepipeError as exc:
        where = f"{model.name} on node {node_id[:8]}"
        return {"ok": False, "error": f"{type(exc).__name__} ({where}): {exc}", "node_id": node_id}
    return {"ok": True, "outputs": outputs, "ms": ms, "node_id": node_id}


def evaluate_models(
    models: Sequence[Model | str | os.PathLike[str]],
    samples: Sequence[dict[str, np.ndarray]],
    *,
    run: RunSample | None = None,
    threads: int | None = None,
    address: str | None = None,
    chunk_size: int | None = None,
    timeout: float = 3600.0,
) -> list[dict[str, Any]]:
    """The outputs of every model on every sample, computed on a Ray cluster.

    Args:
        models: model files (or loaded models); each is verified here, then shipped once.
        samples: inputs by name, each as :meth:`edgepipe.Session.run` takes them.
        run: how a sample is run (a module-level function, so Ray can ship it by
            reference); default ``session.run(sample)``.
        threads: CPU threads of each task's session (also the CPUs each task reserves).
        address: the cluster (``"auto"`` to discover; None: ``RAY_ADDRESS`` or a local one).
        chunk_size: samples per task (default: spread the samples over the cluster's CPUs).
        timeout: seconds for the whole evaluation.

    Returns:
        One dict per model, in order: ``ok``; ``outputs`` (one per sample, in
        order) or ``error``; and ``nodes``: per node id, ``samples`` run there
        and their ``p50_ms`` (informational: nodes differ, and latency for
        comparisons is measured on one machine).

    Raises:
        InputError: ``samples`` is empty.
        RayUnavailableError: Ray is not installed.
        RayJobError: a task failed on the cluster for a reason other than the model.
    """
    if not samples:
        raise InputError("no samples to evaluate: give at least one")
    ray = connect(address)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    per_task_cpus = max(1, threads or 1)
    if chunk_size is None:
        chunk_size = max(1, math.ceil(len(samples) / max(1, cpus // per_task_cpus)))
    chunks = [list(samples[i : i + chunk_size]) for i in range(0, len(samples), chunk_size)]
    chunk_refs = [ray.put(c) for c in chunks]
    refs = [ModelRef.from_model(m) for m in models]
    remote = ray.remote(evaluate_chunk).options(
        num_cpus=per_task_cpus, scheduling_strategy="SPREAD"
    )
    how = run if run is not None else _session_run
    tasks = [[remote.remote(ref, c, run=how, threads=threads) for c in chunk_refs] for ref in refs]
    deadline = time.monotonic() + timeout
    results: list[dict[str, Any]] = []
    for ref, model_tasks in zip(refs, tasks):
        try:
            parts = ray.get(model_tasks, timeout=max(0.0, deadline - time.monotonic()))
        except Exception as exc:  # Ray raises its own types (task lost, timeout)
            for group in tasks:
                for t in group:
                    ray.cancel(t, force=True)
            first = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
            raise RayJobError(f"evaluating {ref.name} on the cluster failed: {first}") from exc
        nodes: dict[str, dict[str, Any]] = {}
        times: dict[str, list[float]] = {}
        for p in parts:
            times.setdefault(p["node_id"], []).extend(p.get("ms", []))
        for node, ms in times.items():
            nodes[node] = {
                "samples": len(ms),
                "p50_ms": float(np.percentile(ms, 50)) if ms else None,
            }
        failed = [p for p in parts if not p["ok"]]
        if failed:
            results.append({"ok": False, "error": failed[0]["error"], "nodes": nodes})
        else:
            outputs = [o for p in parts for o in p["outputs"]]
            results.append({"ok": True, "outputs": outputs, "nodes": nodes})
    return results


class ClusterEvaluator:
    """:func:`evaluate_models` bound to a cluster: the evaluator ``edgepipe optimize
    --ray ADDRESS`` passes to :func:`edgepipe.optimize.optimize` (``evaluator=``).

    Args:
        address: the cluster (``"auto"`` to discover; None: ``RAY_ADDRESS`` or a local one).
        chunk_size: samples per task (default: spread over the cluster's CPUs).
    """

    def __init__(self, address: str | None = None, *, chunk_size: int | None = None) -> None:
        self.address = address
        self.chunk_size = chunk_size

    @property
    def name(self) -> str:
        """How the optimize report names it: ``ray cluster ADDRESS``."""
        return f"ray cluster {self.address or 'auto'}"

    def __call__(
        self,
        models: Sequence[Model | str | os.PathLike[str]],
        samples: Sequence[dict[str, np.ndarray]],
        *,
        run: RunSample,
        threads: int | None,
    ) -> list[dict[str, Any]]:
        """:func:`evaluate_models` on this cluster."""
        return evaluate_models(
            models,
            samples,
            run=run,
            threads=threads,
            address=self.address,
            chunk_size=self.chunk_size,
        )
