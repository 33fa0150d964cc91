"""Pool behaviour on the real runtime: APIs, queue policies, deadlines, lifecycle, stats.

A worker is made deterministically busy by holding its run inside the test delegate
plugin (see ``Gated``), so no test depends on how fast a model runs. Expected outputs
are computed from the inputs with numpy.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import inspect
import itertools
import os
import pathlib
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import edgepipe
import numpy as np
import pytest
from edgepipe import (
    CancelledError,
    DroppedError,
    InputError,
    Model,
    ModelError,
    Pool,
    PoolClosedError,
    QueueFullError,
    RequestTimeoutError,
)
from edgepipe.models import generator

pytestmark = pytest.mark.timeout(60)


def pair(i: int) -> dict[str, np.ndarray]:
    """Distinct add_mul inputs for request ``i``."""
    a = np.array([[i, i + 0.5, -i, 1.0]], np.float32)
    b = np.array([[2.0, -0.25, i % 7, i * 0.125]], np.float32)
    return {"a": a, "b": b}


def check(out: dict[str, np.ndarray], inputs: dict[str, np.ndarray]) -> None:
    assert list(out) == ["sum", "product"]
    np.testing.assert_array_equal(out["sum"], inputs["a"] + inputs["b"])
    np.testing.assert_array_equal(out["product"], inputs["a"] * inputs["b"])


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(0.002)


def idle(pool: Pool) -> bool:
    s = pool.stats()
    return s["queue_depth"] == 0 and s["busy_workers"] == 0


class Gate:
    """Open/closed file that the test delegate's invoke waits on (its ``gate`` option)."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def close(self) -> None:
        self.path.touch()

    def set(self) -> None:
        """Open the gate (named like ``threading.Event.set``): held runs finish."""
        self.path.unlink(missing_ok=True)


class Gated:
    """Makes add_mul pools whose runs can be held inside a worker.

    The pools run add_mul on the test delegate plugin (real ADD and MUL kernels,
    outputs equal to the CPU's) with ``gate=<file>``: while the file exists every
    run waits inside the worker. A worker is thus held busy deterministically, at
    the point where a real slow inference would hold it.
    """

    def __init__(self, model: Model, plugin: str, gate: Gate) -> None:
        self.model, self.plugin, self.gate = model, plugin, gate

    def __call__(self, **kwargs: Any) -> Pool:
        pool = Pool(
            self.model,
            accelerator=self.plugin,
            plugin_options={"gate": str(self.gate.path)},
            **kwargs,
        )
        assert set(pool.stats()["worker_accelerators"]) == {"plugin:" + self.plugin}
        return pool

    def occupy(self, pool: Pool) -> tuple[Gate, Future[dict[str, np.ndarray]]]:
        """Hold the pool's single worker inside a run until ``gate.set()``."""
        self.gate.close()
        fut = pool.submit(pair(-1))
        wait_for(lambda: pool.stats()["busy_workers"] == 1 and pool.stats()["queue_depth"] == 0)
        return self.gate, fut


@pytest.fixture(scope="module")
def add_mul(generated_models: dict[str, pathlib.Path]) -> Model:
    return Model.load(generated_models["add_mul"])


@pytest.fixture
def gated(add_mul: Model, plugins: dict[str, str], tmp_path: pathlib.Path) -> Iterator[Gated]:
    gate = Gate(tmp_path / "gate")
    yield Gated(add_mul, plugins["good"], gate)
    gate.set()  # never leave a worker held, whatever the test did


@pytest.fixture(scope="module")
def add_both(tmp_path_factory: pytest.TempPathFactory) -> Model:
    """Same contract as add_mul, but ``product`` is a + b: shows which model served."""
    g = generator._GraphBuilder("edgepipe test add_both")
    a = g.tensor("a", [1, 4], np.float32)
    b = g.tensor("b", [1, 4], np.float32)
    s = g.tensor("sum", [1, 4], np.float32)
    p = g.tensor("product", [1, 4], np.float32)
    g.op(generator._OP.ADD, [a, b], [s], generator._OPTS.AddOptions, generator._add_opts())
    g.op(generator._OP.ADD, [a, b], [p], generator._OPTS.AddOptions, generator._add_opts())
    path = tmp_path_factory.mktemp("swap") / "add_both.tflite"
    path.write_bytes(g.finish({"a": a, "b": b}, {"sum": s, "product": p}))
    return Model.load(path)


# -- the request APIs --------------------------------------------------------
def test_run_returns_outputs_of_its_inputs(add_mul: Model) -> None:
    with Pool(add_mul, workers=2) as pool:
        assert [t.name for t in pool.inputs] == ["a", "b"]
        assert [t.name for t in pool.outputs] == ["sum", "product"]
        for i in range(20):
            check(pool.run(pair(i)), pair(i))
        # By position and with argN names too.
        x = pair(3)
        check(pool.run([x["a"], x["b"]]), x)
        check(pool.run({"arg0": x["a"], "arg1": x["b"]}), x)
        check(pool.run(x, timeout=5.0), x)


