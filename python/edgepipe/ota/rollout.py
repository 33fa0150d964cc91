"""A/B variants at run time: offline bucketing, and per-variant statistics fed by the Pool.

Which variant a device installs is decided from the target's
``custom["edgepipe"]["variants"]`` (see :mod:`edgepipe.ota.targets`): the
device id's bucket, ``sha256(experiment, id) mod 10000``, needs no server.
:class:`Experiment` offers the same bucketing for app-level experiments.

:class:`VariantStats` counts, per variant, requests, errors, fallbacks and
latency percentiles (p50/p90/p99 over a bounded window). Wrap the serving pool
with :meth:`VariantStats.observe` and every ``run``/``submit``/``map`` is
recorded; fallbacks come from the pool's public :meth:`~edgepipe.Pool.events`.
:meth:`VariantStats.collect` returns a plain dict for telemetry exporters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

from .targets import BASIS_POINTS, bucket, percent_bp
from .versions import check_name

LATENCY_WINDOW = 4096
log = logging.getLogger(__name__)


class Experiment:
    """Units split into variants by fixed percentages (offline, deterministic).

    Args:
        name: the experiment name (the bucketing salt).
        variants: ``(name, percent)`` pairs or a ``{name: percent}`` mapping;
            percentages have at most two decimals and add up to at most 100.
        remainder: the variant of units not covered; None: not in the experiment.
    """

    def __init__(
        self,
        name: str,
        variants: Sequence[tuple[str, float]] | Mapping[str, float],
        *,
        remainder: str | None = "control",
    ) -> None:
        self.name = name
        items = list(variants.items()) if isinstance(variants, Mapping) else list(variants)
        self._ranges: list[tuple[str, int, int]] = []
        start = 0
        for vname, pct in items:
            check_name(vname, "variant name")
            bp = percent_bp(pct, f"share of {vname!r}")
            self._ranges.append((vname, start, start + bp))
            start += bp
        if start > BASIS_POINTS:
            raise ValueError(f"variant percentages add up to {start / 100}%, above 100%")
        names = [r[0] for r in self._ranges]
        if len(set(names)) != len(names) or remainder in names:
            raise ValueError(f"variant names must be distinct: {names} / {remainder!r}")
        self.remainder = remainder

    def assign(self, unit_id: str) -> str | None:
        """The variant of ``unit_id`` (``remainder`` if it falls outside every share)."""
        b = bucket(self.name, unit_id)
        for vname, lo, hi in self._ranges:
            if lo <= b < hi:
                return vname
        return self.remainder


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


class VariantStats:
    """Thread-safe per-variant counters and latency percentiles."""

    def __init__(self, window: int = LATENCY_WINDOW) -> None:
        self._lock = threading.Lock()
        self._window = window
        self._data: dict[str, dict[str, Any]] = {}
        self._pools: dict[str, tuple[Any, int]] = {}
        self._watched: dict[int, dict[str, Any]] = {}

    def _slot(self, variant: str) -> dict[str, Any]:
        d = self._data.get(variant)
        if d is None:
            d = {"requests": 0, "errors": 0, "fallbacks": 0, "latency": deque(maxlen=self._window)}
            self._data[variant] = d
        return d

    def record(self, variant: str, *, ok: bool = True, latency_s: float | None = None) -> None:
        """Count one request of ``variant``."""
        with self._lock:
            d = self._slot(variant)
            d["requests"] += 1
            if not ok:
                d["errors"] += 1
            if latency_s is not None:
                d["latency"].append(float(latency_s))

    def record_fallbacks(self, variant: str, count: int) -> None:
        """Add ``count`` accelerator fallbacks to ``variant``."""
        with self._lock:
            self._slot(variant)["fallbacks"] += int(count)

    def observe(
        self, pool: Any, variant: str, *, count_past_fallbacks: bool = True
    ) -> ObservedPool:
        """Wrap ``pool`` so that its requests and fallbacks count for ``variant``.

        Fallbacks the pool already recorded (e.g. when it was created) count
        too unless ``count_past_fallbacks`` is False.
        """
        with self._lock:
            self._slot(variant)
            self._pools[variant] = (pool, 0 if count_past_fallbacks else len(pool.events()))
        return ObservedPool(pool, variant, self)

    def watch(self, pool: Any, variant: str) -> None:
        """Feed ``variant`` from ``pool.stats()`` itself, without wrapping the pool.

        Requests and errors are the pool's ``completed``/``failed`` counters,
        latency percentiles come from its ``run_time`` histogram, fallbacks from
        its events, all counted from now on. After a hot swap onto another
        variant, call ``watch(pool, new_variant)`` again: what came before stays
        with the old variant. Use this or :meth:`observe` for a pool, not both.
        """
        with self._lock:
            key = id(pool)
            if key in self._watched:
                self._sync_watched()
            s = pool.stats()
            self._watched[key] = {
                "pool": pool,
                "variant": variant,
                "counts": (int(s.get("completed", 0)), int(s.get("failed", 0))),
                "buckets": _buckets(s),
                "events": len(s.get("fallback_events", ())),
            }
            self._slot(variant)

    def _sync_watched(self) -> None:
        for w in self._watched.values():
            try:
                s = w["pool"].stats()
            except Exception as e:  # a closed pool keeps what it had
                log.debug("stats of the pool of %s unavailable: %s", w["variant"], e)
                continue
            d = self._slot(w["variant"])
            done, failed = int(s.get("completed", 0)), int(s.get("failed", 0))
            d["requests"] += (done - w["counts"][0]) + (failed - w["counts"][1])
            d["errors"] += failed - w["counts"][1]
            w["counts"] = (done, failed)
            now = _buckets(s)
            hist = d.setdefault("histogram", {})
            for bound, count in now.items():
                delta = count - w["buckets"].get(bound, 0)
                if delta > 0:
                    hist[bound] = hist.get(bound, 0) + delta
            w["buckets"] = now
            events = len(s.get("fallback_events", ()))
            d["fallbacks"] += max(0, events - w["events"])
            w["events"] = events

    def _sync_fallbacks(self) -> None:
        for variant, (pool, seen) in list(self._pools.items()):
            try:
                now = len(pool.events())
            except Exception as e:  # a closed pool keeps its last count
                log.debug("fallback count of %s unavailable: %s", variant, e)
                continue
            if now > seen:
                self._slot(variant)["fallbacks"] += now - seen
                self._pools[variant] = (pool, now)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Variant → requests, errors, error_rate, fallbacks, latency p50/p90/p99 (seconds)."""
        with self._lock:
            self._sync_fallbacks()
            self._sync_watched()
            out = {}
            for name, d in self._data.items():
                lat = sorted(d["latency"])
                hist = d.get("histogram") or {}
                if not lat and hist:
                    out[name] = _from_histogram(d, hist)
                    continue
                out[name] = {
                    "requests": d["requests"],
                    "errors": d["errors"],
                    "error_rate": d["errors"] / d["requests"] if d["requests"] else 0.0,
                    "fallbacks": d["fallbacks"],
                    "latency_p50_s": _percentile(lat, 0.50),
                    "latency_p90_s": _percentile(lat, 0.90),
                    "latency_p99_s": _percentile(lat, 0.99),
                    "latency_samples": len(lat),
                }
            return out

    def collect(self, **labels: str) -> dict[str, Any]:
        """A plain dict for telemetry: ``{"ota_variants": {variant: {...}}, "labels": {...}}``."""
        return {"ota_variants": self.snapshot(), "labels": dict(labels)}

    def reset(self) -> None:
        """Forget all counts (observed pools stay attached)."""
        with self._lock:
            self._data.clear()
            for v, (pool, _seen) in list(self._pools.items()):
                self._pools[v] = (pool, len(pool.events()))
                self._slot(v)


