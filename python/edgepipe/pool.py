"""Pools: long-lived compiled instances behind one bounded request queue."""

from __future__ import annotations

import asyncio
import atexit
import os
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from . import _core, errors
from ._io import Inputs, accelerator_list, order_inputs, resolve_weight_cache
from .accel import guard
from .model import Model, TensorInfo

_ERROR_BY_KIND: dict[str, type[errors.EdgepipeError]] = {
    kind: getattr(errors, _core.error_class_name(kind))
    for kind in (
        "runtime", "model", "compile", "input", "run", "queue_full", "dropped",
        "timeout", "closed", "cancelled", "accelerator", "internal",
    )
}

_live_pools: weakref.WeakSet[Pool] = weakref.WeakSet()


@atexit.register
def _close_live_pools() -> None:
    # A pool's delivery thread calls into Python to resolve futures; it must
    # be stopped before the interpreter tears down, or a late callback could
    # touch a dead interpreter.
    for pool in list(_live_pools):
        pool.close(drain=False)


def _seconds(timeout: float | None) -> float:
    if timeout is None:
        return -1.0
    if timeout < 0:
        raise errors.InputError(f"timeout must be >= 0 seconds, got {timeout}")
    return float(timeout)


class Pool:
    """N long-lived instances of one model behind a bounded queue.

    The queue and the workers live in C++: inference and waiting never hold
    the GIL, so Python threads and asyncio tasks scale across cores. All
    workers share the model's mapped bytes and (``weight_cache=True``) one
    XNNPACK weight-cache file, so an extra worker pays for its activations,
    not for another copy of the packed weights.

    Args:
        model: a :class:`Model` or a path.
        workers: number of compiled instances (and threads).
        queue_size: requests that may wait for a worker.
        policy: what a full queue does with a new request: ``"block"`` (wait,
            up to ``block_timeout``), ``"reject"`` (raise
            :class:`~edgepipe.errors.QueueFullError`) or ``"keep_latest"``
            (drop the oldest queued request, whose future fails with
            :class:`~edgepipe.errors.DroppedError`: for camera streams).
        accelerator: ``"cpu"``, ``"gpu"``, ``"npu"`` or a preference list;
            failures fall back down the list to the CPU and are recorded in
            :meth:`events`.
        threads_per_worker: CPU threads of each instance.
        weight_cache: share packed weights through a cache file (True), a
            given file (path), or not at all (False).
        block_timeout: default seconds a ``"block"`` submit waits for room.
        retire_after_failures: failed runs after which a worker gives up a
            non-CPU accelerator for the CPU.
        plugin_options: options for delegate plugins (see :class:`Session`).
    """

    def __init__(
        self,
        model: Model | str | os.PathLike[str],
        *,
        workers: int = 1,
        queue_size: int = 64,
        policy: str = "block",
        accelerator: str | Sequence[str] = "cpu",
        threads_per_worker: int = 1,
        weight_cache: bool | str | os.PathLike[str] = True,
        signature: str | None = None,
        block_timeout: float | None = None,
        retire_after_failures: int = 3,
        plugin_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._model = model if isinstance(model, Model) else Model.load(model)
        if workers < 1:
            raise errors.InputError(f"workers must be at least 1, got {workers}")
        if threads_per_worker < 1:
            raise errors.InputError(f"threads_per_worker must be >= 1, got {threads_per_worker}")
        self._block_timeout = _seconds(block_timeout)
        names, self._policy_events, accel_kwargs = guard.prepare(
            self._model, accelerator_list(accelerator), plugin_options=plugin_options
        )
        self._weight_cache = resolve_weight_cache(self._model, weight_cache)
        self._core = _core.Pool(
            self._model._core,
            workers=workers,
            queue_size=queue_size,
            policy=policy,
            accelerators=names,
            threads=threads_per_worker,
            weight_cache=self._weight_cache.core_path,
            signature=self._model._signature_index(signature),
            retire_after_failures=retire_after_failures,
            **accel_kwargs,
        )
        self._inputs = [TensorInfo._from_core(t) for t in self._core.inputs]
        self._outputs = [TensorInfo._from_core(t) for t in self._core.outputs]
        self._out_names = [t.name for t in self._outputs]
        self._out_specs = [(t.dtype, t.shape) for t in self._outputs]
        self._workers = workers
        self._policy = policy
        _live_pools.add(self)

    # -- contract ---------------------------------------------------------
    @property
    def model(self) -> Model:
        """The model serving new requests (changes with :meth:`swap`)."""
        return self._model

    @property
    def inputs(self) -> list[TensorInfo]:
        """Inputs every request must provide."""
        return list(self._inputs)

    @property
    def outputs(self) -> list[TensorInfo]:
        """Outputs every request gets."""
        return list(self._outputs)

    @property
    def workers(self) -> int:
        """Number of workers."""
        return self._workers

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return bool(self._core.closed)

    # -- requests ---------------------------------------------------------
    def run(self, inputs: Inputs, *, timeout: float | None = None) -> dict[str, np.ndarray]:
        """Run one request and wait for its outputs (GIL released while waiting).

        Args:
            inputs: arrays by name, by position, or one array.
            timeout: seconds the request may wait before it starts; it is
                then never run and :class:`~edgepipe.errors.RequestTimeoutError`
                is raised. A started run always completes.
        """
        arrays = order_inputs(self._inputs, inputs)
        result = self._core.run(arrays, _seconds(timeout))
        return dict(zip(self._out_names, result))

    def submit(
        self,
        inputs: Inputs,
        *,
        timeout: float | None = None,
        callback: Callable[[Future[dict[str, np.ndarray]]], object] | None = None,
        block_timeout: float | None = None,
    ) -> Future[dict[str, np.ndarray]]:
        """Queue a request and return a :class:`concurrent.futures.Future`.

        The future resolves to the outputs by name, or fails with a typed
        error (dropped, expired, cancelled, inference error). ``callback``
        is added as a done-callback. Futures are resolved, and callbacks run,
        on the pool's delivery thread (one per pool, never a worker): a slow
        callback delays later callbacks, not inference.

        Raises (synchronously): QueueFullError, PoolClosedError, InputError.
        """
        arrays = order_inputs(self._inputs, inputs)
        outputs = [np.empty(shape, dtype) for dtype, shape in self._out_specs]
        future: Future[dict[str, np.ndarray]] = Future()
        # Running from the start: a request in the C++ queue cannot be
        # withdrawn through Future.cancel(); close(drain=False) cancels it.
        future.set_running_or_notify_cancel()
        names = self._out_names

        def done(ok: bool, kind: str, message: str, _queue_us: float, _run_us: float) -> None:
            if ok:
                future.set_result(dict(zip(names, outputs)))
            else:
                future.set_exception(_ERROR_BY_KIND.get(kind, errors.EdgepipeError)(message))

        if callback is not None:
            future.add_done_callback(callback)
        bt = self._block_timeout if block_timeout is None else _seconds(block_timeout)
        self._core.submit(arrays, outputs, done, _seconds(timeout), bt)
        return future

    async def run_async(
        self, inputs: Inputs, *, timeout: float | None = None
    ) -> dict[str, np.ndarray]:
        """Await one request from asyncio without blocking the event loop.

        A full ``"block"`` queue is waited for in the default executor.
        """
        loop = asyncio.get_running_loop()
        try:
            fut = self.submit(inputs, timeout=timeout, block_timeout=0.0)
        except errors.QueueFullError:
            if self._policy == "block":
                fut = await loop.run_in_executor(
                    None, lambda: self.submit(inputs, timeout=timeout)
                )
            else:
                raise
        return await asyncio.wrap_future(fut, loop=loop)

    def map(
        self,
        items: Iterable[Inputs],
        *,
        window: int | None = None,
        timeout: float | None = None,
    ) -> Iterator[dict[str, np.ndarray]]:
        """Run many requests, yielding outputs in input order.

        At most ``window`` (default: 2 × workers) requests are in flight, so
        an endless stream is processed with bounded memory.
        """
        limit = window or 2 * self._workers
        pending: deque[Future[dict[str, np.ndarray]]] = deque()
        for item in items:
            pending.append(self.submit(item, timeout=timeout))
            if len(pending) >= limit:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    # -- lifecycle and observability ---------------------------------------
    def swap(self, model: Model | str | os.PathLike[str]) -> None:
        """Hot-swap a new model in without losing a request.

        New instances are compiled on the side (the old ones keep serving);
        the new model must keep the input/output contract. In-flight requests
        finish on the old model, whose mapping is freed with its last user.

        Raises:
            ModelError: the contract differs. CompileError: it does not compile.
        """
        new = model if isinstance(model, Model) else Model.load(model)
        # The core compiles the new model with the pool's cache path, which
        # must then lead to the new model's cache: another model's cache
        # would silently give the old model's outputs.
        self._weight_cache.swap_to(new, lambda: self._core.swap(new._core))
        self._model = new

    def stats(self) -> dict[str, Any]:
        """Counters, queue depth, busy workers, latency histograms (µs) and fallback events."""
        s = dict(self._core.stats())
        s["model_sha256"] = self._model.sha256
        s["fallback_events"] = self.events()
        return s

    def events(self) -> list[dict[str, Any]]:
        """Fallback events: ``{"from", "to", "stage", "error", "time"}``.

        A weight cache that could not be used is a ``"weight_cache"`` stage
        event (the workers run without it).
        """
        return self._policy_events + self._weight_cache.events + list(self._core.events())

    def close(self, drain: bool = True) -> None:
        """Stop taking requests.

        ``drain=True`` runs what is queued first; ``drain=False`` cancels it
        (futures fail with :class:`~edgepipe.errors.CancelledError`). Safe to
        call twice, from any thread, or from a completion callback.
        """
        self._core.close(drain)
        _live_pools.discard(self)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(drain=True)

    def __repr__(self) -> str:
        return f"<edgepipe.Pool workers={self._workers} model={self._model!r}>"
