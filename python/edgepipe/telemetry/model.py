"""The one metrics model behind every exporter.

A *source* (a watched :class:`~edgepipe.Pool`, a metered
:class:`~edgepipe.Session`, or anything with a ``snapshot()``; OTA variants
plug in the same way) yields :class:`Snapshot` objects: cumulative request
counts by outcome, a latency histogram, a queue-wait histogram (pools),
fallbacks by stage and weight-cache events, all under one :class:`Labels`.
Exporters turn snapshots into their wire format and nothing else: what is
exported is exactly :data:`edgepipe.telemetry.fields.FIELDS`.
"""

from __future__ import annotations

import math
import os
import platform
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..errors import EdgepipeError, InputError
from .fields import BUCKET_BOUNDS_S, OUTCOMES
from .otlp import OtlpExporter
from .prometheus import TelemetryCollector

_BOUNDS_US = tuple(b * 1e6 for b in BUCKET_BOUNDS_S)
_ENV_SWITCH = "EDGEPIPE_TELEMETRY"


class TelemetryDisabledError(EdgepipeError):
    """Telemetry was used without opting in."""


def device_class() -> str:
    """A coarse, non-identifying class of this machine: ``os/arch/cN/mNg``.

    Cores are bucketed to 1, 2, 4, 8, 16, 32+ and memory to 1, 2, 4, 8, 16,
    32, 64+ GiB, so the value says what kind of device ran a model without
    telling devices apart.
    """
    cores = os.cpu_count() or 1
    core_bucket = next((c for c in (1, 2, 4, 8, 16) if cores <= c), 32)
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        mem_gib = 0.0
    mem_bucket = next((m for m in (1, 2, 4, 8, 16, 32) if mem_gib <= m * 1.05), 64)
    system = platform.system().lower() or "unknown"
    machine = platform.machine().lower() or "unknown"
    return f"{system}/{machine}/c{core_bucket}/m{mem_bucket}g"


def _accelerator_label(name: str) -> str:
    # Plugin names carry a library path: only the kind leaves.
    if name.startswith("plugin:") or name.endswith(".so"):
        return "plugin"
    return name


@dataclass(frozen=True)
class Labels:
    """The labels of one series set (see :data:`fields.LABELS`)."""

    model: str
    model_version: str = ""
    model_sha: str = ""
    accelerator: str = "cpu"
    variant: str = ""
    device_class: str = ""

    def as_dict(self) -> dict[str, str]:
        """Label name → value, in :data:`fields.LABELS` order."""
        return {
            "model": self.model,
            "model_version": self.model_version,
            "model_sha": self.model_sha,
            "accelerator": self.accelerator,
            "variant": self.variant,
            "device_class": self.device_class,
        }


@dataclass
class HistogramData:
    """A cumulative histogram on the fixed bounds of :data:`fields.BUCKET_BOUNDS_S`.

    ``counts[i]`` counts observations in ``(bound[i-1], bound[i]]``; the
    last entry (index ``len(bounds)``) counts those above the last bound.
    """

    counts: list[int] = field(default_factory=lambda: [0] * (len(_BOUNDS_US) + 1))
    sum_s: float = 0.0

    @property
    def count(self) -> int:
        return sum(self.counts)

    def record_us(self, micros: float) -> None:
        """Add one observation of ``micros`` microseconds."""
        self.counts[_bucket_index(micros)] += 1
        self.sum_s += max(micros, 0.0) / 1e6

    def cumulative(self) -> list[int]:
        """Cumulative counts per bound, then the total (the +Inf bucket)."""
        out, running = [], 0
        for c in self.counts:
            running += c
            out.append(running)
        return out

    @classmethod
    def from_core(cls, h: Mapping[str, Any]) -> HistogramData:
        """Re-bucket a core histogram snapshot (``Pool.stats()["run_time"]``)."""
        data = cls()
        for upper_us, n in h.get("buckets", []):
            data.counts[_bucket_index(float(upper_us))] += int(n)
        data.sum_s = float(h.get("mean_us", 0.0)) * int(h.get("count", 0)) / 1e6
        return data


def _bucket_index(micros: float) -> int:
    if not micros > 1.0:
        return 0
    # Bounds are 2^(k/2) µs; the core's are 2^(i/8), so a core bound lands
    # exactly on an export bound or strictly inside one bucket. The epsilon
    # keeps an exact power from rounding up a bucket.
    k = math.ceil(math.log2(micros) * 2 - 1e-9)
    return min(k, len(_BOUNDS_US))