def _buckets(stats: Any) -> dict[float, int]:
    run_time = stats.get("run_time") or {}
    return {float(b): int(c) for b, c in run_time.get("buckets", ())}


def _from_histogram(d: dict[str, Any], hist: dict[float, int]) -> dict[str, Any]:
    """Counters plus percentiles (upper bucket bounds, µs → s) of a watched pool."""
    total = sum(hist.values())
    bounds = sorted(hist)

    def pct(q: float) -> float | None:
        if not total:
            return None
        seen = 0
        for b in bounds:
            seen += hist[b]
            if seen >= q * total:
                return b / 1e6
        return bounds[-1] / 1e6

    return {
        "requests": d["requests"],
        "errors": d["errors"],
        "error_rate": d["errors"] / d["requests"] if d["requests"] else 0.0,
        "fallbacks": d["fallbacks"],
        "latency_p50_s": pct(0.50),
        "latency_p90_s": pct(0.90),
        "latency_p99_s": pct(0.99),
        "latency_samples": total,
    }


class ObservedPool:
    """A pool whose requests are recorded in a :class:`VariantStats` under one variant.

    Everything not overridden is forwarded to the pool (``swap``, ``stats``,
    ``close``, ...).
    """

    def __init__(
        self,
        pool: Any,
        variant: str,
        stats: VariantStats,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.pool = pool
        self.variant = variant
        self.stats = stats
        self._clock = clock

    def run(self, inputs: Any, **kw: Any) -> dict[str, Any]:
        t0 = self._clock()
        try:
            out = self.pool.run(inputs, **kw)
        except Exception:
            self.stats.record(self.variant, ok=False, latency_s=self._clock() - t0)
            raise
        self.stats.record(self.variant, ok=True, latency_s=self._clock() - t0)
        return out  # type: ignore[no-any-return]

    def submit(self, inputs: Any, **kw: Any) -> Future[Any]:
        t0 = self._clock()
        user_cb = kw.pop("callback", None)

        def done(f: Future[Any]) -> None:
            self.stats.record(self.variant, ok=f.exception() is None, latency_s=self._clock() - t0)
            if user_cb is not None:
                user_cb(f)

        return self.pool.submit(inputs, callback=done, **kw)  # type: ignore[no-any-return]

    def map(self, items: Iterable[Any], **kw: Any) -> Iterator[dict[str, Any]]:
        for item in items:
            yield self.run(item, **{k: v for k, v in kw.items() if k == "timeout"})

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pool, name)

    def __enter__(self) -> ObservedPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.close()


__all__ = ["Experiment", "ObservedPool", "VariantStats", "bucket"]
