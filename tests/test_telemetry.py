"""Telemetry read back through the real client libraries.

Prometheus: the text exposition is parsed with ``prometheus_client.parser``.
OTLP: a collector stand-in on 127.0.0.1 receives OTLP/HTTP protobuf and
decodes it with ``opentelemetry-proto``.
"""

from __future__ import annotations

import http.server
import logging
import threading
from typing import ClassVar

import edgepipe
import numpy as np
import pytest
from edgepipe.telemetry import (
    BUCKET_BOUNDS_S,
    FIELDS,
    LABELS,
    HistogramData,
    PoolCollector,
    Telemetry,
    TelemetryDisabledError,
    log_events,
)

EXPORTED = {f.name for f in FIELDS}


def _inputs(infos):
    return {t.name: np.full(t.shape, 0.3141592, t.dtype) for t in infos}


def _families(registry):
    prometheus_client = pytest.importorskip("prometheus_client")
    from prometheus_client.parser import text_string_to_metric_families

    text = prometheus_client.generate_latest(registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}, text


def _value(fams, family, sample, **labels):
    hits = [
        s.value
        for s in fams[family].samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(hits) == 1, f"{sample} {labels}: {hits}"
    return hits[0]


def test_off_unless_opted_in(monkeypatch, generated_models):
    monkeypatch.delenv("EDGEPIPE_TELEMETRY", raising=False)
    tel = Telemetry()
    assert not tel.enabled
    with (
        edgepipe.Pool(generated_models["add_mul"], workers=1) as pool,
        pytest.raises(TelemetryDisabledError, match="opt in"),
    ):
        tel.watch_pool(pool)
    with pytest.raises(TelemetryDisabledError):
        tel.prometheus_collector()
    assert tel.snapshots() == []
    monkeypatch.setenv("EDGEPIPE_TELEMETRY", "1")
    assert Telemetry().enabled


def test_prometheus_pool_and_session_series(generated_models):
    prometheus_client = pytest.importorskip("prometheus_client")
    model = edgepipe.Model.load(generated_models["add_mul"])
    tel = Telemetry(enabled=True, device_class="linux/x86_64/c2/m8g")
    registry = prometheus_client.CollectorRegistry()
    registry.register(tel.prometheus_collector())
    with edgepipe.Pool(model, workers=2) as pool:
        tel.watch_pool(pool, name="adder", version="7", variant="B")
        session = tel.watch_session(edgepipe.Session(model), name="adder-s")
        x = _inputs(pool.inputs)
        for _ in range(12):
            pool.run(x)
        for _ in range(5):
            out = session.run(x)  # the metered session still returns the outputs
        np.testing.assert_allclose(out["sum"], x["a"] + x["b"])
        with pytest.raises(edgepipe.InputError):
            session.run({"a": x["a"]})
        fams, text = _families(registry)

    pool_labels = {
        "model": "adder",
        "model_version": "7",
        "variant": "B",
        "accelerator": "cpu",
        "model_sha": model.sha256[:12],
        "device_class": "linux/x86_64/c2/m8g",
    }
    assert (
        _value(
            fams, "edgepipe_requests", "edgepipe_requests_total", outcome="completed", **pool_labels
        )
        == 12
    )
    assert (
        _value(fams, "edgepipe_latency_seconds", "edgepipe_latency_seconds_count", **pool_labels)
        == 12
    )
    assert (
        _value(
            fams,
            "edgepipe_latency_seconds",
            "edgepipe_latency_seconds_bucket",
            le="+Inf",
            **pool_labels,
        )
        == 12
    )
    assert (
        _value(fams, "edgepipe_latency_seconds", "edgepipe_latency_seconds_sum", **pool_labels) > 0
    )
    assert (
        _value(
            fams, "edgepipe_queue_wait_seconds", "edgepipe_queue_wait_seconds_count", **pool_labels
        )
        == 12
    )
    assert _value(fams, "edgepipe_workers", "edgepipe_workers", **pool_labels) == 2
    assert (
        _value(
            fams,
            "edgepipe_requests",
            "edgepipe_requests_total",
            model="adder-s",
            outcome="completed",
        )
        == 5
    )
    assert (
        _value(
            fams, "edgepipe_requests", "edgepipe_requests_total", model="adder-s", outcome="failed"
        )
        == 1
    )
    assert (
        _value(fams, "edgepipe_latency_seconds", "edgepipe_latency_seconds_count", model="adder-s")
        == 5
    )
    # Cumulative buckets are monotonic and end at the count.
    buckets = [
        s
        for s in fams["edgepipe_latency_seconds"].samples
        if s.name.endswith("_bucket") and s.labels["model"] == "adder-s"
    ]
    values = [s.value for s in buckets]
    assert values == sorted(values) and values[-1] == 5
    assert len(buckets) == len(BUCKET_BOUNDS_S) + 1
    # The privacy contract: exactly the documented families and labels.
    assert set(fams) == EXPORTED
    for fam in fams.values():
        for s in fam.samples:
            extra = (
                set(s.labels)
                - set(LABELS)
                - {"le", "outcome", "from_accelerator", "stage", "event"}
            )
            assert not extra, (s.name, extra)
    assert "0.314159" not in text and "3.14159" not in text  # no input values anywhere


def test_fallbacks_are_counted_by_stage(generated_models):
    pytest.importorskip("prometheus_client")
    import prometheus_client

    tel = Telemetry(enabled=True)
    registry = prometheus_client.CollectorRegistry()
    registry.register(tel.prometheus_collector())
    # The GPU fails here ("No adapters found" or no library): a real fallback.
    session = tel.watch_session(
        edgepipe.Session(generated_models["add_mul"], accelerator=["gpu", "cpu"]), name="fb"
    )
    assert session.accelerator == "cpu"
    stages = {e["stage"] for e in session.events if e["from"] == "gpu"}
    assert stages
    fams, _ = _families(registry)
    for stage in stages:
        assert (
            _value(
                fams,
                "edgepipe_fallbacks",
                "edgepipe_fallbacks_total",
                from_accelerator="gpu",
                stage=stage,
            )
            >= 1
        )


def test_histogram_rebucketing_is_exact():
    # A core snapshot with buckets at 2^(i/8) µs: every count lands in the
    # first export bound (2^(k/2) µs) at or above it.
    core = {
        "count": 4,
        "mean_us": 100.0,
        "buckets": [(2 ** (4 / 8), 1), (2 ** (5 / 8), 1), (2 ** (53 / 8), 2)],
    }
    h = HistogramData.from_core(core)
    assert h.counts[1] == 1 and h.counts[2] == 1 and h.counts[14] == 2
    assert h.count == 4 and h.sum_s == pytest.approx(4e-4)
    direct = HistogramData()
    for us in (1.2, 1.5, 95.0, 96.0):
        direct.record_us(us)
    assert direct.counts[1] == 1 and direct.counts[2] == 1 and direct.counts[14] == 2


class _Collector(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def otlp_collector():
    _Collector.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/metrics", _Collector.received
    server.shutdown()
    server.server_close()


def test_otlp_push_decoded_by_opentelemetry_proto(generated_models, otlp_collector):
    pytest.importorskip("opentelemetry.proto")
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    url, received = otlp_collector
    tel = Telemetry(enabled=True)
    model = edgepipe.Model.load(generated_models["add_mul"])
    with edgepipe.Pool(model, workers=1) as pool:
        tel.watch_pool(pool, name="adder", version="2", variant="A")
        x = _inputs(pool.inputs)
        for _ in range(9):
            pool.run(x)
        exporter = tel.otlp_exporter(url, interval_s=0.05).start()
        exporter.close()  # background pushes stop; one last push
    assert exporter.exports >= 1
    path, ctype, body = received[-1]
    assert path == "/v1/metrics" and ctype == "application/x-protobuf"
    req = ExportMetricsServiceRequest()
    req.ParseFromString(body)
    metrics = {
        m.name: m for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }
    assert set(metrics) == EXPORTED

    def attrs(point):
        return {kv.key: kv.value.string_value for kv in point.attributes}

    completed = [
        p
        for p in metrics["edgepipe_requests"].sum.data_points
        if attrs(p)["outcome"] == "completed"
    ]
    assert len(completed) == 1 and completed[0].as_int == 9
    assert attrs(completed[0])["model"] == "adder"
    assert attrs(completed[0])["model_version"] == "2"
    assert attrs(completed[0])["variant"] == "A"
    assert attrs(completed[0])["model_sha"] == model.sha256[:12]
    hist = metrics["edgepipe_latency_seconds"].histogram
    assert hist.aggregation_temporality == 2  # cumulative
    point = hist.data_points[0]
    assert point.count == 9 and sum(point.bucket_counts) == 9 and point.sum > 0
    assert list(point.explicit_bounds) == pytest.approx(BUCKET_BOUNDS_S)
    for m in metrics.values():
        for p in m.sum.data_points or m.histogram.data_points or m.gauge.data_points:
            assert set(attrs(p)) <= set(LABELS) | {"outcome", "from_accelerator", "stage", "event"}


def test_otlp_refused_export_is_a_typed_error(otlp_collector):
    pytest.importorskip("opentelemetry.proto")
    from edgepipe.telemetry.otlp import ExportError

    tel = Telemetry(enabled=True)
    exporter = tel.otlp_exporter("http://127.0.0.1:9/v1/metrics", timeout_s=2)
    with pytest.raises(ExportError, match="cannot reach"):
        exporter.export()
    exporter.close(final_export=False)
    with pytest.raises(edgepipe.InputError):
        tel.otlp_exporter("ftp://127.0.0.1/x")


def test_variant_stats_plug_in(generated_models):
    prometheus_client = pytest.importorskip("prometheus_client")

    class Stats:  # the shape of edgepipe.ota VariantStats.snapshot()
        def snapshot(self):
            return {
                "A": {"requests": 10, "errors": 1, "fallbacks": 2},
                "B": {"requests": 4, "errors": 0, "fallbacks": 0},
            }

    tel = Telemetry(enabled=True)
    tel.watch_variants(Stats(), model=edgepipe.Model.load(generated_models["add_mul"]), name="exp")
    registry = prometheus_client.CollectorRegistry()
    registry.register(tel.prometheus_collector())
    fams, _ = _families(registry)
    assert (
        _value(
            fams, "edgepipe_requests", "edgepipe_requests_total", variant="A", outcome="completed"
        )
        == 9
    )
    assert (
        _value(fams, "edgepipe_requests", "edgepipe_requests_total", variant="A", outcome="failed")
        == 1
    )
    assert (
        _value(
            fams, "edgepipe_requests", "edgepipe_requests_total", variant="B", outcome="completed"
        )
        == 4
    )


def test_pool_collector_shorthand(generated_models):
    prometheus_client = pytest.importorskip("prometheus_client")
    registry = prometheus_client.CollectorRegistry()
    with edgepipe.Pool(generated_models["add_mul"], workers=1) as pool:
        registry.register(PoolCollector(pool, name="t"))
        pool.run(_inputs(pool.inputs))
        fams, _ = _families(registry)
    assert (
        _value(fams, "edgepipe_requests", "edgepipe_requests_total", model="t", outcome="completed")
        == 1
    )


def test_fallback_events_are_logged(caplog):
    events = [
        {"from": "gpu", "to": "cpu", "stage": "compile", "error": "No adapters found", "time": 0.0}
    ]
    with caplog.at_level(logging.WARNING, logger="edgepipe"):
        log_events(events)
    assert "gpu -> cpu at compile: No adapters found" in caplog.text
