"""Swapping a new model into a running pool, with a health check and automatic rollback.

The order is: check the new model's input/output contract against the model
the pool serves; compile a session of it on the side and run the golden inputs
(outputs must have the declared names, shapes and dtypes, be finite, and match
expected outputs within tolerance); only then ``pool.swap``. The pool finishes
in-flight requests on the old instances and sends new ones to the new model.
After the swap the pool's failure counter is watched for ``watch_requests``
requests (or ``watch_seconds``); above ``error_rate_threshold`` the old model is
swapped back and, with a store attached, the version is marked bad there.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import EdgepipeError
from .errors import HealthCheckError, UpdateError

log = logging.getLogger(__name__)

Inputs = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class SwapEvent:
    """One step of a swap, kept in :attr:`HotSwapper.history`."""

    time: float
    event: str
    """``health_check_failed``, ``swapped``, ``swap_failed``, ``rolled_back``,
    ``rollback_failed`` or ``accepted``."""
    version: str | None
    detail: str


@dataclass(frozen=True)
class SwapResult:
    """The outcome of :meth:`HotSwapper.swap_to`."""

    ok: bool
    """True if the new model is serving and passed the watch window."""
    rolled_back: bool
    """True if the new model served for a while and was swapped back out."""
    refused: bool
    """True if the new model never served (contract, health check or compile failed)."""
    reason: str
    version: str | None
    previous_version: str | None
    observed_requests: int = 0
    error_rate: float | None = None
    history: tuple[SwapEvent, ...] = field(default=())


class HotSwapper:
    """Health-checked, watched model swaps for an ``edgepipe.Pool``.

    Args:
        pool: the running pool (``model``, ``swap``, ``stats`` are used).
        golden_inputs: one input dict or a sequence of them to run on every
            candidate model before it serves.
        expected_outputs: for each golden input, a dict of expected outputs
            (all or some names); compared with ``rtol``/``atol``.
        error_rate_threshold: failed / finished requests after the swap above
            which the swap is rolled back.
        watch_requests: how many finished requests to watch after the swap.
        watch_seconds: upper bound on the watch; whatever was observed by then
            decides (no traffic at all counts as healthy).
        store: a :class:`~edgepipe.ota.store.ModelStore`; a refused or rolled
            back version is marked bad there so it is never installed again.
        current_version: the version the pool serves now, for the history.
        accelerator: passed to ``model.compile`` for the health check.
        failure_keys: ``pool.stats()`` counters that count as failures.
        success_keys: counters that count as successful completions.
        counters: optional callable returning cumulative ``(succeeded, failed)``
            counts to watch instead of ``pool.stats()``, for errors only the
            application sees (e.g. outputs its own validation rejects).
    """

    def __init__(
        self,
        pool: Any,
        *,
        golden_inputs: Inputs | Sequence[Inputs],
        expected_outputs: Inputs | Sequence[Inputs] | None = None,
        rtol: float = 1e-4,
        atol: float = 1e-5,
        error_rate_threshold: float = 0.05,
        watch_requests: int = 200,
        watch_seconds: float = 30.0,
        store: Any = None,
        current_version: str | None = None,
        accelerator: str = "cpu",
        failure_keys: Sequence[str] = ("failed",),
        success_keys: Sequence[str] = ("completed",),
        counters: Callable[[], tuple[int, int]] | None = None,
        poll_interval: float = 0.005,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.golden_inputs = _as_list(golden_inputs)
        if not self.golden_inputs:
            raise ValueError("at least one golden input is required")
        self.expected_outputs = _as_list(expected_outputs) if expected_outputs is not None else None
        if self.expected_outputs is not None and len(self.expected_outputs) != len(
            self.golden_inputs
        ):
            raise ValueError("expected_outputs must have one entry per golden input")
        self.rtol, self.atol = rtol, atol
        self.error_rate_threshold = error_rate_threshold
        self.watch_requests = watch_requests
        self.watch_seconds = watch_seconds
        self.store = store
        self.current_version = current_version
        self.accelerator = accelerator
        self.failure_keys = tuple(failure_keys)
        self.success_keys = tuple(success_keys)
        self.counters = counters
        self.poll_interval = poll_interval
        self.clock = clock
        self.history: list[SwapEvent] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------- checks

    def check_contract(self, model: Any) -> None:
        """Raise HealthCheckError unless ``model`` has the serving model's inputs/outputs."""
        serving = self.pool.model
        for what in ("inputs", "outputs"):
            old, new = _signature(getattr(serving, what)), _signature(getattr(model, what))
            if old != new:
                raise HealthCheckError(
                    f"{what} differ from the serving model: {_fmt(old)} vs {_fmt(new)}"
                )

    def health_check(self, model: Any) -> None:
        """Compile ``model`` on the side and run the golden inputs through it.

        Raises HealthCheckError with the first problem found.
        """
        self.check_contract(model)
        declared = {t.name: t for t in model.outputs}
        try:
            session = model.compile(accelerator=self.accelerator)
        except EdgepipeError as e:
            raise HealthCheckError(f"compile failed: {e}") from e
        try:
            for i, inputs in enumerate(self.golden_inputs):
                try:
                    outputs = session.run(dict(inputs))
                except EdgepipeError as e:
                    raise HealthCheckError(f"golden input {i}: run failed: {e}") from e
                self._check_outputs(i, outputs, declared)
        finally:
            session.close()

    def _check_outputs(
        self, i: int, outputs: Mapping[str, Any], declared: Mapping[str, Any]
    ) -> None:
        if set(outputs) != set(declared):
            raise HealthCheckError(
                f"golden input {i}: outputs {sorted(outputs)} != declared {sorted(declared)}"
            )
        for name, info in declared.items():
            arr = np.asarray(outputs[name])
            if arr.dtype != np.dtype(info.dtype):
                raise HealthCheckError(
                    f"golden input {i}: output {name!r} dtype {arr.dtype} != {info.dtype}"
                )
            shape = tuple(info.shape)
            if len(shape) != arr.ndim or any(
                d >= 0 and d != a for d, a in zip(shape, arr.shape, strict=True)
            ):
                raise HealthCheckError(
                    f"golden input {i}: output {name!r} shape {arr.shape} != {shape}"
                )
            if np.issubdtype(arr.dtype, np.inexact) and not np.all(np.isfinite(arr)):
                raise HealthCheckError(f"golden input {i}: output {name!r} is not finite")
        if self.expected_outputs is None:
            return
        for name, want in self.expected_outputs[i].items():
            if name not in outputs:
                raise HealthCheckError(f"golden input {i}: no output {name!r} to compare")
            got, want_arr = np.asarray(outputs[name]), np.asarray(want)
            if got.shape != want_arr.shape or not np.allclose(
                got, want_arr, rtol=self.rtol, atol=self.atol
            ):
                err = (
                    float(np.max(np.abs(got.astype(np.float64) - want_arr)))
                    if got.shape == want_arr.shape
                    else float("nan")
                )
                raise HealthCheckError(
                    f"golden input {i}: output {name!r} differs from expected "
                    f"(max abs error {err:.3g}, rtol {self.rtol}, atol {self.atol})"
                )

    # -------------------------------------------------------------- swap

    def swap_to(self, model: Any, version: str | None = None) -> SwapResult:
        """Health-check ``model``, swap it in, watch it, roll back if it misbehaves.

        Blocks for the watch window. Never raises for a bad model: the result
        says what happened and why. Raises UpdateError only if rolling back
        itself fails, which leaves the pool on the new model.
        """
        with self._lock:
            start = len(self.history)
            prev_version = self.current_version
            old_model = self.pool.model
            try:
                self.health_check(model)
            except HealthCheckError as e:
                return self._refuse(f"health check failed: {e}", version, prev_version, start)

            try:
                self.pool.swap(model)
            except EdgepipeError as e:
                return self._refuse(f"swap failed: {e}", version, prev_version, start)
            # Counted from here, not from before the swap: requests the old model
            # answered while the new one compiled say nothing about the new one.
            before = self._counts()
            self._record("swapped", version, f"from {prev_version}")

            observed, failed = self._watch(before)
            rate = failed / observed if observed else 0.0
            if observed and rate > self.error_rate_threshold:
                reason = (
                    f"error rate {rate:.1%} over {observed} requests after the swap "
                    f"exceeds {self.error_rate_threshold:.1%}"
                )
                try:
                    self.pool.swap(old_model)
                except EdgepipeError as e:
                    self._record("rollback_failed", version, f"{reason}; rollback: {e}")
                    raise UpdateError(f"{reason}; rolling back failed: {e}") from e
                self._record("rolled_back", version, reason)
                self._mark_bad(version, reason)
                return SwapResult(
                    False,
                    True,
                    False,
                    reason,
                    version,
                    prev_version,
                    observed,
                    rate,
                    tuple(self.history[start:]),
                )
            # Dropping our reference lets the old model's mapping go once the
            # pool's last in-flight request on it is done.
            del old_model
            self.current_version = version
            detail = f"{failed} failed of {observed} watched requests"
            self._record("accepted", version, detail)
            return SwapResult(
                True,
                False,
                False,
                detail,
                version,
                prev_version,
                observed,
                rate if observed else None,
                tuple(self.history[start:]),
            )

    def swap_to_store(self, *, child_check: bool = True) -> SwapResult | None:
        """Swap to what the attached store serves, if that differs from the pool's version.

        An unproven version is first compiled and run in a child process
        (:func:`~edgepipe.ota.store.check_in_child`), so a model that crashes
        the runtime never runs in this process; it is marked bad instead. An
        accepted swap marks the version healthy in the store. Returns None
        when there is nothing new.
        """
        if self.store is None:
            raise UpdateError("no store attached")
        from edgepipe import Model

        from .store import check_in_child, is_transient

        self.store.refresh_state()
        target = self.store.serving()
        version = target.version.text
        if self.current_version is not None and version == self.current_version:
            return None
        if child_check and target.source != "bundled" and not target.healthy:
            golden = self.golden_inputs[0] if self.golden_inputs else None
            try:
                check_in_child(target, golden=golden, accelerator=self.accelerator)
            except HealthCheckError as e:
                with self._lock:
                    return self._refuse(
                        f"health check failed: {e}",
                        version,
                        self.current_version,
                        len(self.history),
                        sha256=target.sha256,
                    )
        try:
            model = Model.load(str(target.path))
        except EdgepipeError as e:
            if is_transient(e):  # out of memory, a file another process replaced...
                self._record("swap_failed", version, f"transient: {e}")
                return SwapResult(
                    False,
                    False,
                    True,
                    f"transient load failure: {e}",
                    version,
                    self.current_version,
                )
            with self._lock:
                return self._refuse(
                    f"load failed: {e}",
                    version,
                    self.current_version,
                    len(self.history),
                    sha256=target.sha256,
                )
        result = self.swap_to(model, version=version)
        if result.ok and target.source == "current":
            self.store.mark_healthy(version)
        return result

    # --------------------------------------------------------- internals

    def _counts(self) -> tuple[int, int]:
        if self.counters is not None:
            ok, bad = self.counters()
            return int(ok), int(bad)
        s = self.pool.stats()
        ok = sum(int(s.get(k, 0)) for k in self.success_keys)
        bad = sum(int(s.get(k, 0)) for k in self.failure_keys)
        return ok, bad

    def _watch(self, before: tuple[int, int]) -> tuple[int, int]:
        """Poll the pool's counters; return (finished, failed) since ``before``."""
        deadline = self.clock() + self.watch_seconds
        # Failures beyond this many make the threshold unreachable, so stop early.
        fail_limit = self.error_rate_threshold * self.watch_requests
        while True:
            ok, bad = self._counts()
            d_ok, d_bad = ok - before[0], bad - before[1]
            observed = d_ok + d_bad
            if observed >= self.watch_requests or d_bad > fail_limit:
                return observed, d_bad
            if self.clock() >= deadline:
                return observed, d_bad
            time.sleep(self.poll_interval)

    def _refuse(
        self,
        reason: str,
        version: str | None,
        prev: str | None,
        start: int,
        sha256: str | None = None,
    ) -> SwapResult:
        log.warning("refusing model %s: %s", version, reason)
        self._record(
            "health_check_failed" if reason.startswith("health") else "swap_failed", version, reason
        )
        self._mark_bad(version, reason, sha256)
        return SwapResult(
            False, False, True, reason, version, prev, 0, None, tuple(self.history[start:])
        )

    def _mark_bad(self, version: str | None, reason: str, sha256: str | None = None) -> None:
        if self.store is None or version is None:
            return
        try:
            self.store.mark_bad(version, reason, sha256=sha256)
        except UpdateError as e:
            # The pool is already safe; losing the mark only means the store
            # might offer this version again, where the health check refuses it.
            log.error("could not mark version %s bad in the store: %s", version, e)
            self._record("mark_bad_failed", version, str(e))

    def _record(self, event: str, version: str | None, detail: str) -> None:
        self.history.append(SwapEvent(time.time(), event, version, detail))


def _as_list(value: Inputs | Sequence[Inputs]) -> list[Inputs]:
    if isinstance(value, Mapping):
        return [value]
    return list(value)


def _signature(tensors: Any) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    return {t.name: (tuple(int(d) for d in t.shape), np.dtype(t.dtype)) for t in tensors}


def _fmt(sig: Mapping[str, tuple[tuple[int, ...], np.dtype]]) -> str:
    return ", ".join(f"{n}{list(s)}:{d}" for n, (s, d) in sorted(sig.items()))


__all__ = ["HotSwapper", "SwapEvent", "SwapResult"]