def test_submit_resolves_futures_and_runs_callbacks_once(add_mul: Model) -> None:
    calls: list[tuple[int, Future[dict[str, np.ndarray]]]] = []
    lock = threading.Lock()

    def cb(i: int) -> Callable[[Future[dict[str, np.ndarray]]], None]:
        def done(f: Future[dict[str, np.ndarray]]) -> None:
            assert f.done()
            with lock:
                calls.append((i, f))

        return done

    with Pool(add_mul, workers=2, queue_size=256) as pool:
        futs = [pool.submit(pair(i), callback=cb(i)) for i in range(200)]
        for i, f in enumerate(futs):
            check(f.result(10), pair(i))
    assert sorted(i for i, _ in calls) == list(range(200))
    assert all(f is futs[i] for i, f in calls)


def test_run_async_from_many_tasks(add_mul: Model) -> None:
    async def main(pool: Pool) -> list[dict[str, np.ndarray]]:
        return await asyncio.gather(*(pool.run_async(pair(i)) for i in range(300)))

    with Pool(add_mul, workers=2) as pool:
        results = asyncio.run(main(pool))
    for i, out in enumerate(results):
        check(out, pair(i))


def test_run_async_waits_for_room_in_a_full_block_queue(add_mul: Model) -> None:
    # Queue of 1: most submits find it full and go through the executor path.
    async def main(pool: Pool) -> list[dict[str, np.ndarray]]:
        return await asyncio.gather(*(pool.run_async(pair(i)) for i in range(60)))

    with Pool(add_mul, workers=1, queue_size=1, policy="block") as pool:
        results = asyncio.run(main(pool))
        wait_for(lambda: idle(pool))
        assert pool.stats()["completed"] == 60
    for i, out in enumerate(results):
        check(out, pair(i))


def test_run_async_reject_policy_raises(gated: Gated) -> None:
    with gated(workers=1, queue_size=1, policy="reject") as pool:
        gate, _ = gated.occupy(pool)
        try:
            queued = pool.submit(pair(1))

            async def main() -> None:
                await pool.run_async(pair(2))

            with pytest.raises(QueueFullError):
                asyncio.run(main())
        finally:
            gate.set()
        check(queued.result(10), pair(1))


def test_map_yields_in_input_order(add_mul: Model) -> None:
    with Pool(add_mul, workers=2) as pool:
        items = [pair(i) for i in range(300)]
        for window in (None, 1, 7):
            outs = list(pool.map(items, window=window))
            assert len(outs) == len(items)
            for out, x in zip(outs, items):
                check(out, x)


def test_map_streams_an_endless_iterable(add_mul: Model) -> None:
    pulled = 0

    def endless() -> Iterator[dict[str, np.ndarray]]:
        nonlocal pulled
        for i in itertools.count():
            pulled += 1
            yield pair(i)

    with Pool(add_mul, workers=2) as pool:
        outs = list(itertools.islice(pool.map(endless(), window=4), 50))
    for i, out in enumerate(outs):
        check(out, pair(i))
    assert pulled <= 50 + 4  # bounded read-ahead


def test_input_errors_are_raised_synchronously(add_mul: Model) -> None:
    with Pool(add_mul) as pool:
        x = pair(0)
        with pytest.raises(InputError, match="input 'b' must be float32, got float64"):
            pool.submit({"a": x["a"], "b": x["b"].astype(np.float64)})
        with pytest.raises(InputError, match=r"must have shape \(1, 4\)"):
            pool.run({"a": np.zeros((2, 4), np.float32), "b": x["b"]})
        with pytest.raises(InputError, match="missing input 'b'"):
            pool.run({"a": x["a"]})
        with pytest.raises(InputError, match="timeout must be >= 0"):
            pool.run(x, timeout=-1)
        assert pool.stats()["submitted"] == 0


def test_constructor_validates_options(add_mul: Model) -> None:
    with pytest.raises(InputError, match="workers must be from 1 to 256, got 0"):
        Pool(add_mul, workers=0)
    with pytest.raises(InputError, match="queue_size must be from 1 to"):
        Pool(add_mul, queue_size=0)
    with pytest.raises(
        InputError, match="policy must be one of block, reject, keep_latest; got 'newest'"
    ):
        Pool(add_mul, policy="newest")


