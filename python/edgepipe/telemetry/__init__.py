"""Observability: one metrics model for sessions, pools and OTA variants, exported on opt-in.

::

    from edgepipe.telemetry import Telemetry

    tel = Telemetry(enabled=True)  # or EDGEPIPE_TELEMETRY=1
    tel.watch_pool(pool, name="detector", version="3", variant="B")
    session = tel.watch_session(edgepipe.Session(model), name="detector")

    # pull: Prometheus                    # push: OpenTelemetry (OTLP/HTTP)
    REGISTRY.register(tel.prometheus_collector())
    tel.otlp_exporter("http://127.0.0.1:4318/v1/metrics").start()

Privacy: only the aggregates listed in :mod:`edgepipe.telemetry.fields`
leave, never inputs, outputs, paths or identifiers; nothing is collected or
exported until telemetry is switched on.
"""

from __future__ import annotations

import logging
from typing import Any

from .fields import BUCKET_BOUNDS_S, FIELDS, HISTOGRAM_RESOLUTION, LABELS, OUTCOMES, Field
from .model import (
    HistogramData,
    Labels,
    MeteredSession,
    PoolSource,
    Snapshot,
    Telemetry,
    TelemetryDisabledError,
    VariantStatsSource,
    device_class,
)

logger = logging.getLogger("edgepipe")

__all__ = [
    "BUCKET_BOUNDS_S",
    "FIELDS",
    "HISTOGRAM_RESOLUTION",
    "LABELS",
    "OUTCOMES",
    "Field",
    "HistogramData",
    "Labels",
    "MeteredSession",
    "PoolCollector",
    "PoolSource",
    "Snapshot",
    "Telemetry",
    "TelemetryDisabledError",
    "VariantStatsSource",
    "device_class",
    "log_events",
]


def log_events(events: list[dict[str, Any]], *, level: int = logging.WARNING) -> None:
    """Log accelerator fallback events (one line each) on the ``edgepipe`` logger."""
    for e in events:
        logger.log(
            level,
            "accelerator fallback %s -> %s at %s: %s",
            e["from"],
            e["to"] or "none",
            e["stage"],
            e["error"],
        )


def PoolCollector(pool: Any, name: str = "default", **labels: str) -> Any:
    """A Prometheus collector for one pool (constructing it is the opt-in).

    Shorthand for ``Telemetry(enabled=True)`` watching ``pool`` under ``name``
    and returning its collector; metric names are those of
    :data:`edgepipe.telemetry.fields.FIELDS`.
    """
    tel = Telemetry(enabled=True)
    tel.watch_pool(pool, name=name, **labels)
    return tel.prometheus_collector()
