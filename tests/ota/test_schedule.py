"""UpdateScheduler with a fake clock: backoff with jitter, conditions, background thread."""

from __future__ import annotations

import random
import threading
import time

import pytest
from edgepipe.ota.schedule import UpdateScheduler


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_success_schedules_next_interval():
    clock = FakeClock()
    calls = []
    s = UpdateScheduler(lambda: calls.append(1) or "checked", interval=3600, jitter=0, clock=clock)
    out = s.run_once()
    assert (out.status, out.result, out.next_due) == ("ok", "checked", 4600)
    assert s.run_once().status == "not_due"
    clock.t = 4600
    assert s.run_once().status == "ok" and len(calls) == 2


def test_exponential_backoff_with_cap_and_reset():
    clock = FakeClock()
    fail = [True]

    def check():
        if fail[0]:
            raise ConnectionError("server down")
        return "ok"

    s = UpdateScheduler(
        check, interval=10_000, min_backoff=60, max_backoff=600, jitter=0, clock=clock
    )
    delays = []
    for _ in range(6):
        out = s.run_once()
        assert out.status == "failed" and isinstance(out.error, ConnectionError)
        delays.append(out.next_due - clock.t)
        clock.t = out.next_due
    assert delays == [60, 120, 240, 480, 600, 600]
    assert s.failures == 6
    fail[0] = False
    out = s.run_once()
    assert out.status == "ok" and s.failures == 0 and s.last_error is None


def test_jitter_stays_in_bounds():
    clock = FakeClock()
    s = UpdateScheduler(
        lambda: 1 / 0,
        min_backoff=100,
        max_backoff=100,
        jitter=0.2,
        clock=clock,
        rng=random.Random(1),
    )
    for _ in range(200):
        out = s.run_once(force=True)
        assert 80 <= out.next_due - clock.t <= 120


def test_conditions_defer_without_counting_failures():
    clock = FakeClock()
    state = {"unmetered": False, "charging": True, "idle": True}
    calls = []
    s = UpdateScheduler(
        lambda: calls.append(1),
        clock=clock,
        retry_unmet=300,
        unmetered=lambda: state["unmetered"],
        charging=lambda: state["charging"],
        idle=lambda: state["idle"],
        conditions={"battery_ok": lambda: 1 / 0},
    )
    out = s.run_once()
    assert out.status == "deferred" and set(out.unmet) == {"unmetered", "battery_ok"}
    assert out.next_due == clock.t + 300 and s.failures == 0 and not calls
    s.conditions.pop("battery_ok")
    state["unmetered"] = True
    clock.t += 300
    assert s.run_once().status == "ok" and calls == [1]


def test_invalid_parameters():
    with pytest.raises(ValueError):
        UpdateScheduler(lambda: None, jitter=1.5)
    with pytest.raises(ValueError):
        UpdateScheduler(lambda: None, min_backoff=10, max_backoff=5)


def test_background_thread_runs_and_stops_cleanly():
    ran = threading.Event()
    count = [0]

    def check():
        count[0] += 1
        ran.set()

    s = UpdateScheduler(check, interval=0.01, jitter=0)
    with s:
        assert ran.wait(5)
        time.sleep(0.05)
        assert s.running
    assert not s.running
    after = count[0]
    time.sleep(0.05)
    assert count[0] == after >= 2


def test_background_thread_wakes_promptly_on_stop():
    s = UpdateScheduler(lambda: None, interval=3600)
    s.start()
    t = time.monotonic()
    s.stop()
    assert time.monotonic() - t < 2
    with pytest.raises(RuntimeError):
        s.start()
        s.start()
    s.stop()