# -- backpressure policies ---------------------------------------------------
def test_reject_policy_raises_queue_full(gated: Gated) -> None:
    with gated(workers=1, queue_size=2, policy="reject") as pool:
        gate, first = gated.occupy(pool)
        queued = [pool.submit(pair(i)) for i in range(2)]
        with pytest.raises(QueueFullError, match=r"queue is full \(2 waiting requests\)"):
            pool.submit(pair(99))
        with pytest.raises(QueueFullError):
            pool.run(pair(98))
        s = pool.stats()
        assert (s["rejected"], s["queue_depth"], s["busy_workers"]) == (2, 2, 1)
        gate.set()
        for i, f in enumerate(queued):
            check(f.result(10), pair(i))
        check(first.result(), pair(-1))
        wait_for(lambda: idle(pool))
        s = pool.stats()
        assert (s["submitted"], s["completed"], s["rejected"]) == (3, 3, 2)


@pytest.mark.parametrize("where", ["constructor", "call"])
def test_block_policy_times_out_with_queue_full(gated: Gated, where: str) -> None:
    kwargs: dict[str, Any] = {"block_timeout": 0.25} if where == "constructor" else {}
    with gated(workers=1, queue_size=1, policy="block", **kwargs) as pool:
        gate, _ = gated.occupy(pool)
        queued = pool.submit(pair(0))
        t0 = time.monotonic()
        with pytest.raises(QueueFullError, match=r"stayed full for 0\.25"):
            if where == "constructor":
                pool.submit(pair(1))
            else:
                pool.submit(pair(1), block_timeout=0.25)
        assert time.monotonic() - t0 >= 0.24
        assert pool.stats()["rejected"] == 1
        gate.set()
        check(queued.result(10), pair(0))


def test_block_policy_waits_for_room(gated: Gated) -> None:
    with gated(workers=1, queue_size=1, policy="block") as pool:
        gate, _ = gated.occupy(pool)
        queued = pool.submit(pair(0))
        got: list[Future[dict[str, np.ndarray]]] = []
        t = threading.Thread(target=lambda: got.append(pool.submit(pair(1))))
        t.start()
        t.join(0.3)
        assert t.is_alive() and not got  # blocked on the full queue
        gate.set()
        t.join(10)
        assert not t.is_alive()
        check(queued.result(10), pair(0))
        check(got[0].result(10), pair(1))


def test_keep_latest_drops_the_oldest(gated: Gated) -> None:
    with gated(workers=1, queue_size=2, policy="keep_latest") as pool:
        gate, _ = gated.occupy(pool)
        futs = [pool.submit(pair(i)) for i in range(5)]
        # The three oldest were dropped as newer ones came, before any ran.
        for f in futs[:3]:
            with pytest.raises(DroppedError, match="dropped for a newer request"):
                f.result(10)
        assert pool.stats()["dropped"] == 3
        gate.set()
        for i in (3, 4):
            check(futs[i].result(10), pair(i))
        wait_for(lambda: idle(pool))
        s = pool.stats()
        assert (s["submitted"], s["completed"], s["dropped"], s["failed"]) == (6, 3, 3, 0)
        assert s["run_time"]["count"] == 3


# -- deadlines ----------------------------------------------------------------
def test_run_timeout_zero_on_busy_pool_never_runs(gated: Gated) -> None:
    with gated(workers=1) as pool:
        gate, _ = gated.occupy(pool)
        with pytest.raises(RequestTimeoutError, match="timed out"):
            pool.run(pair(5), timeout=0)
        assert isinstance(RequestTimeoutError("x"), TimeoutError)
        gate.set()
        wait_for(lambda: idle(pool))
        s = pool.stats()
        # Only the occupying request ran: the timed-out one never did.
        assert (s["submitted"], s["completed"], s["expired"]) == (2, 1, 1)
        assert s["run_time"]["count"] == 1
        check(pool.run(pair(6), timeout=0.5), pair(6))  # an idle pool starts it in time


def test_submit_deadline_expires_in_queue(gated: Gated) -> None:
    with gated(workers=1) as pool:
        gate, _ = gated.occupy(pool)
        expiring = pool.submit(pair(1), timeout=0.05)
        lasting = pool.submit(pair(2), timeout=30)
        time.sleep(0.15)
        gate.set()
        with pytest.raises(RequestTimeoutError, match="deadline passed"):
            expiring.result(10)
        check(lasting.result(10), pair(2))
        wait_for(lambda: idle(pool))
        s = pool.stats()
        assert (s["submitted"], s["completed"], s["expired"]) == (3, 2, 1)