@dataclass
class Snapshot:
    """Everything one source exports at one moment (cumulative values)."""

    labels: Labels
    requests: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    latency: HistogramData = field(default_factory=HistogramData)
    queue_wait: HistogramData | None = None
    fallbacks: dict[tuple[str, str], int] = field(default_factory=dict)
    weight_cache: dict[str, int] = field(default_factory=dict)
    workers: int = 1
    time_unix: float = field(default_factory=time.time)


class Source(Protocol):
    """Anything the exporters can read."""

    def snapshot(self) -> Snapshot | Iterable[Snapshot]: ...


def _event_list(obj: Any) -> list[dict[str, Any]]:
    events = obj.events
    if callable(events):
        events = events()
    return list(events)


def _count_events(
    events: Iterable[Mapping[str, Any]],
) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    fallbacks: dict[tuple[str, str], int] = {}
    cache: dict[str, int] = {}
    for e in events:
        if e.get("stage") == "weight_cache":
            cache["unusable"] = cache.get("unusable", 0) + 1
            continue
        key = (_accelerator_label(str(e.get("from", ""))), str(e.get("stage", "")))
        fallbacks[key] = fallbacks.get(key, 0) + 1
    return fallbacks, cache


def _model_name(model: Any, name: str | None) -> str:
    if name:
        return name
    path = getattr(model, "path", None)
    return Path(str(path)).stem if path else "model"


def _sha12(model: Any) -> str:
    return str(getattr(model, "sha256", "") or "")[:12]


class PoolSource:
    """Reads a pool's own counters and histograms at export time.

    Nothing is recorded in Python on the pool's hot path.
    """

    def __init__(self, pool: Any, labels: Labels) -> None:
        self._pool = pool
        self.labels = labels

    def snapshot(self) -> Snapshot:
        s = self._pool.stats()
        accels = sorted({_accelerator_label(a) for a in s.get("worker_accelerators", [])})
        labels = Labels(
            **{
                **self.labels.as_dict(),
                "accelerator": "+".join(accels) or self.labels.accelerator,
                "model_sha": _sha12(self._pool.model) or self.labels.model_sha,
            }
        )
        fallbacks, cache = _count_events(_event_list(self._pool))
        return Snapshot(
            labels=labels,
            requests={k: int(s.get(k, 0)) for k in OUTCOMES},
            latency=HistogramData.from_core(s["run_time"]),
            queue_wait=HistogramData.from_core(s["queue_wait"]),
            fallbacks=fallbacks,
            weight_cache=cache,
            workers=int(s.get("workers", 1)),
        )


class MeteredSession:
    """A :class:`~edgepipe.Session` whose runs are counted and timed.

    Use it exactly like the session (``run``, attributes pass through); each
    ``run`` adds one observation (about a microsecond of Python) under a lock.
    """

    def __init__(self, session: Any, labels: Labels) -> None:
        self._session = session
        self.labels = labels
        self._lock = threading.Lock()
        self._latency = HistogramData()
        self._requests = dict.fromkeys(OUTCOMES, 0)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            result = self._session.run(*args, **kwargs)
        except Exception:
            with self._lock:
                self._requests["failed"] += 1
            raise
        us = (time.perf_counter() - t0) * 1e6
        with self._lock:
            self._requests["completed"] += 1
            self._latency.record_us(us)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def snapshot(self) -> Snapshot:
        fallbacks, cache = _count_events(_event_list(self._session))
        with self._lock:
            latency = HistogramData(list(self._latency.counts), self._latency.sum_s)
            requests = dict(self._requests)
        return Snapshot(
            labels=self.labels,
            requests=requests,
            latency=latency,
            fallbacks=fallbacks,
            weight_cache=cache,
            workers=1,
        )


class VariantStatsSource:
    """Per-variant OTA statistics (``edgepipe.ota`` ``VariantStats``) as snapshots.

    ``stats.snapshot()`` gives ``{variant: {"requests", "errors", "fallbacks",
    ...}}``; each variant becomes one snapshot labelled ``variant=<name>``
    with its requests split into completed and failed and its fallbacks
    under stage ``"any"``. Its latency percentiles are windowed, not a
    histogram, so latency comes from watching each variant's pool instead
    (:meth:`Telemetry.watch_pool` with ``variant=``).
    """

    def __init__(self, stats: Any, labels: Labels) -> None:
        self._stats = stats
        self.labels = labels

    def snapshot(self) -> list[Snapshot]:
        out = []
        if hasattr(self._stats, "collect"):  # edgepipe.ota VariantStats
            variants = self._stats.collect()["ota_variants"]
        else:
            variants = self._stats.snapshot()
        for variant, d in sorted(variants.items()):
            requests = dict.fromkeys(OUTCOMES, 0)
            errors = int(d.get("errors", 0))
            requests["failed"] = errors
            requests["completed"] = max(int(d.get("requests", 0)) - errors, 0)
            fallbacks = {("any", "any"): int(d["fallbacks"])} if d.get("fallbacks") else {}
            labels = Labels(**{**self.labels.as_dict(), "variant": str(variant)})
            out.append(Snapshot(labels=labels, requests=requests, fallbacks=fallbacks))
        return out


