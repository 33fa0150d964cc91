"""Pool metrics as Prometheus sees them, and fallback events in logs."""

from __future__ import annotations

import logging

import edgepipe
import numpy as np
import pytest
from edgepipe.telemetry import PoolCollector, log_events


def _sample(registry, name, **labels):
    value = registry.get_sample_value(name, labels)
    assert value is not None, f"{name} {labels} missing"
    return value


def test_collector_reports_counts_and_histograms(generated_models):
    prometheus_client = pytest.importorskip("prometheus_client")
    registry = prometheus_client.CollectorRegistry()
    with edgepipe.Pool(generated_models["add_mul"], workers=2) as pool:
        registry.register(PoolCollector(pool, name="t"))
        a = np.ones((1, 4), np.float32)
        for i in range(25):
            out = pool.run({"a": a * i, "b": a})
            np.testing.assert_array_equal(out["sum"], a * i + a)
        assert _sample(registry, "edgepipe_requests_completed_total", pool="t") == 25
        assert _sample(registry, "edgepipe_requests_submitted_total", pool="t") == 25
        assert _sample(registry, "edgepipe_workers", pool="t") == 2
        assert _sample(registry, "edgepipe_run_time_seconds_count", pool="t") == 25
        assert _sample(registry, "edgepipe_run_time_seconds_bucket", pool="t", le="+Inf") == 25
        assert _sample(registry, "edgepipe_run_time_seconds_sum", pool="t") > 0
        text = prometheus_client.generate_latest(registry).decode()
        assert pool.model.sha256 in text


def test_fallback_events_are_logged(caplog):
    events = [{"from": "gpu", "to": "cpu", "stage": "compile", "error": "No adapters found",
               "time": 0.0}]
    with caplog.at_level(logging.WARNING, logger="edgepipe"):
        log_events(events)
    assert "gpu -> cpu at compile: No adapters found" in caplog.text