# -- lifecycle -----------------------------------------------------------------
def test_close_drain_completes_queued_work(gated: Gated) -> None:
    pool = gated(workers=1)
    gate, _ = gated.occupy(pool)
    queued = [pool.submit(pair(i)) for i in range(5)]
    closer = threading.Thread(target=pool.close, kwargs={"drain": True})
    closer.start()
    wait_for(lambda: pool.closed)
    with pytest.raises(PoolClosedError, match="closed"):
        pool.submit(pair(9))
    assert closer.is_alive()  # waiting for the queued work
    gate.set()
    closer.join(10)
    assert not closer.is_alive()
    for i, f in enumerate(queued):
        check(f.result(0), pair(i))
    assert pool.stats()["completed"] == 6


def test_close_without_drain_cancels_queued(gated: Gated) -> None:
    pool = gated(workers=1)
    gate, running = gated.occupy(pool)
    queued = [pool.submit(pair(i)) for i in range(4)]
    threading.Timer(0.2, gate.set).start()
    pool.close(drain=False)
    for f in queued:
        with pytest.raises(CancelledError, match="drain=False"):
            f.result(0)
    check(running.result(0), pair(-1))  # a started run completes
    s = pool.stats()
    assert (s["completed"], s["cancelled"], s["queue_depth"]) == (1, 4, 0)
    with pytest.raises(PoolClosedError):
        pool.run(pair(0))
    with pytest.raises(PoolClosedError):
        pool.submit(pair(0))
    pool.close()  # idempotent


def test_close_releases_blocked_submitters(gated: Gated) -> None:
    pool = gated(workers=1, queue_size=1, policy="block")
    gate, _ = gated.occupy(pool)
    pool.submit(pair(0))
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            pool.submit(pair(1))
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=submit)
    t.start()
    t.join(0.2)
    assert t.is_alive()
    threading.Timer(0.2, gate.set).start()
    pool.close(drain=False)
    t.join(10)
    assert len(errors) == 1 and isinstance(errors[0], PoolClosedError)


@pytest.mark.parametrize("drain", [True, False])
def test_close_from_a_completion_callback(gated: Gated, drain: bool) -> None:
    pool = gated(workers=1)
    gate, first = gated.occupy(pool)
    closed = threading.Event()

    def close_me(_: Future[dict[str, np.ndarray]]) -> None:
        pool.close(drain=drain)  # on the pool's delivery thread
        closed.set()

    futs = [pool.submit(pair(i)) for i in range(20)]
    futs.append(pool.submit(pair(20), callback=close_me))
    futs += [pool.submit(pair(i)) for i in range(21, 40)]
    gate.set()
    assert closed.wait(10)
    pool.close()  # joins from here
    cancelled = 0
    for i, f in enumerate(futs):
        exc = f.exception(10)
        if exc is None:
            check(f.result(), pair(i))
        else:
            # Only requests queued after the one whose callback closed the pool,
            # and only without drain; the worker may have run some meanwhile.
            assert not drain and i > 20 and isinstance(exc, CancelledError)
            cancelled += 1
    check(first.result(), pair(-1))
    s = pool.stats()
    assert s["completed"] + s["cancelled"] == 41
    assert s["cancelled"] == cancelled
    if drain:
        assert cancelled == 0


def test_pool_kept_alive_only_by_its_callback(add_mul: Model) -> None:
    # The last reference goes away inside the callback, on the delivery thread.
    done = threading.Event()
    results: list[Future[dict[str, np.ndarray]]] = []
    for _ in range(10):
        done.clear()

        def start() -> None:
            pool = Pool(add_mul, workers=2)

            def cb(f: Future[dict[str, np.ndarray]]) -> None:
                pool.close()
                results.append(f)
                done.set()

            pool.submit(pair(0))
            pool.submit(pair(1), callback=cb)

        start()
        assert done.wait(10)
        gc.collect()
    for f in results:
        check(f.result(), pair(1))


def test_dropping_a_busy_pool_without_close(gated: Gated) -> None:
    pool = gated(workers=1)
    gate, running = gated.occupy(pool)
    queued = [pool.submit(pair(i)) for i in range(3)]
    threading.Timer(0.2, gate.set).start()
    del pool
    gc.collect()  # must not deadlock: destruction joins workers without the GIL
    check(running.result(10), pair(-1))
    for f in queued:  # failed, never silently lost (issue #10)
        with pytest.raises(PoolClosedError, match="destroyed"):
            f.result(10)


def test_close_from_another_thread_while_busy(add_mul: Model) -> None:
    pool = Pool(add_mul, workers=2, queue_size=8)
    stop = threading.Event()
    outcomes: list[str] = []
    lock = threading.Lock()

    def hammer(seed: int) -> None:
        i = seed * 100_000
        while not stop.is_set():
            i += 1
            try:
                check(pool.run(pair(i)), pair(i))
                kind = "ok"
            except PoolClosedError:
                kind = "closed"
            except CancelledError:
                kind = "cancelled"
            with lock:
                outcomes.append(kind)
            if kind != "ok":
                return

    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: len(outcomes) > 200)
    closer = threading.Thread(target=pool.close, kwargs={"drain": False})
    closer.start()
    closer.join(10)
    assert not closer.is_alive()
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    stop.set()
    assert outcomes.count("ok") > 200
    assert outcomes.count("closed") + outcomes.count("cancelled") == 4


