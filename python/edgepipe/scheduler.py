"""Several models on shared hardware: a scheduler with priorities and deadlines.

A :class:`Scheduler` owns the machine's budget: CPU threads (default: the cores
this process may use, from its CPU affinity and its cgroup quota, not
``os.cpu_count()``) and slots per accelerator (default one GPU and one NPU).
Pools join it with ``Pool(model, scheduler=s, priority=P)``; each run of a
worker first takes what its instance needs (its threads, plus one slot of its
accelerator when it runs on one) and gives it back when the run ends.

Who runs next (priority order, a reservation for active higher priorities,
the starvation bound) is documented on :class:`Scheduler`.

Pools created without ``scheduler=`` are not arbitrated (as before), but they
are counted against the process-wide :func:`default_scheduler`'s budget: when
the pools alive ask for more CPU threads than there are, edgepipe logs one
warning, and the pool that crossed the line says so in
``stats()["oversubscribed"]``.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import _core
from .errors import InputError

log = logging.getLogger(__name__)

#: Default accelerator slots: one run at a time per accelerator.
DEFAULT_ACCELERATOR_SLOTS: Mapping[str, int] = {"gpu": 1, "npu": 1}


def _cgroup_cpu_limit() -> float | None:
    """CPUs allowed by the cgroup v2 (``cpu.max``) or v1 (``cfs_quota``) quota, if any."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_v1 = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_v1 = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota_v1 > 0 and period_v1 > 0:
            return quota_v1 / period_v1
    except (OSError, ValueError):
        pass
    return None


