"""Pool stress: >= 100k requests from threads and asyncio, and flat RSS over create/close.

Every request carries distinct inputs (its index is encoded in them), so a result
delivered to the wrong future, twice, or never is caught.
"""

from __future__ import annotations

import asyncio
import gc
import pathlib
import threading
from concurrent.futures import Future

import numpy as np
import pytest
from edgepipe import Model, Pool

THREAD_REQUESTS = 8 * 7_000  # 8 threads: run() and submit() mixed
ASYNC_REQUESTS = 2 * 25_000  # 2 event loops in their own threads
BATCH = 250


def inputs_for(i: int) -> tuple[np.ndarray, np.ndarray]:
    # Exact in float32 for every i used here (< 2**24 / 4).
    a = np.array([[i, i + 1, -i, 0.5]], np.float32)
    b = np.array([[3.0, 0.25, i % 1000, 2.0]], np.float32)
    return a, b


def verify(i: int, out: dict[str, np.ndarray]) -> None:
    a, b = inputs_for(i)
    if not (np.array_equal(out["sum"], a + b) and np.array_equal(out["product"], a * b)):
        raise AssertionError(f"request {i} got someone else's answer: {out}")


@pytest.fixture(scope="module")
def add_mul(generated_models: dict[str, pathlib.Path]) -> Model:
    return Model.load(generated_models["add_mul"])


@pytest.mark.timeout(180)
def test_100k_requests_each_resolve_once_with_their_own_answer(add_mul: Model) -> None:
    pools = [Pool(add_mul, workers=2, queue_size=512) for _ in range(2)]
    resolutions = np.zeros(THREAD_REQUESTS + ASYNC_REQUESTS, np.int32)
    count_lock = threading.Lock()
    errors: list[BaseException] = []

    def record(i: int) -> None:
        with count_lock:
            resolutions[i] += 1

    def thread_client(k: int) -> None:
        pool = pools[k % len(pools)]
        per = THREAD_REQUESTS // 8
        base = k * per
        try:
            i = base
            while i < base + per:
                if (i // BATCH) % 2 == 0:
                    # A batch of submits, each with a callback counting resolutions.
                    futs: list[tuple[int, Future[dict[str, np.ndarray]]]] = []
                    for j in range(i, min(i + BATCH, base + per)):
                        a, b = inputs_for(j)
                        futs.append(
                            (j, pool.submit({"a": a, "b": b}, callback=lambda f, j=j: record(j)))
                        )
                    for j, f in futs:
                        verify(j, f.result(60))
                else:
                    for j in range(i, min(i + BATCH, base + per)):
                        a, b = inputs_for(j)
                        verify(j, pool.run([a, b]))
                        record(j)
                i += BATCH
        except BaseException as exc:
            errors.append(exc)

    def async_client(k: int) -> None:
        pool = pools[k % len(pools)]
        per = ASYNC_REQUESTS // 2
        base = THREAD_REQUESTS + k * per

        async def one(j: int) -> None:
            a, b = inputs_for(j)
            verify(j, await pool.run_async({"a": a, "b": b}))
            record(j)

        async def main() -> None:
            for start in range(base, base + per, BATCH):
                await asyncio.gather(*(one(j) for j in range(start, start + BATCH)))

        try:
            asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=thread_client, args=(k,)) for k in range(8)]
    threads += [threading.Thread(target=async_client, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(170)
    assert not any(t.is_alive() for t in threads), "clients did not finish"
    assert not errors, errors[:3]
    total = THREAD_REQUESTS + ASYNC_REQUESTS
    assert total >= 100_000
    # Every request resolved exactly once (a second resolution would count twice;
    # a future resolved twice would also raise InvalidStateError in the worker).
    assert int(resolutions.min()) == 1 and int(resolutions.max()) == 1
    completed = 0
    for pool in pools:
        pool.close()
        s = pool.stats()
        assert s["submitted"] == s["completed"]
        assert (s["failed"], s["dropped"], s["expired"], s["cancelled"]) == (0, 0, 0, 0)
        assert s["callback_errors"] == 0
        assert s["run_time"]["count"] == s["completed"]
        completed += s["completed"]
    assert completed == total


def _rss_kb() -> int:
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value
    return int(fields["RssAnon"].split()[0])


@pytest.mark.timeout(120)
def test_rss_flat_across_create_close_cycles(
    add_mul: Model, generated_models: dict[str, pathlib.Path]
) -> None:
    a, b = inputs_for(1)

    def cycle(n: int) -> None:
        # Load the model anew too: the mapping and compiled instances must go.
        model = Model.load(generated_models["add_mul"])
        pool = Pool(model, workers=2, queue_size=64)
        futs = [pool.submit({"a": a, "b": b}) for _ in range(50)]
        verify(1, pool.run([a, b]))
        for f in futs:
            verify(1, f.result(10))
        if n % 2:
            pool.close(drain=n % 4 == 1)
        else:
            with pool:
                pass
        del pool, model, futs

    for n in range(5):  # warm-up: allocator pools, runtime caches
        cycle(n)
    gc.collect()
    before = _rss_kb()
    for n in range(30):
        cycle(n)
    gc.collect()
    growth_kb = _rss_kb() - before
    assert growth_kb < 8 * 1024, f"RssAnon grew {growth_kb} kB over 30 create/close cycles"