def test_context_manager_drains_and_closes(add_mul: Model) -> None:
    with Pool(add_mul, workers=2) as pool:
        futs = [pool.submit(pair(i)) for i in range(50)]
    assert pool.closed
    for i, f in enumerate(futs):
        assert f.done()
        check(f.result(), pair(i))
    with pytest.raises(PoolClosedError):
        pool.run(pair(0))


# -- stats --------------------------------------------------------------------
def test_stats_counts_and_histograms(add_mul: Model) -> None:
    with Pool(add_mul, workers=2, queue_size=16) as pool:
        s = pool.stats()
        assert (s["submitted"], s["completed"], s["queue_depth"], s["busy_workers"]) == (0, 0, 0, 0)
        assert (s["workers"], s["queue_capacity"]) == (2, 16)
        assert s["worker_accelerators"] == ["cpu", "cpu"]
        assert s["worker_runs"] == [0, 0]
        assert s["model_sha256"] == add_mul.sha256
        assert s["run_time"]["count"] == 0

        n = 123
        futs = [pool.submit(pair(i)) for i in range(n)]
        for i in range(n, n + 27):
            check(pool.run(pair(i)), pair(i))
        for i, f in enumerate(futs):
            check(f.result(10), pair(i))
        wait_for(lambda: idle(pool))
        s = pool.stats()
        total = n + 27
        assert (s["submitted"], s["completed"], s["failed"]) == (total, total, 0)
        assert (s["dropped"], s["rejected"], s["expired"], s["cancelled"]) == (0, 0, 0, 0)
        assert len(s["worker_runs"]) == 2 and sum(s["worker_runs"]) == total
        for hist in ("queue_wait", "run_time"):
            h = s[hist]
            assert h["count"] == total
            assert sum(c for _, c in h["buckets"]) == total
            assert 0 <= h["p50_us"] <= h["p90_us"] <= h["p99_us"] <= h["max_us"]
            assert h["mean_us"] <= h["max_us"]
        assert s["run_time"]["p50_us"] > 0


def test_stats_show_queue_depth_and_busy_workers(gated: Gated) -> None:
    with gated(workers=1, queue_size=8) as pool:
        gate, _ = gated.occupy(pool)
        queued = [pool.submit(pair(i)) for i in range(5)]
        s = pool.stats()
        assert (s["busy_workers"], s["queue_depth"]) == (1, 5)
        gate.set()
        for i, f in enumerate(queued):
            check(f.result(10), pair(i))
        wait_for(lambda: idle(pool))
        assert pool.stats()["completed"] == 6


# -- hot swap ----------------------------------------------------------------
def test_swap_keeps_serving(add_mul: Model, add_both: Model) -> None:
    pool = Pool(add_mul, workers=2, queue_size=32)
    stop = threading.Event()
    failures: list[BaseException] = []
    served = {"old": 0, "new": 0}
    lock = threading.Lock()

    def client(seed: int) -> None:
        i = seed * 1_000_000
        while not stop.is_set():
            i += 1
            x = pair(i)
            try:
                out = pool.run(x)
                np.testing.assert_array_equal(out["sum"], x["a"] + x["b"])
                if np.array_equal(out["product"], x["a"] * x["b"]):
                    kind = "old"
                else:
                    np.testing.assert_array_equal(out["product"], x["a"] + x["b"])
                    kind = "new"
                with lock:
                    served[kind] += 1
            except BaseException as exc:
                failures.append(exc)
                return

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        for model in (add_both, add_mul, add_both, add_mul, add_both):
            wait_for(lambda: sum(served.values()) > 50)
            pool.swap(model)
            assert pool.model is model
            assert pool.stats()["model_sha256"] == model.sha256
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not failures, failures[:3]
    assert served["old"] > 0 and served["new"] > 0
    # Requests made after the last swap are served by the new model.
    x = pair(7)
    np.testing.assert_array_equal(pool.run(x)["product"], x["a"] + x["b"])
    assert pool.stats()["swaps"] == 5
    assert pool.stats()["failed"] == 0
    pool.close()


