"""Manifest schema, canonical JSON, signatures, thresholds, expiry and versions."""

from __future__ import annotations

import base64
import json

import pytest
from edgepipe.errors import EdgepipeError
from edgepipe.ota import errors as E
from edgepipe.ota.keys import TrustedKeys, generate_private_key, key_id
from edgepipe.ota.manifest import (
    Version,
    canonical_json,
    make_rollout,
    parse_duration,
    percent_to_bp,
    verify_manifest,
)
from ota_helpers import make_manifest, model_bytes


def _trusted(*keys, threshold=1):
    return TrustedKeys.from_keys([k.public_key() for k in keys], threshold)


def test_round_trip(signing_key):
    data = model_bytes("1")
    m = verify_manifest(make_manifest(signing_key, "det", "1.2.3", data), _trusted(signing_key))
    assert (m.name, str(m.version), m.size) == ("det", "1.2.3", len(data))
    assert m.key_ids == (key_id(signing_key),)
    assert m.rollout.percent_bp == 10_000


def test_errors_derive_from_edgepipe_error():
    for cls in (E.UpdateError, E.SignatureError, E.RollbackError, E.IntegrityError,
                E.DownloadError, E.StoreError, E.ExpiredManifestError, E.UntrustedKeyError):
        assert issubclass(cls, EdgepipeError)


def test_tampered_manifest_is_refused(signing_key):
    raw = make_manifest(signing_key, "det", "1", model_bytes("1"))
    doc = json.loads(raw)
    doc["signed"]["size"] += 1
    with pytest.raises(E.SignatureError, match="0 valid signature"):
        verify_manifest(json.dumps(doc).encode(), _trusted(signing_key))


def test_reformatted_manifest_still_verifies(signing_key):
    # Whitespace and key order are not signed; only the canonical form is.
    raw = make_manifest(signing_key, "det", "1", model_bytes("1"))
    doc = json.loads(raw)
    verify_manifest(json.dumps(doc, indent=7).encode(), _trusted(signing_key))


def test_unknown_key_is_refused(signing_key, other_key):
    raw = make_manifest(other_key, "det", "1", model_bytes("1"))
    with pytest.raises(E.UntrustedKeyError):
        verify_manifest(raw, _trusted(signing_key))


def test_expired_manifest_is_refused(signing_key):
    raw = make_manifest(signing_key, "det", "1", model_bytes("1"), expires_in=60, now=1_000_000)
    verify_manifest(raw, _trusted(signing_key), now=1_000_059)
    with pytest.raises(E.ExpiredManifestError, match="expired"):
        verify_manifest(raw, _trusted(signing_key), now=1_000_060)


def test_threshold_needs_distinct_keys(signing_key, other_key):
    trusted = _trusted(signing_key, other_key, threshold=2)
    both = make_manifest(signing_key, "det", "1", model_bytes("1"), keys=[signing_key, other_key])
    assert len(verify_manifest(both, trusted).key_ids) == 2
    one = make_manifest(signing_key, "det", "1", model_bytes("1"))
    with pytest.raises(E.SignatureError, match="2 required"):
        verify_manifest(one, trusted)
    # The same key's signature twice must not count twice.
    doc = json.loads(one)
    doc["signatures"] = doc["signatures"] * 2
    with pytest.raises(E.SignatureError):
        verify_manifest(json.dumps(doc).encode(), trusted)


def test_garbage_signature_is_refused(signing_key):
    doc = json.loads(make_manifest(signing_key, "det", "1", model_bytes("1")))
    doc["signatures"][0]["sig"] = base64.b64encode(b"\0" * 64).decode()
    with pytest.raises(E.SignatureError):
        verify_manifest(json.dumps(doc).encode(), _trusted(signing_key))


@pytest.mark.parametrize("bad", [
    b'{"signed": {}, "signed": {}, "signatures": []}',   # duplicate keys
    b'{"signed": {"x": 1.5}, "signatures": [{"keyid": "a", "sig": "b"}]}',  # float
    b'{"signed": {"x": NaN}, "signatures": []}',
    b"\xff\xfe",
    b"[]",
    b"{" * 100_000,
])
def test_malformed_documents(bad, signing_key):
    with pytest.raises(E.ManifestError):
        verify_manifest(bad, _trusted(signing_key))


