"""edgepipe's optional fields in a TUF target, and which model a device should install.

A model version is the target ``<name>/<version>.tflite``. Its
``custom["edgepipe"]`` object may hold (every key optional; unknown keys are
ignored so that newer publishers do not break older devices)::

    {
        "rollout": 25,  # percent of devices that install it (default 100)
        "experiment": "det-v3",  # bucketing salt (default "<name>/<version>")
        "variants": {  # A/B arms: share in percent, optional other target
            "control": {"share": 50},
            "quantized": {"share": 50, "target": "det/3-int8.tflite"},
        },
        "min_runtime": "2.3",  # minimum LiteRT version
        "min_edgepipe": "0.1",  # minimum edgepipe version
        "inputs": [{"name": "x", "shape": [1, 4], "dtype": "float32"}],
        "outputs": [{"name": "y", "shape": [1, 2], "dtype": "float32"}],
    }

A repository made with plain python-tuf has none of this: every device takes
the highest version, with no variants.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import IncompatibleError, MetadataError
from .versions import Version, check_name, parse_target_path

BASIS_POINTS = 10_000
_PCT_RE = re.compile(r"(100|[0-9]{1,2})(\.[0-9]{1,2})?")


def bucket(experiment: str, unit_id: str) -> int:
    """The bucket in ``[0, 10000)`` of ``unit_id`` in ``experiment`` (sha256; offline)."""
    digest = hashlib.sha256(experiment.encode("utf-8") + b"\x00" + unit_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % BASIS_POINTS


def percent_bp(value: Any, what: str) -> int:
    """A percentage (0-100, at most 2 decimals) as basis points."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise MetadataError(f"{what} must be a number, not {type(value).__name__}")
    text = str(value) if not isinstance(value, float) else f"{value:.6f}".rstrip("0").rstrip(".")
    if len(text) > 12 or not _PCT_RE.fullmatch(text):
        raise MetadataError(f"{what} {str(value)[:20]!r} must be 0-100 with at most 2 decimals")
    whole, _, frac = text.partition(".")
    bp = int(whole) * 100 + int((frac + "00")[:2])
    if bp > BASIS_POINTS:
        raise MetadataError(f"{what} {text} is above 100")
    return bp


@dataclass(frozen=True)
class Variant:
    """One A/B arm: a share of devices and the target they install."""

    name: str
    share_bp: int
    target: str | None
    """Target path, or None for the version's own target."""


@dataclass(frozen=True)
class EdgepipeFields:
    """Parsed ``custom["edgepipe"]`` of a target (all optional)."""

    rollout_bp: int = BASIS_POINTS
    experiment: str | None = None
    variants: tuple[Variant, ...] = ()
    min_runtime: Version | None = None
    min_edgepipe: Version | None = None
    inputs: tuple[dict[str, Any], ...] | None = None
    outputs: tuple[dict[str, Any], ...] | None = None
    raw: dict[str, Any] = field(default_factory=dict)


def _contract(value: Any, what: str) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list) or len(value) > 256:
        raise MetadataError(f"{what} must be a list of tensors")
    out = []
    for t in value:
        if not (
            isinstance(t, dict)
            and isinstance(t.get("name"), str)
            and isinstance(t.get("dtype"), str)
            and isinstance(t.get("shape"), list)
            and len(t["shape"]) <= 16
            and all(
                isinstance(d, int) and not isinstance(d, bool) and -1 <= d < 2**31
                for d in t["shape"]
            )
        ):
            raise MetadataError(f"{what}: each tensor needs name, dtype and a shape of ints")
        out.append({"name": t["name"], "dtype": t["dtype"], "shape": list(t["shape"])})
    return tuple(out)


