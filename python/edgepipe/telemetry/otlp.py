"""OpenTelemetry (push): OTLP/HTTP protobuf metrics from a :class:`Telemetry` hub.

Needs the ``[otlp]`` extra (``opentelemetry-proto``). Each export builds one
``ExportMetricsServiceRequest`` with cumulative sums and histograms (the
histogram keeps the hub's fixed bounds, see :mod:`edgepipe.telemetry.fields`)
and POSTs it to the collector's ``/v1/metrics``::

    tel = Telemetry(enabled=True)
    tel.watch_pool(pool, name="detector")
    exporter = tel.otlp_exporter("http://127.0.0.1:4318/v1/metrics", interval_s=30)
    exporter.start()  # background pushes; exporter.close() pushes a last time

The request is written with the OpenTelemetry protobuf definitions themselves
rather than the SDK's instruments: edgepipe's histograms are aggregated in
the core already, and OTLP carries them as they are.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import httpx

from .. import __version__
from ..errors import EdgepipeError, InputError
from .fields import BUCKET_BOUNDS_S, field

if TYPE_CHECKING:
    from .model import HistogramData, Snapshot, Telemetry


class ExportError(EdgepipeError):
    """The OTLP collector refused or could not be reached."""


def _require() -> Any:
    try:
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
    except ImportError as exc:
        raise ImportError(
            "the OTLP exporter needs opentelemetry-proto: pip install 'edgepipe[otlp]'"
        ) from exc
    return metrics_service_pb2


def build_request(
    snapshots: list[Snapshot], start_time_unix: float, service_name: str = "edgepipe"
) -> Any:
    """The ``ExportMetricsServiceRequest`` for ``snapshots``."""
    metrics_service_pb2 = _require()
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.metrics.v1 import metrics_pb2
    from opentelemetry.proto.resource.v1 import resource_pb2

    cumulative = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
    start_ns = int(start_time_unix * 1e9)

    def attrs(d: dict[str, str]) -> list[Any]:
        return [
            common_pb2.KeyValue(key=k, value=common_pb2.AnyValue(string_value=v))
            for k, v in d.items()
        ]

    def sum_metric(name: str, unit: str) -> Any:
        f = field(name)
        m = metrics_pb2.Metric(name=name, description=f.description, unit=unit)
        m.sum.aggregation_temporality = cumulative
        m.sum.is_monotonic = True
        return m

    requests = sum_metric("edgepipe_requests", "1")
    fallbacks = sum_metric("edgepipe_fallbacks", "1")
    cache = sum_metric("edgepipe_weight_cache_events", "1")
    latency = metrics_pb2.Metric(
        name="edgepipe_latency_seconds",
        unit="s",
        description=field("edgepipe_latency_seconds").description,
    )
    latency.histogram.aggregation_temporality = cumulative
    queue = metrics_pb2.Metric(
        name="edgepipe_queue_wait_seconds",
        unit="s",
        description=field("edgepipe_queue_wait_seconds").description,
    )
    queue.histogram.aggregation_temporality = cumulative
    workers = metrics_pb2.Metric(
        name="edgepipe_workers", unit="1", description=field("edgepipe_workers").description
    )
    workers.gauge.SetInParent()

    def hist_point(target: Any, labels: dict[str, str], h: HistogramData, t_ns: int) -> None:
        p = target.histogram.data_points.add()
        p.attributes.extend(attrs(labels))
        p.start_time_unix_nano = start_ns
        p.time_unix_nano = t_ns
        p.count = h.count
        p.sum = h.sum_s
        p.explicit_bounds.extend(BUCKET_BOUNDS_S)
        p.bucket_counts.extend(h.counts)

    for s in snapshots:
        labels = s.labels.as_dict()
        t_ns = int(s.time_unix * 1e9)
        for outcome, n in s.requests.items():
            p = requests.sum.data_points.add()
            p.attributes.extend(attrs({**labels, "outcome": outcome}))
            p.start_time_unix_nano, p.time_unix_nano, p.as_int = start_ns, t_ns, int(n)
        for (acc, stage), n in sorted(s.fallbacks.items()):
            p = fallbacks.sum.data_points.add()
            p.attributes.extend(attrs({**labels, "from_accelerator": acc, "stage": stage}))
            p.start_time_unix_nano, p.time_unix_nano, p.as_int = start_ns, t_ns, int(n)
        for event, n in sorted(s.weight_cache.items()):
            p = cache.sum.data_points.add()
            p.attributes.extend(attrs({**labels, "event": event}))
            p.start_time_unix_nano, p.time_unix_nano, p.as_int = start_ns, t_ns, int(n)
        hist_point(latency, labels, s.latency, t_ns)
        if s.queue_wait is not None:
            hist_point(queue, labels, s.queue_wait, t_ns)
        p = workers.gauge.data_points.add()
        p.attributes.extend(attrs(labels))
        p.time_unix_nano, p.as_int = t_ns, int(s.workers)

    req = metrics_service_pb2.ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.CopyFrom(resource_pb2.Resource(attributes=attrs({"service.name": service_name})))
    sm = rm.scope_metrics.add()
    sm.scope.name = "edgepipe"
    sm.scope.version = __version__
    sm.metrics.extend([requests, latency, queue, fallbacks, cache, workers])
    return req


class OtlpExporter:
    """Pushes the hub's snapshots to an OTLP/HTTP collector.

    Args:
        telemetry: the hub (must be enabled).
        endpoint: the collector's metrics URL, e.g. ``http://127.0.0.1:4318/v1/metrics``.
        interval_s: seconds between background pushes (:meth:`start`).
        timeout_s: per-request timeout.
        headers: extra HTTP headers (e.g. an auth token).
    """

    def __init__(
        self,
        telemetry: Telemetry,
        endpoint: str,
        *,
        interval_s: float = 60.0,
        timeout_s: float = 10.0,
        headers: dict[str, str] | None = None,
        service_name: str = "edgepipe",
    ) -> None:
        _require()
        if not endpoint.startswith(("http://", "https://")):
            raise InputError(f"OTLP endpoint must be an http(s) URL, got {endpoint!r}")
        if not interval_s > 0:
            raise InputError(f"interval_s must be positive, got {interval_s}")
        self._telemetry = telemetry
        self._endpoint = endpoint
        self._interval = float(interval_s)
        self._service = service_name
        self._client = httpx.Client(timeout=timeout_s, headers=headers or {})
        self._start = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.exports = 0

    def export(self) -> None:
        """Push once now. Raises :class:`ExportError` when the collector refuses."""
        req = build_request(self._telemetry.snapshots(), self._start, self._service)
        try:
            resp = self._client.post(
                self._endpoint,
                content=req.SerializeToString(),
                headers={"Content-Type": "application/x-protobuf"},
            )
        except httpx.HTTPError as exc:
            raise ExportError(
                f"cannot reach the OTLP collector at {self._endpoint}: {exc}"
            ) from exc
        if resp.status_code >= 300:
            raise ExportError(
                f"the OTLP collector at {self._endpoint} answered "
                f"{resp.status_code}: {resp.text[:200]}"
            )
        self.exports += 1

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.export()
                self.last_error = None
            except ExportError as exc:  # keep pushing; the next one may work
                self.last_error = str(exc)

    def start(self) -> OtlpExporter:
        """Push every ``interval_s`` seconds from a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="edgepipe-otlp", daemon=True)
            self._thread.start()
        return self

    def close(self, *, final_export: bool = True) -> None:
        """Stop the background pushes (pushing a last time) and close the client."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            if final_export:
                self.export()
        finally:
            self._client.close()

    def __enter__(self) -> OtlpExporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(final_export=exc[0] is None)
