"""Observability: pool metrics for Prometheus and fallback events for logging.

``prometheus-client`` is optional (``pip install 'edgepipe[prometheus]'``)::

    from prometheus_client import REGISTRY, start_http_server
    from edgepipe.telemetry import PoolCollector

    REGISTRY.register(PoolCollector(pool, name="detector"))
    start_http_server(9100, addr="127.0.0.1")

Values are read from :meth:`edgepipe.Pool.stats` at scrape time, so the hot
path records nothing in Python.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from .pool import Pool

logger = logging.getLogger("edgepipe")

_COUNTERS = ("submitted", "completed", "failed", "dropped", "rejected", "expired", "cancelled",
             "fallback_runs", "swaps")


def log_events(events: list[dict[str, Any]], *, level: int = logging.WARNING) -> None:
    """Log accelerator fallback events (one line each) on the ``edgepipe`` logger."""
    for e in events:
        logger.log(level, "accelerator fallback %s -> %s at %s: %s",
                   e["from"], e["to"] or "none", e["stage"], e["error"])


class PoolCollector:
    """A ``prometheus_client`` collector for one pool.

    Exposes request counters, queue depth, busy workers, queue-wait and
    run-time histograms, the serving model's sha256 and per-stage fallback
    counts, all labelled with ``pool=<name>``.
    """

    def __init__(self, pool: Pool, name: str = "default") -> None:
        try:
            import prometheus_client  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                "PoolCollector needs prometheus-client: pip install 'edgepipe[prometheus]'"
            ) from exc
        self._pool = pool
        self._name = name

    def collect(self) -> Iterator[Any]:
        """Yield the metric families (called by the registry at scrape time)."""
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
            InfoMetricFamily,
        )

        s = self._pool.stats()
        labels = ["pool"]
        for key in _COUNTERS:
            c = CounterMetricFamily(f"edgepipe_requests_{key}", f"Requests {key}", labels=labels)
            c.add_metric([self._name], float(s[key]))
            yield c
        for key in ("queue_depth", "busy_workers", "workers", "queue_capacity"):
            g = GaugeMetricFamily(f"edgepipe_{key}", key.replace("_", " "), labels=labels)
            g.add_metric([self._name], float(s[key]))
            yield g
        for key in ("queue_wait", "run_time"):
            h = s[key]
            buckets: list[tuple[str, float]] = []
            running = 0
            for upper_us, count in h["buckets"]:
                running += count
                buckets.append((repr(upper_us / 1e6), float(running)))
            buckets.append(("+Inf", float(h["count"])))
            fam = HistogramMetricFamily(
                f"edgepipe_{key}_seconds", f"Per-request {key.replace('_', ' ')}", labels=labels
            )
            fam.add_metric([self._name], buckets, sum_value=h["mean_us"] * h["count"] / 1e6)
            yield fam
        info = InfoMetricFamily("edgepipe_model", "The model serving new requests",
                                labels=labels)
        info.add_metric([self._name], {"sha256": s["model_sha256"],
                                       "accelerators": ",".join(s["worker_accelerators"])})
        yield info
        by_stage: dict[tuple[str, str], int] = {}
        for e in self._pool.events():
            k = (e["from"], e["stage"])
            by_stage[k] = by_stage.get(k, 0) + 1
        fb = CounterMetricFamily("edgepipe_fallbacks", "Accelerator fallbacks",
                                 labels=["pool", "accelerator", "stage"])
        for (acc, stage), n in sorted(by_stage.items()):
            fb.add_metric([self._name, acc, stage], float(n))
        yield fb