def parse_edgepipe_custom(custom: Any) -> EdgepipeFields:
    """Validate ``custom["edgepipe"]`` (the value under that key) into :class:`EdgepipeFields`."""
    if custom is None:
        return EdgepipeFields()
    if not isinstance(custom, dict):
        raise MetadataError("custom.edgepipe must be an object")
    kw: dict[str, Any] = {"raw": dict(custom)}
    if "rollout" in custom:
        kw["rollout_bp"] = percent_bp(custom["rollout"], "rollout")
    if "experiment" in custom:
        kw["experiment"] = check_name(custom["experiment"], "experiment name")
    if "variants" in custom:
        vs = custom["variants"]
        if not isinstance(vs, dict) or not 1 <= len(vs) <= 64:
            raise MetadataError("variants must be an object of 1-64 variants")
        variants = []
        for vname in sorted(vs):
            spec = vs[vname]
            check_name(vname, "variant name")
            if not isinstance(spec, dict):
                raise MetadataError(f"variant {vname!r} must be an object")
            tgt = spec.get("target")
            if tgt is not None and (not isinstance(tgt, str) or not 0 < len(tgt) <= 512):
                raise MetadataError(f"variant {vname!r}: target must be a target path")
            variants.append(
                Variant(vname, percent_bp(spec.get("share", 0), f"share of {vname!r}"), tgt)
            )
        total = sum(v.share_bp for v in variants)
        if total != BASIS_POINTS:
            raise MetadataError(f"variant shares add up to {total / 100}%, not 100%")
        kw["variants"] = tuple(variants)
    for key in ("min_runtime", "min_edgepipe"):
        if key in custom:
            kw[key] = Version(custom[key])
    for key in ("inputs", "outputs"):
        if key in custom:
            kw[key] = _contract(custom[key], key)
    return EdgepipeFields(**kw)


@dataclass(frozen=True)
class Offer:
    """What the trusted metadata offers this device for one model name."""

    name: str
    version: Version
    path: str
    """The version's target path ``<name>/<version>.tflite``."""
    fields: EdgepipeFields

    @property
    def experiment(self) -> str:
        return self.fields.experiment or f"{self.name}/{self.version.text}"

    def in_rollout(self, device_id: str) -> bool:
        """True if ``device_id`` falls inside the rollout share."""
        return bucket(self.experiment, device_id) < self.fields.rollout_bp

    def variant_for(self, device_id: str) -> Variant | None:
        """The A/B variant of ``device_id`` (deterministic, offline), or None without variants."""
        if not self.fields.variants:
            return None
        b = bucket(self.experiment + "/variant", device_id)
        start = 0
        for v in self.fields.variants:
            if start <= b < start + v.share_bp:
                return v
            start += v.share_bp
        return self.fields.variants[-1]  # unreachable: shares add up to 100%

    def check_compatible(self, edgepipe_version: str | None, runtime_version: str | None) -> None:
        """Raise IncompatibleError if this device is older than the minimums."""
        for need, have, what in (
            (self.fields.min_edgepipe, edgepipe_version, "edgepipe"),
            (self.fields.min_runtime, runtime_version, "LiteRT runtime"),
        ):
            if need is None:
                continue
            try:
                ok = have is not None and Version(_leading_version(have)) >= need
            except MetadataError:
                ok = False
            if not ok:
                raise IncompatibleError(
                    f"{self.name} {self.version} needs {what} >= {need}, "
                    f"this device has {have or 'unknown'}"
                )


def _leading_version(text: str) -> str:
    m = re.match(r"[0-9]+(\.[0-9]+){0,3}", text)
    return m.group(0) if m else text


def offers(targets: dict[str, Any], name: str) -> list[Offer]:
    """Every ``<name>/<version>.tflite`` target in ``targets`` (path → TargetFile), by version.

    A target whose edgepipe fields are malformed is skipped (it cannot be
    installed, but must not hide the others).
    """
    out = []
    for path, tf in targets.items():
        parsed = parse_target_path(path)
        if parsed is None or parsed[0] != name:
            continue
        custom = tf.unrecognized_fields.get("custom")
        try:
            fields = parse_edgepipe_custom(
                custom.get("edgepipe") if isinstance(custom, dict) else None
            )
        except MetadataError:
            continue
        out.append(Offer(name, parsed[1], path, fields))
    out.sort(key=lambda o: o.version)
    return out


__all__ = [
    "BASIS_POINTS",
    "EdgepipeFields",
    "Offer",
    "Variant",
    "bucket",
    "offers",
    "parse_edgepipe_custom",
    "percent_bp",
]
