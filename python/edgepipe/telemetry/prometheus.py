"""Prometheus (pull): a ``prometheus_client`` collector over a :class:`Telemetry` hub.

Needs the ``[prometheus]`` extra. Values are read from the sources at scrape
time::

    from prometheus_client import REGISTRY, start_http_server

    tel = Telemetry(enabled=True)
    tel.watch_pool(pool, name="detector", version="3")
    REGISTRY.register(tel.prometheus_collector())
    start_http_server(9100, addr="127.0.0.1")
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .fields import BUCKET_BOUNDS_S, LABELS, field

if TYPE_CHECKING:
    from .model import Telemetry


def _require() -> None:
    try:
        import prometheus_client  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "the Prometheus exporter needs prometheus-client: pip install 'edgepipe[prometheus]'"
        ) from exc


class TelemetryCollector:
    """Yields the families of :data:`edgepipe.telemetry.fields.FIELDS`."""

    def __init__(self, telemetry: Telemetry) -> None:
        _require()
        self._telemetry = telemetry

    def describe(self) -> list[Any]:
        # Registration must not scrape the sources.
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        base = list(LABELS)
        snaps = self._telemetry.snapshots()
        req = CounterMetricFamily(
            "edgepipe_requests", field("edgepipe_requests").description, labels=[*base, "outcome"]
        )
        lat = HistogramMetricFamily(
            "edgepipe_latency_seconds", field("edgepipe_latency_seconds").description, labels=base
        )
        qw = HistogramMetricFamily(
            "edgepipe_queue_wait_seconds",
            field("edgepipe_queue_wait_seconds").description,
            labels=base,
        )
        fb = CounterMetricFamily(
            "edgepipe_fallbacks",
            field("edgepipe_fallbacks").description,
            labels=[*base, "from_accelerator", "stage"],
        )
        wc = CounterMetricFamily(
            "edgepipe_weight_cache_events",
            field("edgepipe_weight_cache_events").description,
            labels=[*base, "event"],
        )
        wk = GaugeMetricFamily(
            "edgepipe_workers", field("edgepipe_workers").description, labels=base
        )
        for s in snaps:
            values = list(s.labels.as_dict().values())
            for outcome, n in s.requests.items():
                req.add_metric([*values, outcome], float(n))
            lat.add_metric(values, _buckets(s.latency.cumulative()), sum_value=s.latency.sum_s)
            if s.queue_wait is not None:
                qw.add_metric(
                    values, _buckets(s.queue_wait.cumulative()), sum_value=s.queue_wait.sum_s
                )
            for (acc, stage), n in sorted(s.fallbacks.items()):
                fb.add_metric([*values, acc, stage], float(n))
            for event, n in sorted(s.weight_cache.items()):
                wc.add_metric([*values, event], float(n))
            wk.add_metric(values, float(s.workers))
        yield from (req, lat, qw, fb, wc, wk)


def _buckets(cumulative: list[int]) -> list[tuple[str, float]]:
    out = [(repr(b), float(c)) for b, c in zip(BUCKET_BOUNDS_S, cumulative)]
    out.append(("+Inf", float(cumulative[-1])))
    return out
