"""Deterministic offline bucketing, experiments, and per-variant statistics fed by a real Pool."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter

import numpy as np
import pytest
from edgepipe.ota.errors import MetadataError
from edgepipe.ota.rollout import Experiment, VariantStats
from edgepipe.ota.targets import Offer, bucket, parse_edgepipe_custom
from edgepipe.ota.versions import Version

IDS = [f"device-{i}" for i in range(20_000)]


def test_bucket_is_deterministic_and_in_range():
    # The documented definition: a change here would silently reshuffle every fleet.
    digest = hashlib.sha256(b"exp\x00device-1").digest()
    assert bucket("exp", "device-1") == int.from_bytes(digest[:8], "big") % 10_000
    assert all(0 <= bucket("e", i) < 10_000 for i in IDS[:1000])
    assert bucket("ab", "c") != bucket("a", "bc")


def test_distribution_follows_percentages():
    exp = Experiment("exp", [("a", 10), ("b", 30), ("c", 12.5)])
    counts = Counter(exp.assign(i) for i in IDS)
    for name, pct in (("a", 10), ("b", 30), ("c", 12.5), ("control", 47.5)):
        assert abs(counts[name] / len(IDS) * 100 - pct) < 1.5, (name, counts)


def test_variants_of_a_target_split_the_fleet_and_are_stable():
    fields = parse_edgepipe_custom(
        {"variants": {"a": {"share": 25}, "b": {"share": 75, "target": "x/y"}}}
    )
    offer = Offer("det", Version("3"), "det/3.tflite", fields)
    first = {i: offer.variant_for(i).name for i in IDS[:4000]}
    again = Offer(
        "det",
        Version("3"),
        "det/3.tflite",
        parse_edgepipe_custom(
            {"variants": {"b": {"share": 75, "target": "x/y"}, "a": {"share": 25}}}
        ),
    )
    assert all(again.variant_for(i).name == v for i, v in first.items())  # order-free
    share_a = Counter(first.values())["a"] / 4000
    assert 0.22 < share_a < 0.28
    # Rollout and variant buckets are independent: inside a 50% rollout both arms occur.
    half = Offer(
        "det",
        Version("3"),
        "det/3.tflite",
        parse_edgepipe_custom(
            {"rollout": 50, "variants": {"a": {"share": 50}, "b": {"share": 50}}}
        ),
    )
    inside = [i for i in IDS[:2000] if half.in_rollout(i)]
    assert set(Counter(half.variant_for(i).name for i in inside)) == {"a", "b"}


@pytest.mark.parametrize(
    "custom",
    [
        {"rollout": 101},
        {"rollout": "1e3"},
        {"rollout": True},
        {"rollout": 12.345},
        {"variants": {"a": {"share": 60}, "b": {"share": 60}}},
        {"variants": {}},
        {"variants": {"../x": {"share": 100}}},
        {"min_runtime": "9" * 5000},
        {"inputs": [{"name": "x"}]},
        {"experiment": ""},
        "not an object",
    ],
)
def test_invalid_edgepipe_fields_are_typed_errors(custom):
    with pytest.raises(MetadataError):
        parse_edgepipe_custom(custom)


def test_invalid_experiments():
    with pytest.raises(ValueError):
        Experiment("e", [("a", 60), ("b", 50)])
    with pytest.raises(ValueError):
        Experiment("e", [("a", 10), ("a", 10)])


def test_variant_stats_percentiles_and_threads():
    stats = VariantStats()

    def feed(variant: str, base: float) -> None:
        for k in range(1000):
            stats.record(variant, ok=k % 100 != 0, latency_s=base + k / 1000)

    threads = [
        threading.Thread(target=feed, args=(v, b))
        for v, b in (("a", 0.0), ("b", 1.0), ("a", 0.0), ("b", 1.0))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = stats.snapshot()
    assert snap["a"]["requests"] == 2000 and snap["a"]["errors"] == 20
    assert snap["a"]["error_rate"] == pytest.approx(0.01)
    assert snap["a"]["latency_p50_s"] == pytest.approx(0.5, abs=0.01)
    assert snap["a"]["latency_p90_s"] == pytest.approx(0.9, abs=0.01)
    assert snap["b"]["latency_p99_s"] == pytest.approx(1.99, abs=0.01)
    assert stats.collect(device="d1") == {"ota_variants": snap, "labels": {"device": "d1"}}


def test_pool_feeds_variant_stats(generator):
    edgepipe = pytest.importorskip("edgepipe")
    pytest.importorskip("edgepipe._core")
    model = edgepipe.Model.from_bytes(generator.build_add_mul(n=4))
    x = {"a": np.ones((1, 4), np.float32), "b": np.ones((1, 4), np.float32)}
    stats = VariantStats()
    # "gpu" has no adapter here: the pool falls back to the CPU and records the event.
    with edgepipe.Pool(model, workers=1, accelerator=["gpu", "cpu"]) as pool:
        served = stats.observe(pool, "int8")
        for _ in range(20):
            assert served.run(x)["sum"].tolist() == [[2.0] * 4]
        futures = [served.submit(x) for _ in range(10)]
        for f in futures:
            f.result(timeout=10)
        with pytest.raises(edgepipe.errors.InputError):
            served.run({"a": np.ones((1, 4), np.int32), "b": x["b"]})
        fallbacks = len(pool.events())
    snap = stats.snapshot()["int8"]
    assert snap["requests"] == 31 and snap["errors"] == 1
    assert snap["latency_samples"] == 31 and 0 < snap["latency_p50_s"] <= snap["latency_p99_s"]
    assert snap["fallbacks"] == fallbacks


def test_watching_a_pool_feeds_its_variant_from_pool_stats(generator):
    edgepipe = pytest.importorskip("edgepipe")
    pytest.importorskip("edgepipe._core")
    model = edgepipe.Model.from_bytes(generator.build_add_mul(n=4))
    x = {"a": np.ones((1, 4), np.float32), "b": np.ones((1, 4), np.float32)}
    stats = VariantStats()
    with edgepipe.Pool(model, workers=1) as pool:
        pool.run(x)  # before watching: not counted
        stats.watch(pool, "float")
        for _ in range(12):
            pool.run(x)
        pool.swap(edgepipe.Model.from_bytes(generator.build_add_mul(n=4)))
        stats.watch(pool, "int8")  # the pool now serves the other arm
        for _ in range(5):
            pool.submit(x).result(timeout=10)
        snap = stats.snapshot()
    assert snap["float"]["requests"] == 12 and snap["int8"]["requests"] == 5
    assert snap["float"]["errors"] == 0 and snap["float"]["latency_samples"] == 12
    assert 0 < snap["float"]["latency_p50_s"] <= snap["float"]["latency_p99_s"]