def _enabled_from_env() -> bool:
    return os.environ.get(_ENV_SWITCH, "").strip().lower() in ("1", "true", "yes", "on")


class Telemetry:
    """The opt-in hub: watched sources and the exporters reading them.

    Nothing is collected or exported unless telemetry is enabled, by
    ``Telemetry(enabled=True)`` or ``EDGEPIPE_TELEMETRY=1`` in the
    environment; watching or exporting otherwise raises
    :class:`TelemetryDisabledError`. Only aggregates leave (see
    :mod:`edgepipe.telemetry.fields`); inputs and outputs never do.

    Args:
        enabled: the opt-in switch (None: read ``EDGEPIPE_TELEMETRY``).
        device_class: override the coarse device class label.
    """

    def __init__(self, *, enabled: bool | None = None, device_class: str | None = None) -> None:
        self.enabled = _enabled_from_env() if enabled is None else bool(enabled)
        self._device_class = device_class
        self._sources: list[Source | Callable[[], Iterable[Snapshot]]] = []
        self._lock = threading.Lock()

    def _require_enabled(self) -> None:
        if not self.enabled:
            raise TelemetryDisabledError(
                "telemetry is off: opt in with Telemetry(enabled=True) or "
                f"{_ENV_SWITCH}=1 (only aggregated counts and latencies leave; "
                "see edgepipe.telemetry.fields)"
            )

    @property
    def device_class(self) -> str:
        if self._device_class is None:
            self._device_class = device_class()
        return self._device_class

    def _labels(
        self, model: Any, accelerator: str, name: str | None, version: str, variant: str
    ) -> Labels:
        return Labels(
            model=_model_name(model, name),
            model_version=str(version),
            model_sha=_sha12(model),
            accelerator=_accelerator_label(accelerator),
            variant=str(variant),
            device_class=self.device_class,
        )

    def watch_pool(
        self, pool: Any, *, name: str | None = None, version: str = "", variant: str = ""
    ) -> PoolSource:
        """Export a pool's metrics (read from ``pool.stats()`` at export time)."""
        self._require_enabled()
        src = PoolSource(pool, self._labels(pool.model, "cpu", name, version, variant))
        self.add_source(src)
        return src

    def watch_session(
        self, session: Any, *, name: str | None = None, version: str = "", variant: str = ""
    ) -> MeteredSession:
        """Return a metered wrapper of ``session``; use it in place of the session."""
        self._require_enabled()
        metered = MeteredSession(
            session, self._labels(session.model, session.accelerator, name, version, variant)
        )
        self.add_source(metered)
        return metered

    def watch_variants(
        self, stats: Any, *, model: Any = None, name: str | None = None, version: str = ""
    ) -> VariantStatsSource:
        """Export OTA per-variant statistics (an ``edgepipe.ota`` ``VariantStats``)."""
        self._require_enabled()
        src = VariantStatsSource(stats, self._labels(model, "cpu", name, version, ""))
        self.add_source(src)
        return src

    def add_source(self, source: Source | Callable[[], Iterable[Snapshot]]) -> None:
        """Add anything with ``snapshot()`` (or a callable returning snapshots),
        e.g. per-variant OTA statistics."""
        self._require_enabled()
        if not (callable(source) or hasattr(source, "snapshot")):
            raise InputError("a telemetry source needs a snapshot() method or must be callable")
        with self._lock:
            self._sources.append(source)

    def remove_source(self, source: Any) -> None:
        with self._lock:
            self._sources = [s for s in self._sources if s is not source]

    def snapshots(self) -> list[Snapshot]:
        """Every source's current snapshot (empty when disabled)."""
        if not self.enabled:
            return []
        with self._lock:
            sources = list(self._sources)
        out: list[Snapshot] = []
        for src in sources:
            got = src.snapshot() if hasattr(src, "snapshot") else src()
            if isinstance(got, Snapshot):
                out.append(got)
            else:
                out.extend(got)
        return out

    def prometheus_collector(self) -> Any:
        """A ``prometheus_client`` collector over this hub (extra ``[prometheus]``)."""
        self._require_enabled()
        return TelemetryCollector(self)

    def otlp_exporter(self, endpoint: str, **kwargs: Any) -> Any:
        """An OTLP/HTTP push exporter over this hub (extra ``[otlp]``); see
        :class:`edgepipe.telemetry.otlp.OtlpExporter`."""
        self._require_enabled()
        return OtlpExporter(self, endpoint, **kwargs)