def test_swap_with_a_different_contract_raises(
    add_mul: Model, generated_models: dict[str, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    wider = tmp_path / "add_mul8.tflite"
    wider.write_bytes(generator.build_add_mul(8))
    with Pool(add_mul) as pool:
        with pytest.raises(ModelError, match=r"input 0 is 'a' float32\[1, 8\]"):
            pool.swap(wider)
        with pytest.raises(ModelError, match="has 1 inputs, the serving one 2"):
            pool.swap(generated_models["dynamic_add"])
        assert pool.model is add_mul
        assert pool.stats()["swaps"] == 0
        check(pool.run(pair(1)), pair(1))
    with pytest.raises(PoolClosedError):
        pool.swap(add_mul)


# -- interpreter exit -------------------------------------------------------
_EXIT_SCRIPT = textwrap.dedent(
    """
    import sys, threading
    import numpy as np
    import edgepipe

    model_path, mode = sys.argv[1], sys.argv[2]
    pool = edgepipe.Pool(model_path, workers=2, queue_size=64)
    x = {"a": np.ones((1, 4), np.float32), "b": np.ones((1, 4), np.float32)}
    if mode == "queued":
        futs = [pool.submit(x, callback=lambda f: None) for _ in range(64)]
    elif mode == "threads":
        def loop():
            while True:
                pool.run(x)
        for _ in range(3):
            threading.Thread(target=loop, daemon=True).start()
    elif mode == "gated":
        gate = threading.Event()
        pool.submit(x, callback=lambda f: gate.wait(0.5))
        futs = [pool.submit(x) for _ in range(10)]
    print("started", flush=True)
    """
)


@pytest.mark.parametrize("mode", ["queued", "threads", "gated"])
def test_interpreter_exit_with_a_busy_pool(
    generated_models: dict[str, pathlib.Path], tmp_path: pathlib.Path, mode: str
) -> None:
    script = tmp_path / "exit_busy.py"
    script.write_text(_EXIT_SCRIPT)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    proc = subprocess.run(
        [sys.executable, str(script), str(generated_models["add_mul"]), mode],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "started" in proc.stdout


# -- delivery of futures ------------------------------------------------------------
def test_a_blocked_callback_never_stalls_inference(add_mul: Model) -> None:
    # Futures are resolved on the pool's delivery thread, never on a worker, so a
    # callback that blocks delays later callbacks but not inference.
    release = threading.Event()
    threads: list[int] = []

    def slow(_: Future[dict[str, np.ndarray]]) -> None:
        threads.append(threading.get_ident())
        release.wait(30)

    with Pool(add_mul, workers=1) as pool:
        held = pool.submit(pair(0), callback=slow)
        wait_for(lambda: bool(threads))
        for i in range(1, 50):
            check(pool.run(pair(i)), pair(i))
        later = [
            pool.submit(pair(i), callback=lambda f: threads.append(threading.get_ident()))
            for i in range(50, 60)
        ]
        wait_for(lambda: pool.stats()["completed"] == 60)
        assert not any(f.done() for f in later)  # their delivery waits behind the callback
        release.set()
        check(held.result(10), pair(0))
        for i, f in enumerate(later, start=50):
            check(f.result(10), pair(i))
    # One delivery thread, not the caller's.
    assert len(set(threads)) == 1 and threads[0] != threading.get_ident()
    assert len(threads) == 11


def test_close_from_a_callback_while_another_thread_closes(add_mul: Model) -> None:
    # The main thread's close() joins the delivery thread while a callback on that
    # thread calls close() too: the callback's close must not wait for the first.
    in_callback, main_closing = threading.Event(), threading.Event()

    def close_too(_: Future[dict[str, np.ndarray]]) -> None:
        in_callback.set()
        main_closing.wait(10)
        time.sleep(0.1)  # main is inside close(), joining this thread, by now
        pool.close(drain=True)

    pool = Pool(add_mul, workers=1)
    futs = [pool.submit(pair(0), callback=close_too)] + [pool.submit(pair(i)) for i in range(1, 9)]
    assert in_callback.wait(10)
    main_closing.set()
    pool.close(drain=True)
    for i, f in enumerate(futs):
        check(f.result(10), pair(i))


def _fc_plus_input(seed: int) -> Model:
    """y = FC(x; weights from ``seed``) + x, on [1, 64]: the FC's packed weights go to
    the weight cache, the ADD is what the test delegate claims (and can fail)."""
    rng = np.random.default_rng(seed)
    g = generator._GraphBuilder(f"edgepipe test fc_plus_input seed={seed}")
    x = g.tensor("x", [1, 64], np.float32)
    w = g.tensor("w", [64, 64], np.float32, rng.standard_normal((64, 64)).astype(np.float32))
    h = g.tensor("h", [1, 64], np.float32)
    y = g.tensor("y", [1, 64], np.float32)
    g.op(
        generator._OP.FULLY_CONNECTED,
        [x, w, -1],
        [h],
        generator._OPTS.FullyConnectedOptions,
        generator._fc_opts(),
    )
    g.op(generator._OP.ADD, [h, x], [y], generator._OPTS.AddOptions, generator._add_opts())
    return Model.from_bytes(g.finish({"x": x}, {"y": y}))


def test_retired_run_of_a_swapped_out_model_uses_its_own_weights(
    plugins: dict[str, str], tmp_path: pathlib.Path
) -> None:
    # A request still running on model A while the pool swaps to B fails on its
    # accelerator and is answered by a CPU instance of A compiled on the spot. The
    # pool's weight-cache path leads to B's cache by then; A must not load it.
    a, b = _fc_plus_input(1), _fc_plus_input(2)
    x = {"x": np.linspace(-1, 1, 64, dtype=np.float32).reshape(1, 64)}
    want_a = a.compile("cpu").run(x)["y"]
    assert not np.allclose(want_a, b.compile("cpu").run(x)["y"])
    b.compile("cpu", weight_cache=True).close()  # B's cache is ready for the swap
    invokes = ctypes.c_long()
    counters = ctypes.CDLL(plugins["good"]).ep_test_counters  # the loaded plugin's own

    def invoke_calls() -> int:
        unused = ctypes.c_long()
        counters(
            ctypes.byref(unused), ctypes.byref(unused), ctypes.byref(invokes), ctypes.byref(unused)
        )
        return invokes.value

    gate = Gate(tmp_path / "gate")
    # fail_after=1: the trial run at compile passes, the next run of each instance fails.
    with Pool(
        a,
        workers=1,
        accelerator=plugins["good"],
        weight_cache=True,
        plugin_options={"gate": str(gate.path), "fail_at": "invoke", "fail_after": "1"},
    ) as pool:
        assert pool.stats()["worker_accelerators"] == ["plugin:" + plugins["good"]]
        base = invoke_calls()
        gate.close()
        held = pool.submit(x)
        wait_for(lambda: invoke_calls() == base + 1)  # A's run waits at the gate
        swapper = threading.Thread(target=pool.swap, args=(b,))
        swapper.start()
        wait_for(lambda: invoke_calls() == base + 2)  # so does B's trial run
        gate.set()
        np.testing.assert_allclose(held.result(10)["y"], want_a, rtol=1e-5, atol=1e-5)
        swapper.join(10)
        assert not swapper.is_alive()
        assert any(e["stage"] == "run" for e in pool.events())


def test_a_raising_callback_does_not_stop_deliveries(
    add_mul: Model, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(_: Future[dict[str, np.ndarray]]) -> None:
        raise ZeroDivisionError("callback bug")

    with Pool(add_mul, workers=1) as pool:
        bad = pool.submit(pair(0), callback=boom)
        rest = [pool.submit(pair(i)) for i in range(1, 21)]
        check(bad.result(10), pair(0))
        for i, f in enumerate(rest, start=1):
            check(f.result(10), pair(i))
    # concurrent.futures reports the callback's exception; the delivery thread goes on.
    assert "callback bug" in caplog.text


# -- the API as users expect it (#9.5) ------------------------------------------
def test_map_skips_and_counts_what_keep_latest_drops(gated: Gated) -> None:
    with gated(workers=1, queue_size=1, policy="keep_latest") as pool:
        gate, held = gated.occupy(pool)
        opener = threading.Timer(0.5, gate.set)  # after every item was submitted
        opener.start()
        try:
            it = pool.map((pair(i) for i in range(6)), window=10)
            outs = list(it)  # no DroppedError ends the iteration
        finally:
            opener.join()
        # Each newer item took the single queue slot of the one before it.
        assert it.dropped == 5 and it.dropped_indices == [0, 1, 2, 3, 4]
        assert len(outs) == 1
        check(outs[0], pair(5))
        check(held.result(10), pair(-1))
        assert pool.stats()["dropped"] == 5


def test_map_skips_and_counts_what_reject_refuses(gated: Gated) -> None:
    with gated(workers=1, queue_size=1, policy="reject") as pool:
        gate, _ = gated.occupy(pool)
        opener = threading.Timer(0.5, gate.set)
        opener.start()
        try:
            it = pool.map((pair(i) for i in range(4)), window=10)
            outs = list(it)
        finally:
            opener.join()
        assert it.dropped == 3 and it.dropped_indices == [1, 2, 3]
        assert len(outs) == 1
        check(outs[0], pair(0))


def test_outputs_selects_named_outputs_on_every_path(add_mul: Model) -> None:
    x = pair(3)
    with Pool(add_mul, workers=1) as pool:
        out = pool.run(x, outputs=["product"])
        assert list(out) == ["product"]
        np.testing.assert_array_equal(out["product"], x["a"] * x["b"])
        out = pool.submit(x, outputs=["sum"]).result(10)
        assert list(out) == ["sum"]
        np.testing.assert_array_equal(out["sum"], x["a"] + x["b"])
        assert [list(o) for o in pool.map([x, x], outputs=["product", "sum"])] == [
            ["product", "sum"]
        ] * 2
        assert list(asyncio.run(pool.run_async(x, outputs=["sum"]))) == ["sum"]
        with pytest.raises(InputError, match=r"unknown output name\(s\) \['nope'\]") as err:
            pool.run(x, outputs=["nope"])
        assert "['sum', 'product']" in str(err.value)  # lists the valid ones, not 'nope'
        with pytest.raises(InputError, match="list of output names"):
            pool.run(x, outputs="sum")  # type: ignore[arg-type]


def test_non_contiguous_inputs_match_contiguous_copies_in_a_pool(add_mul: Model) -> None:
    wide = np.arange(16, dtype=np.float32).reshape(2, 8)
    a, b = wide[:1, ::2], wide[1:, ::-2]
    assert not a.flags.c_contiguous and not b.flags.c_contiguous
    with Pool(add_mul, workers=1) as pool:
        got = pool.submit({"a": a, "b": b}).result(10)
        want = pool.run({"a": np.ascontiguousarray(a), "b": np.ascontiguousarray(b)})
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])


def test_submit_copies_inputs(gated: Gated) -> None:
    with gated(workers=1) as pool:
        gate, _ = gated.occupy(pool)
        x = pair(2)
        original = {k: v.copy() for k, v in x.items()}
        fut = pool.submit(x)
        x["a"][...] = 100.0  # the caller reuses its buffer while the request waits
        gate.set()
        check(fut.result(10), original)


def test_cancel_before_start_withdraws_the_request(gated: Gated) -> None:
    with gated(workers=1, queue_size=4) as pool:
        gate, held = gated.occupy(pool)
        ran: list[int] = []
        fut = pool.submit(pair(1), callback=lambda f: ran.append(1))
        keep = pool.submit(pair(2))
        assert fut.cancel() is True
        assert fut.cancelled() and ran == [1]  # done-callbacks run, as for any Future
        assert held.cancel() is False  # started: runs to the end
        gate.set()
        check(keep.result(10), pair(2))
        check(held.result(10), pair(-1))
        wait_for(lambda: idle(pool))
        assert pool.stats()["completed"] == 2  # the withdrawn request never ran


def test_cancel_of_a_started_request_returns_false(gated: Gated) -> None:
    with gated(workers=1) as pool:
        gate, held = gated.occupy(pool)
        assert held.cancel() is False and not held.cancelled()
        gate.set()
        check(held.result(10), pair(-1))


def test_session_and_pool_use_one_name_per_idea(add_mul: Model) -> None:
    session = add_mul.compile("cpu", threads=2)
    with Pool(add_mul, workers=2, threads=2, queue_size=5) as pool:
        assert pool.threads == 2 and pool.queue_size == 5
        s = pool.stats()
        assert s["queue_size"] == 5 and s["threads"] == 2
        # events: a property on both, a list; calling it (the old Pool API) still works.
        # (On a machine with fewer than 4 usable cores this pool oversubscribes it:
        # that is a "scheduler" event, not an accelerator fallback.)
        fallbacks = [e for e in pool.events if e["stage"] != "scheduler"]
        assert session.events == [] and fallbacks == []
        assert pool.events() == list(pool.events)
    with (
        pytest.warns(DeprecationWarning, match="threads="),
        Pool(add_mul, threads_per_worker=3) as pool,
    ):
        assert pool.threads == 3


def test_weight_cache_defaults_to_none_for_session_and_pool() -> None:
    defaults = {
        cls: inspect.signature(cls).parameters["weight_cache"].default
        for cls in (edgepipe.Session, Pool)
    }
    assert defaults == {edgepipe.Session: False, Pool: False}
    assert inspect.signature(Model.compile).parameters["weight_cache"].default is False


def test_stats_percentiles_are_microseconds_with_their_resolution(add_mul: Model) -> None:
    with Pool(add_mul, workers=1) as pool:
        for i in range(20):
            pool.run(pair(i))
        s = pool.stats()
    for key in ("queue_wait", "run_time"):
        h = s[key]
        assert h["resolution"] == pytest.approx(2 ** (1 / 8) - 1)
        assert set(h) >= {"count", "mean_us", "p50_us", "p90_us", "p99_us", "max_us", "buckets"}
        assert h["p50_us"] <= h["p90_us"] <= h["p99_us"] <= h["max_us"]
        # A percentile is its bucket's upper bound: within the resolution of a real bound.
        uppers = [upper for upper, _ in h["buckets"]]
        assert any(h["p50_us"] == pytest.approx(u) for u in [*uppers, h["max_us"]])
