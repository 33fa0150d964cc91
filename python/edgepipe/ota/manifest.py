"""The signed model manifest: schema, canonical JSON, Ed25519 signatures, versions.

A manifest is a JSON document of two parts, in the layout TUF uses::

    {"signed": {...fields...}, "signatures": [{"keyid": "<hex>", "sig": "<base64>"}]}

Each signature covers ``SIGNING_CONTEXT + canonical_json(signed)``. Canonical JSON
here means: keys sorted, no insignificant whitespace, ASCII-only output, and no
floating point numbers at all (percentages are integer basis points), so the
signed bytes are reproducible by any implementation. Parsing refuses duplicate
keys, NaN/Infinity and floats, so two parsers cannot disagree on what was signed.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import total_ordering
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .errors import (
    ExpiredManifestError,
    IncompatibleError,
    ManifestError,
    SignatureError,
    UntrustedKeyError,
)
from .keys import TrustedKeys, key_id

MANIFEST_TYPE = "edgepipe.model-manifest"
SPEC_VERSION = 1
SIGNING_CONTEXT = b"edgepipe-ota-manifest-v1\x00"
"""Prefix of every signed message, so a manifest signature cannot be replayed
as a signature over some other kind of document made with the same key."""

MAX_MANIFEST_BYTES = 64 * 1024
BASIS_POINTS = 10_000
"""Rollout shares are integers out of 10 000 (0.01 % steps)."""

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_VERSION_RE = re.compile(r"(0|[1-9][0-9]{0,15})(\.(0|[1-9][0-9]{0,15})){0,3}")
_DURATION_RE = re.compile(r"([0-9]+)([smhdw])")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
RESERVED_VARIANT = "control"
"""The arm of devices outside the rollout; they keep their current model."""


# --------------------------------------------------------------------------- names


def check_name(value: object, what: str = "name") -> str:
    """Return ``value`` if it is a safe identifier, else raise ManifestError.

    Names end up in file names and URLs, so anything that could traverse
    directories (``/``, ``\\``, ``..``) or hide (leading ``.``) is refused.
    """
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value) or ".." in value:
        raise ManifestError(f"invalid {what} {value!r}: use letters, digits, '.', '_', '-'")
    return value


# ------------------------------------------------------------------------ versions


@total_ordering
class Version:
    """A strictly ordered version: 1 to 4 dot-separated non-negative integers.

    ``"7"``, ``"1.2"`` and ``"1.2.3"`` are versions; pre-release tags and
    leading zeros are refused so that ordering is never ambiguous. Missing
    components count as zero, hence ``Version("1.2") == Version("1.2.0")``
    (and so an update from 1.2 to 1.2.0 is refused as not newer).
    """

    __slots__ = ("_key", "text")

    def __init__(self, text: str | int | Version) -> None:
        if isinstance(text, Version):
            self.text, self._key = text.text, text._key
            return
        if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
            text = str(text)
        if not isinstance(text, str) or not _VERSION_RE.fullmatch(text):
            raise ManifestError(
                f"invalid version {text!r}: expected N, N.N, N.N.N or N.N.N.N"
            )
        parts = [int(p) for p in text.split(".")]
        while len(parts) > 1 and parts[-1] == 0:
            parts.pop()
        self.text = text
        self._key = tuple(parts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key == other._key

    def __lt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key < other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Version({self.text!r})"


# ---------------------------------------------------------------- canonical JSON


def canonical_json(obj: Any) -> bytes:
    """Encode ``obj`` as canonical JSON bytes (sorted keys, compact, ASCII, no floats)."""
    _reject_floats(obj)
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def _reject_floats(obj: Any) -> None:
    if isinstance(obj, float):
        raise ManifestError("floating point numbers are not allowed in a manifest")
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise ManifestError("manifest keys must be strings")
            _reject_floats(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _reject_floats(v)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ManifestError(f"duplicate key {k!r} in manifest")
        out[k] = v
    return out


def _refuse_float(text: str) -> Any:
    raise ManifestError(f"floating point number {text} is not allowed in a manifest")


def _refuse_constant(text: str) -> Any:
    raise ManifestError(f"{text} is not allowed in a manifest")


def parse_json(data: bytes) -> Any:
    """Parse manifest JSON strictly (size cap, no duplicates, no floats, UTF-8)."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest is {len(data)} bytes, more than {MAX_MANIFEST_BYTES}")
    try:
        text = data.decode("utf-8")
        return json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_float=_refuse_float,
            parse_constant=_refuse_constant,
        )
    except UnicodeDecodeError as e:
        raise ManifestError(f"manifest is not UTF-8: {e}") from e
    except json.JSONDecodeError as e:
        raise ManifestError(f"manifest is not valid JSON: {e}") from e
    except RecursionError as e:
        raise ManifestError("manifest nests too deeply") from e


