"""Every field edgepipe's telemetry can export, in one table.

This is the privacy contract: the exporters (Prometheus, OTLP) emit exactly
these metric names with exactly these labels, and the tests check that
nothing else leaves. No input or output tensor, no file path, no host name,
no user or network identifier is among them: only aggregated counts and
latency distributions, labelled with what model ran where, coarsely.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Labels on every series, with what they hold.
LABELS: dict[str, str] = {
    "model": "the name given when watching (default: the model file's stem, never its path)",
    "model_version": "the version given when watching (OTA manifest version; '' if none)",
    "model_sha": "the first 12 hex digits of the model file's SHA-256",
    "accelerator": "what the work ran on after fallback: cpu, gpu, npu, plugin (never a path)",
    "variant": "the OTA variant or A/B arm given when watching ('' if none)",
    "device_class": "coarse class of the machine: os/arch/cores bucket/memory bucket, "
    "e.g. linux/x86_64/c2/m8g (no identifier)",
}

#: The histogram bucket bounds, in seconds: powers of sqrt(2) from 1 µs to
#: 2^24 µs (16.8 s), i.e. a resolution of 41 % per bucket; one more (+Inf)
#: bucket takes anything longer. The bounds are a subset of the core's
#: histogram bounds (8 per power of two), so re-bucketing it is exact.
BUCKET_BOUNDS_S: tuple[float, ...] = tuple(2.0 ** (k / 2) / 1e6 for k in range(49))
HISTOGRAM_RESOLUTION = "buckets at powers of sqrt(2) from 1 us to 16.8 s (41% wide), plus +Inf"


@dataclass(frozen=True)
class Field:
    """One exported metric."""

    name: str  # base name (Prometheus adds _total/_bucket/... suffixes)
    kind: str  # "counter" | "histogram" | "gauge"
    unit: str
    extra_labels: tuple[str, ...]
    description: str


FIELDS: tuple[Field, ...] = (
    Field(
        "edgepipe_requests",
        "counter",
        "1",
        ("outcome",),
        "requests by outcome: completed, failed, rejected (queue full), dropped "
        "(keep_latest), expired (deadline), cancelled",
    ),
    Field(
        "edgepipe_latency_seconds",
        "histogram",
        "s",
        (),
        "time the model ran per request (Session: the whole run call); " + HISTOGRAM_RESOLUTION,
    ),
    Field(
        "edgepipe_queue_wait_seconds",
        "histogram",
        "s",
        (),
        "time a pool request waited in the queue (pools only); " + HISTOGRAM_RESOLUTION,
    ),
    Field(
        "edgepipe_fallbacks",
        "counter",
        "1",
        ("from_accelerator", "stage"),
        "accelerator fallbacks by the accelerator left and the stage it failed at "
        "(policy, library_load, accelerator_init, compile, first_run, run, retired)",
    ),
    Field(
        "edgepipe_weight_cache_events",
        "counter",
        "1",
        ("event",),
        "XNNPACK weight-cache events: 'unusable' (the session ran without the cache)",
    ),
    Field("edgepipe_workers", "gauge", "1", (), "workers of a pool (1 for a session)"),
)

#: Outcomes of the edgepipe_requests counter.
OUTCOMES: tuple[str, ...] = ("completed", "failed", "rejected", "dropped", "expired", "cancelled")


def field(name: str) -> Field:
    """The :class:`Field` called ``name``."""
    for f in FIELDS:
        if f.name == name:
            return f
    raise KeyError(name)
