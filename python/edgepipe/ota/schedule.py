"""When to look for updates: a periodic check with backoff, gated by device conditions.

The scheduler knows nothing about manifests; it calls a ``check`` callable
(typically ``lambda: store.update(url)``) when it is due and the caller's
conditions hold (unmetered network, charging, idle: whatever the platform can
tell). Failures back off exponentially with jitter so a fleet of devices does
not hammer a recovering server in lockstep.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Predicate = Callable[[], bool]


@dataclass(frozen=True)
class CheckOutcome:
    """What one :meth:`UpdateScheduler.run_once` call did."""

    status: str
    """``"not_due"``, ``"deferred"`` (a condition is unmet), ``"ok"`` or ``"failed"``."""
    next_due: float
    failures: int
    result: Any = None
    error: BaseException | None = None
    unmet: tuple[str, ...] = field(default=())


class UpdateScheduler:
    """Runs ``check`` every ``interval`` seconds, backing off after failures.

    Args:
        check: called with no arguments; raising counts as a failure.
        interval: seconds between successful checks.
        min_backoff: delay after the first failure; doubles on each further one.
        max_backoff: cap of the failure delay.
        jitter: each delay is multiplied by a random factor in
            ``[1 - jitter, 1 + jitter]``.
        unmetered, charging, idle: optional predicates; a check runs only when
            every given predicate returns True.
        conditions: further named predicates.
        retry_unmet: delay before looking again when a condition is unmet.
        clock: monotonic seconds; injectable for tests.
        rng: random source for jitter; injectable for tests.
        initial_delay: seconds before the first check (0: at once).
    """

    def __init__(
        self,
        check: Callable[[], Any],
        *,
        interval: float = 6 * 3600,
        min_backoff: float = 60.0,
        max_backoff: float = 6 * 3600,
        jitter: float = 0.2,
        unmetered: Predicate | None = None,
        charging: Predicate | None = None,
        idle: Predicate | None = None,
        conditions: Mapping[str, Predicate] | None = None,
        retry_unmet: float = 15 * 60,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        initial_delay: float = 0.0,
    ) -> None:
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if min_backoff <= 0 or max_backoff < min_backoff or interval <= 0:
            raise ValueError("need interval > 0 and 0 < min_backoff <= max_backoff")
        self.check = check
        self.interval = interval
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.jitter = jitter
        self.retry_unmet = retry_unmet
        self.clock = clock
        self.rng = rng or random.Random()
        self.conditions: dict[str, Predicate] = {}
        for cname, pred in (("unmetered", unmetered), ("charging", charging), ("idle", idle)):
            if pred is not None:
                self.conditions[cname] = pred
        self.conditions.update(conditions or {})
        self.failures = 0
        self.last_error: BaseException | None = None
        self.last_outcome: CheckOutcome | None = None
        self.next_due = clock() + initial_delay
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def backoff(self, failures: int) -> float:
        """The delay after ``failures`` consecutive failures, before jitter."""
        return min(self.max_backoff, self.min_backoff * 2.0 ** max(0, failures - 1))

    def _jittered(self, delay: float) -> float:
        return delay * self.rng.uniform(1 - self.jitter, 1 + self.jitter)

    def unmet_conditions(self) -> tuple[str, ...]:
        """Names of the conditions that do not hold right now."""
        unmet = []
        for cname, pred in self.conditions.items():
            try:
                ok = bool(pred())
            except Exception as e:  # caller code: a broken probe means "not now"
                log.warning("update condition %r raised %s; treating it as unmet", cname, e)
                ok = False
            if not ok:
                unmet.append(cname)
        return tuple(unmet)

    def run_once(self, *, force: bool = False) -> CheckOutcome:
        """Check now if due (or ``force``) and conditions hold; reschedule either way."""
        with self._lock:
            now = self.clock()
            if not force and now < self.next_due:
                out = CheckOutcome("not_due", self.next_due, self.failures)
                self.last_outcome = out
                return out
            unmet = self.unmet_conditions()
            if unmet:
                self.next_due = now + self.retry_unmet
                out = CheckOutcome("deferred", self.next_due, self.failures, unmet=unmet)
                self.last_outcome = out
                return out
            try:
                result = self.check()
            except Exception as e:  # any failure of the check means back off
                self.failures += 1
                self.last_error = e
                delay = self._jittered(self.backoff(self.failures))
                self.next_due = self.clock() + delay
                log.warning(
                    "update check failed (%d in a row, next in %.0fs): %s", self.failures, delay, e
                )
                out = CheckOutcome("failed", self.next_due, self.failures, error=e)
                self.last_outcome = out
                return out
            self.failures = 0
            self.last_error = None
            self.next_due = self.clock() + self._jittered(self.interval)
            out = CheckOutcome("ok", self.next_due, 0, result=result)
            self.last_outcome = out
            return out

    # ------------------------------------------------------------ background

    def start(self) -> None:
        """Run checks on a daemon thread until :meth:`stop`."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("scheduler already running")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, name="edgepipe-ota-scheduler", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Ask the thread to stop and wait for it; a check in progress finishes first."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        """True while the background thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            wait = max(0.0, self.next_due - self.clock())
            self._stop.wait(wait)

    def __enter__(self) -> UpdateScheduler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["CheckOutcome", "Predicate", "UpdateScheduler"]