# ------------------------------------------------------------------------- times


def format_time(epoch: int) -> str:
    """Format epoch seconds as an RFC 3339 UTC timestamp (``2025-01-31T12:00:00Z``)."""
    return _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object, what: str) -> int:
    """Parse a ``YYYY-MM-DDTHH:MM:SSZ`` timestamp into epoch seconds."""
    if not isinstance(text, str):
        raise ManifestError(f"{what} must be a timestamp string")
    try:
        dt = _dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError as e:
        raise ManifestError(f"invalid {what} {text!r}: expected YYYY-MM-DDTHH:MM:SSZ") from e
    return int(dt.replace(tzinfo=_dt.timezone.utc).timestamp())


def parse_duration(text: str) -> int:
    """Parse a duration such as ``90s``, ``15m``, ``12h``, ``30d``, ``2w`` or ``1d12h``."""
    text = text.strip()
    pos, total = 0, 0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        total += int(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0 or total <= 0:
        raise ManifestError(f"invalid duration {text!r}: use e.g. 90s, 15m, 12h, 30d, 2w")
    return total


def percent_to_bp(value: str | int) -> int:
    """Convert a percentage (``"12.5"``, ``25``) to basis points without float rounding."""
    text = str(value).strip().rstrip("%")
    m = re.fullmatch(r"([0-9]{1,3})(?:\.([0-9]{1,2}))?", text)
    if not m:
        raise ManifestError(f"invalid percentage {value!r}: use 0-100 with at most 2 decimals")
    bp = int(m.group(1)) * 100 + int((m.group(2) or "0").ljust(2, "0"))
    if bp > BASIS_POINTS:
        raise ManifestError(f"percentage {value!r} is above 100")
    return bp


# ----------------------------------------------------------------------- rollout


@dataclass(frozen=True)
class VariantShare:
    """One arm of a rollout: its name and its share of all devices in basis points."""

    name: str
    percent_bp: int

    @property
    def percent(self) -> float:
        """The share as a percentage (for display)."""
        return self.percent_bp / 100


@dataclass(frozen=True)
class Rollout:
    """Who installs this version.

    Devices are bucketed by ``sha256(experiment, device id)`` into 10 000
    buckets. The variants partition the first ``percent_bp`` buckets in order;
    the remaining buckets form the implicit ``control`` arm, which keeps its
    current model. ``experiment`` defaults to the model name, so a device that
    was in a 10 % rollout is still in it when the rollout grows to 50 %.
    """

    experiment: str
    percent_bp: int
    variants: tuple[VariantShare, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "percent_bp": self.percent_bp,
            "variants": [{"name": v.name, "percent_bp": v.percent_bp} for v in self.variants],
        }

    @classmethod
    def from_json(cls, obj: object) -> Rollout:
        if not isinstance(obj, dict):
            raise ManifestError("rollout must be an object")
        _only_keys(obj, {"experiment", "percent_bp", "variants"}, "rollout")
        experiment = check_name(obj.get("experiment"), "experiment name")
        pct = _int(obj.get("percent_bp"), "rollout.percent_bp", 0, BASIS_POINTS)
        raw = obj.get("variants")
        if not isinstance(raw, list) or not raw:
            raise ManifestError("rollout.variants must be a non-empty list")
        variants = []
        for v in raw:
            if not isinstance(v, dict):
                raise ManifestError("each rollout variant must be an object")
            _only_keys(v, {"name", "percent_bp"}, "rollout variant")
            name = check_name(v.get("name"), "variant name")
            variants.append(VariantShare(name, _int(v.get("percent_bp"), "variant percent_bp",
                                                    0, BASIS_POINTS)))
        return cls.build(experiment, pct, variants)

    @classmethod
    def build(cls, experiment: str, percent_bp: int,
              variants: Sequence[VariantShare]) -> Rollout:
        """Validate and build a rollout; variant shares must add up to ``percent_bp``."""
        names = [v.name for v in variants]
        if len(set(names)) != len(names):
            raise ManifestError(f"duplicate variant names in {names}")
        if RESERVED_VARIANT in names:
            raise ManifestError(f"variant name {RESERVED_VARIANT!r} is reserved")
        total = sum(v.percent_bp for v in variants)
        if total != percent_bp:
            raise ManifestError(
                f"variant shares add up to {total / 100}% but the rollout is {percent_bp / 100}%"
            )
        return cls(check_name(experiment, "experiment name"), percent_bp, tuple(variants))


def make_rollout(experiment: str, rollout_percent: str | int | None,
                 variants: Sequence[str] = ()) -> Rollout:
    """Build a rollout from CLI-style arguments.

    ``variants`` are ``NAME`` or ``NAME=PCT``. Variants without a share split
    what the explicit ones leave of the rollout evenly (the first ones get the
    odd basis points). With no rollout percentage, it is the sum of explicit
    shares when every variant has one, else 100 %.
    """
    parsed: list[tuple[str, int | None]] = []
    for spec in variants:
        name, sep, pct = spec.partition("=")
        parsed.append((check_name(name.strip(), "variant name"),
                       percent_to_bp(pct) if sep else None))
    if not parsed:
        parsed = [("update", None)]
    explicit = sum(p for _, p in parsed if p is not None)
    if rollout_percent is not None:
        total = percent_to_bp(rollout_percent)
    elif all(p is not None for _, p in parsed):
        total = explicit
    else:
        total = BASIS_POINTS
    free = [n for n, p in parsed if p is None]
    rest = total - explicit
    if rest < 0:
        raise ManifestError("variant shares add up to more than the rollout percentage")
    if rest and not free:
        raise ManifestError("variant shares add up to less than the rollout percentage")
    shares = []
    for name, p in parsed:
        if p is None:
            i = free.index(name)
            p = rest // len(free) + (1 if i < rest % len(free) else 0)
        shares.append(VariantShare(name, p))
    return Rollout.build(experiment, total, shares)


# ---------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class Manifest:
    """A manifest whose signatures, expiry and fields have all been verified.

    Only :func:`verify_manifest` (and :func:`sign_manifest` on the publisher
    side) construct these, so holding a ``Manifest`` means it was checked.
    """

    name: str
    version: Version
    sha256: str
    size: int
    file: str
    created: int
    expires: int
    min_edgepipe_version: Version | None
    min_runtime_version: Version | None
    rollout: Rollout
    signed: Mapping[str, Any] = field(repr=False)
    raw: bytes = field(repr=False)
    key_ids: tuple[str, ...] = ()
    """Ids of the trusted keys whose signatures verified."""

    def to_json_bytes(self) -> bytes:
        """Return the manifest document exactly as it was received or produced."""
        return self.raw

    def check_compatible(self, edgepipe_version: str | Version | None,
                         runtime_version: str | Version | None) -> None:
        """Raise IncompatibleError if this device is too old for the model.

        An unknown local version counts as too old when the manifest sets a
        minimum: installing a model the runtime cannot run is worse than waiting.
        """
        for need, have, what in (
            (self.min_edgepipe_version, edgepipe_version, "edgepipe"),
            (self.min_runtime_version, runtime_version, "runtime"),
        ):
            if need is None:
                continue
            if have is None:
                raise IncompatibleError(f"model needs {what} >= {need}, local version unknown")
            try:
                have_v = Version(str(have))
            except ManifestError as e:
                raise IncompatibleError(f"cannot compare local {what} version {have!r}") from e
            if have_v < need:
                raise IncompatibleError(f"model needs {what} >= {need}, this device has {have}")


def build_signed(
    *,
    name: str,
    version: str | int | Version,
    sha256: str,
    size: int,
    file: str,
    expires_in: int,
    rollout: Rollout | None = None,
    min_edgepipe_version: str | None = None,
    min_runtime_version: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Return the ``signed`` part of a manifest, validated."""
    created = int(time.time() if now is None else now)
    signed = {
        "_type": MANIFEST_TYPE,
        "spec_version": SPEC_VERSION,
        "name": check_name(name),
        "version": Version(version).text,
        "sha256": sha256,
        "size": size,
        "file": check_name(file, "file name"),
        "created": format_time(created),
        "expires": format_time(created + int(expires_in)),
        "min_edgepipe_version": (
            Version(min_edgepipe_version).text if min_edgepipe_version is not None else None
        ),
        "min_runtime_version": (
            Version(min_runtime_version).text if min_runtime_version is not None else None
        ),
        "rollout": (rollout or make_rollout(name, None)).to_json(),
    }
    _parse_signed(signed)  # refuse to sign anything a device would refuse to read
    return signed


def sign_manifest(signed: Mapping[str, Any], keys: Iterable[Ed25519PrivateKey]) -> bytes:
    """Sign ``signed`` with every key and return the manifest document bytes."""
    message = SIGNING_CONTEXT + canonical_json(signed)
    sigs = []
    seen = set()
    for k in keys:
        kid = key_id(k)
        if kid in seen:
            continue
        seen.add(kid)
        sigs.append({"keyid": kid, "sig": base64.b64encode(k.sign(message)).decode("ascii")})
    if not sigs:
        raise SignatureError("at least one signing key is required")
    doc = {"signed": dict(signed), "signatures": sigs}
    return json.dumps(doc, indent=2, sort_keys=True).encode("utf-8") + b"\n"


def verify_manifest(
    data: bytes,
    trusted: TrustedKeys,
    *,
    now: float | None = None,
    check_expiry: bool = True,
) -> Manifest:
    """Verify a manifest document and return its fields.

    Order matters: signatures are checked over the canonical form of the
    ``signed`` object before any field is interpreted, then the expiry, then
    the rest of the schema. Raises UntrustedKeyError when no signature comes
    from a trusted key, SignatureError when fewer than ``trusted.threshold``
    distinct trusted keys signed validly, ExpiredManifestError when the
    manifest has expired, and ManifestError for anything malformed.
    """
    doc = parse_json(data)
    if not isinstance(doc, dict) or set(doc) != {"signed", "signatures"}:
        raise ManifestError("manifest must be an object with exactly 'signed' and 'signatures'")
    signed, sigs = doc["signed"], doc["signatures"]
    if not isinstance(signed, dict):
        raise ManifestError("'signed' must be an object")
    if not isinstance(sigs, list) or not sigs:
        raise SignatureError("manifest carries no signatures")
    message = SIGNING_CONTEXT + canonical_json(signed)

    good: list[str] = []
    bad_trusted = 0
    untrusted = 0
    for entry in sigs:
        if not isinstance(entry, dict) or set(entry) != {"keyid", "sig"}:
            raise ManifestError("each signature must be an object with 'keyid' and 'sig'")
        kid, sig_b64 = entry["keyid"], entry["sig"]
        if not isinstance(kid, str) or not isinstance(sig_b64, str):
            raise ManifestError("signature 'keyid' and 'sig' must be strings")
        if kid not in trusted:
            untrusted += 1
            continue
        try:
            sig = base64.b64decode(sig_b64, validate=True)
        except (binascii.Error, ValueError):
            bad_trusted += 1
            continue
        # A key counts once however many times it signs, so one compromised key
        # cannot meet a threshold of two by signing twice.
        if kid not in good and trusted.verify(kid, sig, message):
            good.append(kid)
        elif kid not in good:
            bad_trusted += 1
    if len(good) < trusted.threshold:
        if not good and not bad_trusted:
            raise UntrustedKeyError(
                f"manifest is signed only by untrusted key(s) ({untrusted} signature(s))"
            )
        raise SignatureError(
            f"{len(good)} valid signature(s) from trusted keys, {trusted.threshold} required"
            + (f"; {bad_trusted} invalid" if bad_trusted else "")
        )

    fields = _parse_signed(signed)
    current = time.time() if now is None else now
    if check_expiry and current >= fields["expires"]:
        raise ExpiredManifestError(
            f"manifest for {fields['name']} {fields['version']} expired at "
            f"{format_time(fields['expires'])}"
        )
    return Manifest(**fields, signed=signed, raw=bytes(data), key_ids=tuple(good))


_SIGNED_KEYS = {
    "_type", "spec_version", "name", "version", "sha256", "size", "file", "created",
    "expires", "min_edgepipe_version", "min_runtime_version", "rollout",
}


def _parse_signed(signed: Mapping[str, Any]) -> dict[str, Any]:
    if signed.get("_type") != MANIFEST_TYPE:
        raise ManifestError(f"not an edgepipe model manifest (_type {signed.get('_type')!r})")
    if signed.get("spec_version") != SPEC_VERSION:
        raise ManifestError(f"unsupported manifest spec_version {signed.get('spec_version')!r}")
    # Unknown fields are refused rather than ignored: a field this device does
    # not understand might be one that restricts where the model may run.
    _only_keys(signed, _SIGNED_KEYS, "manifest")
    missing = _SIGNED_KEYS - set(signed)
    if missing:
        raise ManifestError(f"manifest lacks field(s): {', '.join(sorted(missing))}")
    sha = signed["sha256"]
    if not isinstance(sha, str) or not _SHA256_RE.fullmatch(sha):
        raise ManifestError("sha256 must be 64 lowercase hex digits")
    created = parse_time(signed["created"], "created")
    expires = parse_time(signed["expires"], "expires")
    if expires <= created:
        raise ManifestError("manifest expires before it was created")
    min_ep, min_rt = signed["min_edgepipe_version"], signed["min_runtime_version"]
    return {
        "name": check_name(signed["name"]),
        "version": Version(signed["version"]) if isinstance(signed["version"], str)
        else _bad_version(signed["version"]),
        "sha256": sha,
        "size": _int(signed["size"], "size", 1, 1 << 40),
        "file": check_name(signed["file"], "file name"),
        "created": created,
        "expires": expires,
        "min_edgepipe_version": Version(min_ep) if min_ep is not None else None,
        "min_runtime_version": Version(min_rt) if min_rt is not None else None,
        "rollout": Rollout.from_json(signed["rollout"]),
    }


def _bad_version(value: object) -> Version:
    raise ManifestError(f"version must be a string, got {value!r}")


def _int(value: object, what: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ManifestError(f"{what} must be an integer in [{lo}, {hi}], got {value!r}")
    return value


def _only_keys(obj: Mapping[str, Any], allowed: set[str], what: str) -> None:
    extra = set(obj) - allowed
    if extra:
        raise ManifestError(f"unknown field(s) in {what}: {', '.join(sorted(extra))}")


__all__ = [
    "BASIS_POINTS",
    "MANIFEST_TYPE",
    "SIGNING_CONTEXT",
    "Manifest",
    "Rollout",
    "VariantShare",
    "Version",
    "build_signed",
    "canonical_json",
    "check_name",
    "format_time",
    "make_rollout",
    "parse_duration",
    "percent_to_bp",
    "sign_manifest",
    "verify_manifest",
]
