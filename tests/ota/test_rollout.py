"""Deterministic bucketing, distribution over 20k ids, per-variant stats."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from edgepipe.ota.keys import TrustedKeys
from edgepipe.ota.manifest import make_rollout, verify_manifest
from edgepipe.ota.rollout import (
    Experiment,
    VariantStats,
    bucket,
    experiment_for,
    load_or_create_device_id,
)
from ota_helpers import make_manifest, model_bytes

IDS = [f"device-{i}" for i in range(20_000)]


def test_bucket_is_deterministic_and_in_range():
    # Fixed values: a change here would silently reshuffle every fleet.
    assert bucket("exp", "device-1") == bucket("exp", "device-1")
    assert all(0 <= bucket("e", i) < 10_000 for i in IDS[:1000])
    assert bucket("ab", "c") != bucket("a", "bc")


def test_same_id_same_variant_across_restarts():
    first = {i: Experiment("exp", [("a", 30), ("b", 30)]).assign(i) for i in IDS[:2000]}
    again = Experiment("exp", {"a": 30, "b": 30})  # a new object, as after a restart
    assert all(again.assign(i) == v for i, v in first.items())


def test_distribution_follows_percentages():
    exp = Experiment("exp", [("a", 10), ("b", 30), ("c", 12.5)])
    counts = Counter(exp.assign(i) for i in IDS)
    for name, pct in (("a", 10), ("b", 30), ("c", 12.5), ("control", 47.5)):
        assert abs(counts[name] / len(IDS) * 100 - pct) < 1.5, (name, counts)


def test_experiments_are_independent():
    a = Experiment("one", [("in", 50)])
    b = Experiment("two", [("in", 50)])
    both = sum(a.assign(i) == "in" and b.assign(i) == "in" for i in IDS)
    assert abs(both / len(IDS) - 0.25) < 0.02


def test_growing_rollout_keeps_early_devices():
    small = Experiment("det", [("update", 10)], remainder=None)
    large = Experiment("det", [("update", 50)], remainder=None)
    early = [i for i in IDS if small.assign(i) == "update"]
    assert early and all(large.assign(i) == "update" for i in early)


def test_experiment_from_manifest(signing_key):
    raw = make_manifest(signing_key, "det", "2", model_bytes("2"),
                        rollout=make_rollout("det-exp", "20", ["fast=5", "accurate"]))
    m = verify_manifest(raw, TrustedKeys.from_keys([signing_key.public_key()]))
    exp = experiment_for(m)
    assert exp.variants == {"fast": 5.0, "accurate": 15.0}
    counts = Counter(exp.assign(i) for i in IDS)
    assert abs(counts[None] / len(IDS) - 0.8) < 0.015
    assert abs(counts["fast"] / len(IDS) - 0.05) < 0.01


def test_invalid_experiments():
    with pytest.raises(ValueError):
        Experiment("e", [("a", 60), ("b", 50)])
    with pytest.raises(ValueError):
        Experiment("e", [("a", 10), ("a", 10)])
    with pytest.raises(ValueError):
        Experiment("e", [("a", 10.001)])


def test_variant_stats_thread_safe():
    stats = VariantStats()

    def feed(v):
        for k in range(1000):
            stats.record(v, ok=k % 10 != 0, latency_s=0.002)

    threads = [threading.Thread(target=feed, args=(v,)) for v in ("a", "b", "a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = stats.snapshot()
    assert snap["a"]["requests"] == 2000 and snap["a"]["errors"] == 200
    assert snap["b"]["error_rate"] == pytest.approx(0.1)
    assert snap["a"]["mean_latency_s"] == pytest.approx(0.002)
    stats.reset()
    assert stats.snapshot() == {}


def test_device_id_persists(tmp_path):
    p = tmp_path / "device-id"
    a = load_or_create_device_id(p)
    assert load_or_create_device_id(p) == a
    p.write_text("garbage")
    b = load_or_create_device_id(p)
    assert b != a and load_or_create_device_id(p) == b