def test_unknown_signed_field_is_refused(signing_key):
    from edgepipe.ota.manifest import sign_manifest

    doc = json.loads(make_manifest(signing_key, "det", "1", model_bytes("1")))
    doc["signed"]["run_as_root"] = True
    raw = sign_manifest(doc["signed"], [signing_key])
    with pytest.raises(E.ManifestError, match="unknown field"):
        verify_manifest(raw, _trusted(signing_key))


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", ".hidden", "a\\b", "", "x" * 200])
def test_path_traversal_names_are_refused_when_signing(signing_key, name):
    with pytest.raises(E.ManifestError):
        make_manifest(signing_key, name, "1", model_bytes("1"), file="ok.tflite")
    with pytest.raises(E.ManifestError):
        make_manifest(signing_key, "det", "1", model_bytes("1"), file=name)


def test_path_traversal_in_signed_manifest_is_refused(signing_key):
    # A correctly signed manifest whose file name traverses is still refused.
    from edgepipe.ota.manifest import sign_manifest

    doc = json.loads(make_manifest(signing_key, "det", "1", model_bytes("1")))
    doc["signed"]["file"] = "../../etc/passwd"
    with pytest.raises(E.ManifestError, match="file name"):
        verify_manifest(sign_manifest(doc["signed"], [signing_key]), _trusted(signing_key))


def test_versions_order_strictly():
    assert Version("1.10") > Version("1.9")
    assert Version("2") > Version("1.99.99")
    assert Version("1.2") == Version("1.2.0")
    assert Version(7) == Version("7")
    for bad in ("01", "1.a", "1.2.3.4.5", "-1", "1.2-rc1", "", " 1"):
        with pytest.raises(E.ManifestError):
            Version(bad)


def test_canonical_json_refuses_floats_and_sorts():
    assert canonical_json({"b": 1, "a": [True, None]}) == b'{"a":[true,null],"b":1}'
    with pytest.raises(E.ManifestError):
        canonical_json({"a": 0.5})


def test_rollout_construction():
    r = make_rollout("exp", "20", ["a", "b=5"])
    assert [(v.name, v.percent_bp) for v in r.variants] == [("a", 1500), ("b", 500)]
    assert make_rollout("exp", None, ["a=1.5", "b=2"]).percent_bp == 350
    assert make_rollout("exp", "10", ["x", "y", "z"]).variants[0].percent_bp == 334
    with pytest.raises(E.ManifestError):
        make_rollout("exp", "10", ["a=20"])
    with pytest.raises(E.ManifestError):
        make_rollout("exp", "10", ["control"])
    assert percent_to_bp("12.5") == 1250
    with pytest.raises(E.ManifestError):
        percent_to_bp("100.01")


def test_durations():
    assert parse_duration("90s") == 90
    assert parse_duration("1d12h") == 36 * 3600
    for bad in ("", "0s", "5", "1y", "h1"):
        with pytest.raises(E.ManifestError):
            parse_duration(bad)


def test_incompatible_runtime(signing_key):
    raw = make_manifest(signing_key, "det", "1", model_bytes("1"), min_edgepipe_version="0.3")
    m = verify_manifest(raw, _trusted(signing_key))
    m.check_compatible("0.3.0", None)
    with pytest.raises(E.IncompatibleError):
        m.check_compatible("0.2.9", None)
    with pytest.raises(E.IncompatibleError, match="unknown"):
        m.check_compatible(None, None)


def test_trusted_keys_threshold_validation(signing_key):
    with pytest.raises(ValueError):
        _trusted(signing_key, threshold=2)
    with pytest.raises(ValueError):
        TrustedKeys.from_keys([signing_key.public_key()], 0)
    assert len(TrustedKeys.from_keys([generate_private_key().public_key()] * 2).keys) == 1
