"""Pools: long-lived compiled instances behind one bounded request queue.

Layer: the top of the inference stack (above sessions); used by the CLI,
benchmarks, telemetry and OTA.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from . import _args, _core
from ._runtime import error_for_kind
from .accelerators.plan import plan
from .accelerators.spec import AcceleratorSpec
from .errors import DroppedError, InputError, QueueFullError
from .events import Events, log_fallbacks
from .model import Model, as_model
from .scheduler import Scheduler
from .scheduler import ledger as scheduler_ledger
from .tensors import Inputs, TensorInfo, named, order_inputs, output_indices
from .weight_cache import resolve_weight_cache

POLICIES = ("block", "reject", "keep_latest")
#: Relative resolution of the latency histograms in :meth:`Pool.stats`:
#: 8 log-spaced buckets per power of two, so a percentile is the upper bound
#: of its bucket, at most 2**(1/8) - 1 (about 9.05%) above the true value.
HISTOGRAM_RESOLUTION = 2 ** (1 / 8) - 1

_live_pools: weakref.WeakSet[Pool] = weakref.WeakSet()


@atexit.register
def _close_live_pools() -> None:
    # A pool's delivery thread calls into Python to resolve futures; it must
    # be stopped before the interpreter tears down, or a late callback could
    # touch a dead interpreter.
    for pool in list(_live_pools):
        pool.close(drain=False)


class _RequestFuture(Future[dict[str, np.ndarray]]):
    """A pool request's future: :meth:`cancel` withdraws it from the queue when the
    core can (the request has not started), and then it never runs."""

    def __init__(self) -> None:
        super().__init__()
        self._withdraw: Callable[[], bool] | None = None
        self._withdrawn = False
        # Reentrant: the core may run the withdrawn request's callback (kind
        # "cancelled") in this very thread, inside _withdraw().
        self._lock = threading.RLock()

    def cancel(self) -> bool:
        with self._lock:
            if self.done():
                return self.cancelled()
            if self._withdraw is None:
                return False
            self._withdrawn = True  # before asking: its callback must see it
            if not self._withdraw():
                self._withdrawn = False
                return False
        return super().cancel()

    def _delivering(self) -> bool:
        """Called by the delivery thread first: False if the request was withdrawn."""
        with self._lock:
            self._withdraw = None  # too late to withdraw now
            return not self._withdrawn


class PoolMap(Iterator[dict[str, np.ndarray]]):
    """The iterator :meth:`Pool.map` returns: outputs in input order.

    Requests the pool dropped (policy ``keep_latest``: a newer request took
    the place; policy ``reject``: the queue was full) are skipped, never
    silently: :attr:`dropped` counts them and :attr:`dropped_indices` holds
    their positions in the input stream.
    """

    def __init__(self, gen: Iterator[dict[str, np.ndarray]]) -> None:
        self._gen = gen
        self.dropped = 0
        self.dropped_indices: list[int] = []

    def __next__(self) -> dict[str, np.ndarray]:
        return next(self._gen)

    def __iter__(self) -> PoolMap:
        return self

    def _drop(self, index: int) -> None:
        self.dropped += 1
        self.dropped_indices.append(index)


class Pool:
    """N long-lived instances of one model behind a bounded queue.

    The queue and the workers live in C++: inference and waiting never hold
    the GIL, so Python threads and asyncio tasks scale across cores. All
    workers share the model's mapped bytes and (``weight_cache=True``) one
    XNNPACK weight-cache file, so an extra worker pays for its activations,
    not for another copy of the packed weights.

    Args:
        model: a :class:`Model` or a path.
        workers: number of compiled instances (and threads), 1 to 256.
        queue_size: requests that may wait for a worker, 1 to 2**20.
        policy: what a full queue does with a new request: ``"block"`` (wait,
            up to ``block_timeout``), ``"reject"`` (raise
            :class:`~edgepipe.errors.QueueFullError`) or ``"keep_latest"``
            (drop the oldest queued request, whose future fails with
            :class:`~edgepipe.errors.DroppedError`: for camera streams).
        accelerator: as for :class:`Session` (a name, a list, ``(name,
            options)`` pairs or ``"auto"``); failures fall back down the
            list to the CPU and are recorded in :attr:`events`.
        threads: CPU threads of each instance, 1 to 256 (the same name as
            :class:`Session`'s; ``threads_per_worker`` is the old name).
        weight_cache: share packed weights through edgepipe's cache file
            (True), a given file (path), or not at all (False, the default,
            as for :class:`Session`). Multi-worker pools save memory with True.
        signature: the signature key to run (default: the first).
        block_timeout: default seconds a ``"block"`` submit waits for room
            (None or ``math.inf``: no limit).
        retire_after_failures: failed runs after which a worker gives up a
            non-CPU accelerator for the CPU.
        plugin_options: options for delegate plugins (see :class:`Session`).
        callback_wait: seconds :meth:`close` (or the pool's destruction) waits
            for completion callbacks that are still running before it returns.
        scheduler: a :class:`~edgepipe.scheduler.Scheduler` whose CPU threads and
            accelerator slots this pool shares with other pools: each run first
            takes what its instance needs, by ``priority``. Without one the pool
            is not arbitrated, but its threads count towards the process-wide
            budget: oversubscribing it logs one warning, and
            ``stats()["oversubscribed"]`` says so.
        priority: this pool's priority in its scheduler (larger runs first;
            waiting raises it over time, see :mod:`edgepipe.scheduler`).
        max_batch: dynamic batching, 1 (off, the default) to 1024 and at most
            ``queue_size``: a worker stacks up to this many queued requests
            into one run along dimension 0 and splits the outputs back, so
            each request keeps the batch-1 contract and gets its own result.
            Only for models whose batch dimension can be resized (every
            input's and output's dimension 0 is 1 or -1 and the graph carries
            it through); others are refused with
            :class:`~edgepipe.errors.ModelError` naming the tensor. Each
            worker compiles extra instances for batch sizes 2, 4, 8, ... up to
            ``max_batch``; a partial batch runs on the smallest that holds it
            (extra rows zero-filled). See the pool docs (docs/api.md).
        max_batch_delay: seconds a worker that finds fewer than ``max_batch``
            requests queued waits for more before it runs what it has
            (default 0: run what is queued at once). A finite number >= 0.
        caller_runs: let :meth:`run` do the inference on the calling thread
            (with the GIL released) when nothing is queued and a CPU worker is
            idle, on that worker's instance, instead of handing the request to
            the worker thread and waiting to be woken: two thread wake-ups
            less per call. Order, deadlines, priorities and :meth:`stats` are
            the same either way (``stats()["caller_runs"]`` counts these runs);
            instances on other accelerators always run on their own worker.
            False: every run happens on a worker thread. Pools with
            ``max_batch > 1`` never run on the caller's thread (their requests
            go through the queue to be batched).

    Timeouts (``timeout``, ``block_timeout``) are seconds >= 0; None,
    ``math.inf`` and values of 1e9 or more mean "no limit"; NaN is refused.
    """

    def __init__(
        self,
        model: Model | str | os.PathLike[str],
        *,
        workers: int = 1,
        queue_size: int = 64,
        policy: str = "block",
        accelerator: AcceleratorSpec = "cpu",
        threads: int | None = None,
        weight_cache: bool | str | os.PathLike[str] = False,
        signature: str | None = None,
        block_timeout: float | None = None,
        retire_after_failures: int = 3,
        plugin_options: Mapping[str, Any] | None = None,
        callback_wait: float = 5.0,
        threads_per_worker: int | None = None,
        scheduler: Scheduler | None = None,
        priority: int = 0,
        max_batch: int = 1,
        max_batch_delay: float = 0.0,
        caller_runs: bool = True,
    ) -> None:
        if threads_per_worker is not None:
            warnings.warn(
                "Pool(threads_per_worker=) is now Pool(threads=), as for Session",
                DeprecationWarning,
                stacklevel=2,
            )
            if threads is not None and threads != threads_per_worker:
                raise InputError("pass threads= or threads_per_worker=, not both")
            threads = threads_per_worker
        workers = _args.integer("workers", workers, low=1, high=_args.MAX_WORKERS)
        threads = _args.integer(
            "threads", 1 if threads is None else threads, low=1, high=_args.MAX_THREADS
        )
        queue_size = _args.integer("queue_size", queue_size, low=1, high=_args.MAX_QUEUE_SIZE)
        policy = _args.choice("policy", policy, POLICIES)
        retire_after_failures = _args.integer("retire_after_failures", retire_after_failures, low=1)
        weight_cache = _args.weight_cache("weight_cache", weight_cache)
        signature = _args.optional_str("signature", signature)
        self._block_timeout = _args.timeout("block_timeout", block_timeout)
        wait = _args.timeout("callback_wait", callback_wait)
        if scheduler is not None and not isinstance(scheduler, Scheduler):
            raise InputError(
                f"scheduler must be an edgepipe.Scheduler or None, got {type(scheduler).__name__}"
            )
        priority = _args.integer("priority", priority, low=-(2**31), high=2**31 - 1)
        max_batch = _args.integer("max_batch", max_batch, low=1, high=_args.MAX_BATCH)
        max_batch_delay = _args.seconds("max_batch_delay", max_batch_delay)
        if max_batch > queue_size:
            raise InputError(
                f"max_batch ({max_batch}) is larger than queue_size ({queue_size}): batches "
                "are taken from the queue and could never fill; use queue_size >= max_batch"
            )
        caller_runs = _args.boolean("caller_runs", caller_runs)
        self._model = as_model(model)
        sig_index = self._model.signature_index(signature)
        chosen = plan(self._model, accelerator, plugin_options=plugin_options)
        self._policy_events = chosen.events
        self._decision = chosen.decision
        self._weight_cache = resolve_weight_cache(self._model, weight_cache)
        self._core = _core.Pool(
            self._model._core,
            workers=workers,
            queue_size=queue_size,
            policy=policy,
            accelerators=chosen.accelerator,
            threads=threads,
            weight_cache=self._weight_cache.core_path,
            signature=sig_index,
            retire_after_failures=retire_after_failures,
            callback_wait=wait,
            scheduler=None if scheduler is None else scheduler._core,
            priority=priority,
            max_batch=max_batch,
            max_batch_delay=max_batch_delay,
            caller_runs=caller_runs,
            **chosen.core_kwargs(),
        )
        self._scheduler = scheduler
        self._priority = priority
        # Set when this pool, outside any scheduler, took the process past its cores.
        self._oversubscribed: str | None = None
        if scheduler is None:
            weakref.finalize(self, scheduler_ledger.release, id(self))
            self._oversubscribed = scheduler_ledger.claim(id(self), workers * threads)
        self._inputs = [TensorInfo.from_core(t) for t in self._core.inputs]
        self._outputs = [TensorInfo.from_core(t) for t in self._core.outputs]
        self._out_names = [t.name for t in self._outputs]
        self._out_specs = [(t.dtype, t.shape) for t in self._outputs]
        self._workers = workers
        self._threads = threads
        self._queue_size = queue_size
        self._policy = policy
        self._max_batch = max_batch
        self._max_batch_delay = max_batch_delay
        _live_pools.add(self)
        log_fallbacks(self.events)

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
    def threads(self) -> int:
        """CPU threads of each worker."""
        return self._threads

    @property
    def queue_size(self) -> int:
        """Requests that may wait for a worker."""
        return self._queue_size

    @property
    def max_batch(self) -> int:
        """Most requests one run stacks (1: no batching)."""
        return self._max_batch

    @property
    def max_batch_delay(self) -> float:
        """Seconds a worker waits for a partial batch to fill."""
        return self._max_batch_delay

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return bool(self._core.closed)

    @property
    def auto_decision(self) -> dict[str, Any] | None:
        """The ``auto`` trial's record when made with ``accelerator="auto"``, else None."""
        return self._decision

    # -- requests ---------------------------------------------------------
    def run(
        self,
        inputs: Inputs,
        *,
        timeout: float | None = None,
        outputs: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Run one request and wait for its outputs (GIL released while waiting).

        When nothing is queued and a CPU worker is idle, the request runs on
        that worker's instance on this thread (see ``caller_runs``), saving
        the hand-off to the worker thread; otherwise it waits in the queue.

        Args:
            inputs: arrays by name, by position, or one array (non-contiguous
                arrays are copied once, as for :meth:`Session.run`).
            timeout: seconds the request may wait before it starts; it is
                then never run and :class:`~edgepipe.errors.RequestTimeoutError`
                is raised. A started run always completes.
            outputs: names of the outputs to return (default: all).
        """
        seconds = _args.timeout("timeout", timeout)
        indices = output_indices(self._out_names, outputs)
        arrays = order_inputs(self._inputs, inputs)
        result = self._core.run(arrays, seconds, indices)
        return named(self._out_names, indices, result)

    def submit(
        self,
        inputs: Inputs,
        *,
        timeout: float | None = None,
        callback: Callable[[Future[dict[str, np.ndarray]]], object] | None = None,
        block_timeout: float | None = None,
        outputs: Sequence[str] | None = None,
    ) -> Future[dict[str, np.ndarray]]:
        """Queue a request and return a :class:`concurrent.futures.Future`.

        The future resolves to the outputs by name (only ``outputs`` when
        given), or fails with a typed error (dropped, expired, cancelled,
        inference error). ``callback`` is added as a done-callback. Futures
        are resolved, and callbacks run, on the pool's delivery thread (one
        per pool, never a worker): a slow callback delays later callbacks,
        not inference. ``future.cancel()`` on a request that has not started
        withdraws it (it never runs) and returns True; once it has started,
        False. ``block_timeout`` (None: the pool's) bounds the wait for room
        in a full ``"block"`` queue.

        The inputs are copied when the request is queued: the caller may
        reuse its arrays at once.

        Raises (synchronously): QueueFullError, PoolClosedError, InputError.
        """
        seconds = _args.timeout("timeout", timeout)
        bt = (
            self._block_timeout
            if block_timeout is None
            else _args.timeout("block_timeout", block_timeout)
        )
        if callback is not None and not callable(callback):
            raise InputError(f"callback must be callable, not {type(callback).__name__}")
        names = self._out_names
        indices = output_indices(names, outputs)
        arrays = order_inputs(self._inputs, inputs)
        specs = self._out_specs if indices is None else [self._out_specs[i] for i in indices]
        buffers = [np.empty(shape, dtype) for dtype, shape in specs]
        future = _RequestFuture()

        def done(ok: bool, kind: str, message: str, _queue_us: float, _run_us: float) -> None:
            if not future._delivering():
                return  # withdrawn by cancel(): the future is cancelled already
            if ok:
                future.set_result(named(names, indices, buffers))
            else:
                future.set_exception(error_for_kind(kind, message))

        if callback is not None:
            future.add_done_callback(callback)
        ticket = self._core.submit(arrays, buffers, done, seconds, bt, indices)
        # Weakly: a future must not keep a dropped pool's core (and queue) alive.
        core = weakref.ref(self._core)
        future._withdraw = lambda: bool((c := core()) is not None and c.cancel(ticket))
        return future

    async def run_async(
        self,
        inputs: Inputs,
        *,
        timeout: float | None = None,
        outputs: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Await one request from asyncio without blocking the event loop.

        A full ``"block"`` queue is waited for in the default executor.
        """
        loop = asyncio.get_running_loop()
        try:
            fut = self.submit(inputs, timeout=timeout, block_timeout=0.0, outputs=outputs)
        except QueueFullError:
            if self._policy == "block":
                fut = await loop.run_in_executor(
                    None, lambda: self.submit(inputs, timeout=timeout, outputs=outputs)
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
        outputs: Sequence[str] | None = None,
    ) -> PoolMap:
        """Run many requests, yielding outputs in input order.

        At most ``window`` (default: 2 × workers) requests are in flight, so
        an endless stream is processed with bounded memory. With policy
        ``keep_latest`` or ``reject``, a request the pool drops (a newer one
        took its place, or the queue was full) is skipped and the stream
        goes on: the returned :class:`PoolMap` counts them in ``dropped``
        and lists their positions in ``dropped_indices``. Any other error
        (an expired ``timeout``, a failed run) is raised by the iterator.
        """
        limit = _args.integer("window", 2 * self._workers if window is None else window, low=1)
        if not isinstance(items, Iterable) or isinstance(items, (Mapping, str, bytes)):
            raise InputError(
                "items must be an iterable of inputs (one dict, list or array per request), "
                f"not {type(items).__name__}"
            )
        _args.timeout("timeout", timeout)
        result = PoolMap(iter(()))

        def generate() -> Iterator[dict[str, np.ndarray]]:
            pending: deque[tuple[int, Future[dict[str, np.ndarray]]]] = deque()

            def take() -> Iterator[dict[str, np.ndarray]]:
                index, fut = pending.popleft()
                try:
                    yield fut.result()
                except DroppedError:
                    result._drop(index)

            for index, item in enumerate(items):
                try:
                    pending.append((index, self.submit(item, timeout=timeout, outputs=outputs)))
                except QueueFullError:
                    if self._policy != "reject":
                        raise  # a "block" queue that stayed full past block_timeout
                    result._drop(index)
                while len(pending) >= limit:
                    yield from take()
            while pending:
                yield from take()

        result._gen = generate()
        return result

    # -- lifecycle and observability ---------------------------------------
    def swap(self, model: Model | str | os.PathLike[str]) -> None:
        """Hot-swap a new model in without losing a request.

        New instances are compiled on the side (the old ones keep serving);
        the new model must keep the input/output contract. In-flight requests
        finish on the old model, whose mapping is freed with its last user.

        Raises:
            InputError: ``model`` is neither a Model nor a path.
            ModelError: the contract differs. CompileError: it does not compile.
        """
        new = as_model(model)
        # The core compiles the new model with the pool's cache path, which
        # must then lead to the new model's cache: another model's cache
        # would silently give the old model's outputs.
        self._weight_cache.swap_to(new, lambda: self._core.swap(new._core))
        self._model = new

    def stats(self) -> dict[str, Any]:
        """Counters, queue depth, busy workers, latency histograms and fallback events.

        Every latency is in microseconds: ``queue_wait`` and ``run_time`` are
        ``{"count", "mean_us", "p50_us", "p90_us", "p99_us", "max_us",
        "buckets", "resolution"}``. Percentiles are read from log-spaced
        buckets (8 per power of two): each is the upper bound of its bucket,
        at most ``resolution`` (2**(1/8) - 1, about 9%) above the true value,
        and never above ``max_us``. ``queue_size`` is the queue's capacity.

        Batching (``max_batch`` > 1): ``batches`` counts runs (a lone request
        included), ``batched_requests`` the requests they held and
        ``mean_batch`` their ratio (0.0 before the first run); ``run_time``
        then counts one sample per run, not per request. Without batching
        ``batches`` and ``batched_requests`` stay 0.
        """
        s = dict(self._core.stats())
        runs = int(s.get("batches", 0))
        s["mean_batch"] = int(s.get("batched_requests", 0)) / runs if runs else 0.0
        for key in ("queue_wait", "run_time"):
            if isinstance(s.get(key), dict):
                s[key] = {**s[key], "resolution": HISTOGRAM_RESOLUTION}
        s["queue_size"] = self._queue_size
        s["threads"] = self._threads
        s["model_sha256"] = self._model.sha256
        s["fallback_events"] = list(self.events)
        s["priority"] = self._priority if self._scheduler is not None else None
        s["oversubscribed"] = self._oversubscribed
        return s

    @property
    def events(self) -> Events:
        """Fallback events (see :mod:`edgepipe.events`), oldest first.

        A weight cache that could not be used is a ``"weight_cache"`` stage
        event (the workers run without it). Also callable, ``pool.events()``,
        as when this was a method.
        """
        return Events(self._policy_events + self._weight_cache.events + list(self._core.events()))

    def close(self, drain: bool = True) -> None:
        """Stop taking requests.

        ``drain=True`` runs what is queued first; ``drain=False`` cancels it
        (futures fail with :class:`~edgepipe.errors.CancelledError`). Safe to
        call twice, from any thread, or from a completion callback.
        """
        _args.boolean("drain", drain)
        self._core.close(drain)
        _live_pools.discard(self)
        scheduler_ledger.release(id(self))

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(drain=True)

    def __repr__(self) -> str:
        batch = f" max_batch={self._max_batch}" if self._max_batch > 1 else ""
        return f"<edgepipe.Pool workers={self._workers}{batch} model={self._model!r}>"