def usable_cpus() -> int:
    """Cores this process may use: its CPU affinity, capped by its cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    if limit is not None:
        cores = min(cores, max(1, math.ceil(limit)))
    return max(1, cores)


def _whole(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {value}")
    return value


class Scheduler:
    """The CPU-thread and accelerator budget that pools share by priority.

    Pools join it with ``Pool(model, scheduler=s, priority=P)`` (larger ``P`` is
    more important); each run of a worker first takes what its instance needs
    (its threads, plus one slot of its accelerator when it runs on one) and gives
    it back when the run ends.

    Runs are never pre-empted. Who runs next is decided by three rules
    (implemented in ``cpp/sched/scheduler.h``):

    1. **Order.** The waiting run with the highest *effective priority*,
       ``priority + floor(waited / aging)``, first come first served on ties, is
       served as soon as all it needs is free (and rule 2 lets it); nobody jumps
       ahead of it, so a run needing many threads is not starved by small ones.
    2. **Reservation.** A priority is *active* for ``reserve`` seconds after its
       last request. While a priority ``q`` is active, a run whose effective
       priority is below ``q`` may not take the CPU threads one run of ``q`` needs
       (threads held by priorities ``>= q`` count as that headroom), so a
       camera-rate pool next to a flood finds a thread free instead of waiting for
       a whole low-priority run. The headroom never covers the whole budget: a run
       can always start on an otherwise idle budget (a budget of one run reserves
       nothing). *Borrowing*: the headroom is lent to a lower run that is expected
       to end well before ``q``'s next request is expected: twice the longest of
       its priority's last 8 runs must fit before the earliest time consistent
       with ``q``'s last 9 requests (the oldest of them plus 9 times the shortest
       gap between them, so one late request does not push the expected next
       one later). So a periodic high-priority pool (a camera) leaves its
       headroom to the others for most of each period, while a bursty one keeps
       it. Accelerator slots are not reserved.
    3. **Starvation bound.** A run of priority ``p`` is no longer held back by
       ``q``'s reservation once it has waited ``(q - p) * aging`` seconds, and
       outranks every new request of priority ``<= q`` after ``(q - p + 1) *
       aging``. So with ``q`` the highest priority competing with it, it starts
       within ``(q - p + 1) * aging`` seconds plus the runs in progress: low
       priorities are never starved.

    A request whose ``timeout`` passes while it waits for resources is dropped
    before it runs with :class:`~edgepipe.errors.RequestTimeoutError`.
    ``stats()`` shows the rules at work: ``granted_by_priority``, ``aged`` (runs
    served thanks to aging), ``held_back`` (runs kept out of a higher priority's
    headroom), ``borrowed`` (runs that used it under rule 2) and
    ``reserved_by_priority`` (the active priorities and the threads they keep).

    Args:
        cpu_threads: CPU threads runs may use at once (default :func:`usable_cpus`).
        accelerators: slots per accelerator name (default ``{"gpu": 1, "npu": 1}``);
            runs on an accelerator not named here are not arbitrated for it.
        aging: seconds of waiting that add 1 to a run's priority (default 0.05);
            bounds how long a low priority can wait (rule 3 above).
        reserve: seconds a priority stays active after its last request, keeping
            one run's CPU threads free from lower priorities (default 1.0; 0 turns
            reservation off: a high-priority request may then wait for a whole
            low-priority run).
    """

    def __init__(
        self,
        cpu_threads: int | None = None,
        accelerators: Mapping[str, int] | None = None,
        *,
        aging: float = 0.05,
        reserve: float = 1.0,
    ) -> None:
        threads = usable_cpus() if cpu_threads is None else _whole("cpu_threads", cpu_threads, 1)
        slots = dict(DEFAULT_ACCELERATOR_SLOTS if accelerators is None else accelerators)
        for name, n in slots.items():
            if not isinstance(name, str) or not name:
                raise InputError(f"accelerators keys must be accelerator names, got {name!r}")
            _whole(f"accelerators[{name!r}]", n, 0)
        if (
            isinstance(aging, bool)
            or not isinstance(aging, (int, float))
            or not (math.isfinite(aging) and aging > 0)
        ):
            raise InputError(f"aging must be a positive number of seconds, got {aging!r}")
        if (
            isinstance(reserve, bool)
            or not isinstance(reserve, (int, float))
            or not (math.isfinite(reserve) and reserve >= 0)
        ):
            raise InputError(
                f"reserve must be a number of seconds >= 0 (0 turns it off), got {reserve!r}"
            )
        self._core = _core.Scheduler(threads, slots, float(aging), float(reserve))
        self.cpu_threads = threads
        self.accelerators: dict[str, int] = slots
        self.aging = float(aging)
        self.reserve = float(reserve)

    def check_fits(self, threads: int, accelerator: str = "") -> None:
        """Raise :class:`~edgepipe.errors.InputError` if one run of this shape can never fit."""
        self._core.check_fits(threads, "" if accelerator == "cpu" else accelerator)

    def stats(self) -> dict[str, Any]:
        """Budget, free resources, waiting runs, grants (by priority), expired and aged
        grants, reservations (``held_back``, ``borrowed``, ``reserved_by_priority``)."""
        return dict(self._core.stats())

    def close(self) -> None:
        """Wake every waiting run empty-handed (its request expires); later runs are refused."""
        self._core.close()

    def __repr__(self) -> str:
        return (
            f"Scheduler(cpu_threads={self.cpu_threads}, accelerators={self.accelerators}, "
            f"aging={self.aging}, reserve={self.reserve})"
        )


class _Ledger:
    """CPU threads asked for by live pools that run outside any scheduler."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._claims: dict[int, int] = {}
        # Keys released but not yet removed from _claims. release() runs from
        # a pool's weakref finalizer, that is from whatever code triggers a
        # garbage collection, claim() included: taking the (non-reentrant)
        # lock there deadlocked a process inside claim(). So release() only
        # appends (atomic, no lock) and the lock holder applies the releases.
        self._released: collections.deque[int] = collections.deque()
        self._warned = False

    def _apply_releases(self) -> None:
        # Caller holds self._lock.
        while self._released:
            self._claims.pop(self._released.popleft(), None)

    def claim(self, key: int, threads: int) -> str | None:
        """Record ``threads`` for ``key``; a message when the total now exceeds the cores."""
        with self._lock:
            self._apply_releases()
            self._claims[key] = threads
            total = sum(self._claims.values())
            budget = default_scheduler().cpu_threads
            if total <= budget:
                self._warned = False
                return None
            message = (
                f"pools in this process ask for {total} CPU threads but only {budget} are "
                f"usable; runs will slow each other down. Join them to an edgepipe.Scheduler "
                f"(Pool(..., scheduler=s, priority=P)) or use fewer workers/threads"
            )
            if not self._warned:
                log.warning("%s", message)
                self._warned = True
            return message

    def release(self, key: int) -> None:
        """Forget ``key``'s threads; safe from a finalizer (takes no lock)."""
        self._released.append(key)


_default: Scheduler | None = None
_default_lock = threading.Lock()
ledger = _Ledger()


def default_scheduler() -> Scheduler:
    """The process-wide scheduler (created on first use with the default budget)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Scheduler()
        return _default
