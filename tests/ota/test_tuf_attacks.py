"""Every TUF attack, against a real repository served on 127.0.0.1: refused with a typed error.

Each test names the attack of the TUF specification it plays (docs/ota.md has
the table) and checks the store kept serving what it served before.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from edgepipe.ota import errors as E
from edgepipe.ota.fetcher import BoundedFetcher
from edgepipe.ota.repo import Repository
from ota_helpers import device, model_bytes, publish
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata

# python-tuf stops reading a body that breaks its length limit without closing the
# iterator; edgepipe's fetcher hangs up when the body is dropped, but a body kept
# alive by a caught exception's traceback is only collected later, with the
# socket, in one cycle. Known, harmless here; tracked in the closing note.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
)


def _installed(store, root_bytes, server, tmp_path, version="1"):
    r = store.update(server.url)
    assert r.status == "installed" and r.version == version
    return r


def _resign(md: Metadata, *signers) -> bytes:
    md.signatures.clear()
    for s in signers:
        md.sign(s, append=True)
    return md.to_bytes()


def test_arbitrary_installation_other_bytes_at_the_target_url(repo, server, root_bytes, tmp_path):
    publish(repo, "1")
    store = device(tmp_path / "dev", root_bytes)
    _installed(store, root_bytes, server, tmp_path)
    publish(repo, "2")
    sha = repo.load("targets").signed.targets["det/2.tflite"].hashes["sha256"]
    # The mirror serves an attacker's model (same length) where version 2 should be.
    server.overrides[f"/targets/det/{sha}.2.tflite"] = model_bytes("evil")
    with pytest.raises(E.IntegrityError):
        store.update(server.url)
    assert store.serving().version.text == "1"
    assert store.models.names() == [store.serving().path.name]


def test_arbitrary_installation_targets_signed_by_an_untrusted_key(
    repo, server, root_bytes, tmp_path
):
    publish(repo, "1")
    store = device(tmp_path / "dev", root_bytes)
    _installed(store, root_bytes, server, tmp_path)
    publish(repo, "2")
    v = repo.load("targets").signed.version
    md = Metadata.from_file(str(repo.meta_dir / f"{v}.targets.json"))
    server.overrides[f"/metadata/{v}.targets.json"] = _resign(md, CryptoSigner.generate_ed25519())
    with pytest.raises(E.SignatureError):
        store.update(server.url)
    assert store.serving().version.text == "1"


def test_endless_data_metadata(repo, server, root_bytes, tmp_path):
    publish(repo, "1")
    server.modes["/metadata/timestamp.json"] = "endless"
    store = device(tmp_path / "dev", root_bytes)
    t0 = time.monotonic()
    with pytest.raises((E.IntegrityError, E.DownloadError)):
        store.update(server.url)
    assert time.monotonic() - t0 < 5
    assert store.current_version is None


def test_endless_data_target(repo, server, root_bytes, tmp_path):
    publish(repo, "1")
    sha = repo.load("targets").signed.targets["det/1.tflite"].hashes["sha256"]
    server.modes[f"/targets/det/{sha}.1.tflite"] = "endless"
    store = device(tmp_path / "dev", root_bytes)
    with pytest.raises(E.IntegrityError, match="more than"):
        store.update(server.url)
    assert store.current_version is None and store.downloads.names() == []


def test_extraneous_dependencies_unsigned_extra_target(repo, server, root_bytes, tmp_path):
    publish(repo, "1")
    v = repo.load("targets").signed.version
    md = Metadata.from_file(str(repo.meta_dir / f"{v}.targets.json"))
    # The attacker adds a target (keeping the old signatures): the signature breaks.
    md.signed.targets["det/9.tflite"] = md.signed.targets["det/1.tflite"]
    server.overrides[f"/metadata/{v}.targets.json"] = md.to_bytes()
    store = device(tmp_path / "dev", root_bytes)
    with pytest.raises(E.SignatureError):
        store.update(server.url)
    assert store.current_version is None


def test_fast_forward_snapshot_version_mismatch(repo, server, root_bytes, tmp_path):
    publish(repo, "1")
    # A timestamp (validly signed) that points at a far-future snapshot version.
    ts = repo.load("timestamp")
    ts.signed.snapshot_meta.version = 10_000
    ts.signed.version += 1
    signer = repo.signers("timestamp")[0]
    server.overrides["/metadata/timestamp.json"] = _resign(ts, signer)
    store = device(tmp_path / "dev", root_bytes)
    with pytest.raises(E.UpdateError) as ei:
        store.update(server.url)
    assert isinstance(ei.value, (E.DownloadError, E.RollbackError, E.MetadataError))
    assert store.current_version is None


def test_indefinite_freeze_expired_timestamp(repo, server, root_bytes, tmp_path):
    repo.expiry["timestamp"] = timedelta(seconds=1)
    publish(repo, "1")
    time.sleep(2.1)
    store = device(tmp_path / "dev", root_bytes)
    with pytest.raises(E.ExpiredMetadataError):
        store.update(server.url)


def test_indefinite_freeze_timestamp_valid_for_a_century(repo, server, root_bytes, tmp_path):
    repo.expiry["timestamp"] = timedelta(days=36500)
    publish(repo, "1")
    store = device(tmp_path / "dev", root_bytes)
    with pytest.raises(E.ExpiredMetadataError, match="freeze"):
        store.update(server.url)
    assert store.current_version is None


def test_malicious_mirror_garbage_metadata(repo, server, root_bytes, tmp_path):
    publish(repo, "1")
    server.overrides["/metadata/timestamp.json"] = b'{"signed": {"version": ' + b"9" * 5000 + b"}"
    store = device(tmp_path / "dev", root_bytes)
    with pytest.raises(E.MetadataError):
        store.update(server.url)


def test_mix_and_match_old_targets_with_new_snapshot(repo, server, root_bytes, tmp_path):
    publish(repo, "1")
    old_v = repo.load("targets").signed.version
    publish(repo, "2")
    new_v = repo.load("targets").signed.version
    # The mirror answers the new targets URL with the old (validly signed) targets.
    server.overrides[f"/metadata/{new_v}.targets.json"] = (
        repo.meta_dir / f"{old_v}.targets.json"
    ).read_bytes()
    store = device(tmp_path / "dev", root_bytes)
    with pytest.raises(E.RollbackError):
        store.update(server.url)
    assert store.current_version is None


def test_rollback_replayed_old_timestamp(repo, server, root_bytes, tmp_path):
    publish(repo, "1")
    old_ts = (repo.meta_dir / "timestamp.json").read_bytes()
    store = device(tmp_path / "dev", root_bytes)
    _installed(store, root_bytes, server, tmp_path)
    publish(repo, "2")
    assert store.update(server.url).version == "2"
    server.overrides["/metadata/timestamp.json"] = old_ts
    with pytest.raises(E.RollbackError):
        store.update(server.url)
    assert store.serving().version.text == "2"


def test_rollback_repository_offers_an_older_model(repo, server, root_bytes, tmp_path):
    publish(repo, "1")
    publish(repo, "2")
    store = device(tmp_path / "dev", root_bytes)
    assert store.update(server.url).version == "2"
    repo.remove("det/2.tflite")  # validly signed metadata whose newest model is 1
    repo.publish()
    with pytest.raises(E.RollbackError):
        store.update(server.url)
    assert store.serving().version.text == "2"


def test_slow_retrieval_trickled_headers(repo, server, root_bytes, tmp_path):
    publish(repo, "1")
    server.modes["/metadata/timestamp.json"] = "trickle_headers"
    store = device(tmp_path / "dev", root_bytes, fetcher=BoundedFetcher(deadline_s=1.5))
    t0 = time.monotonic()
    with pytest.raises(E.DownloadError):
        store.update(server.url)
    assert time.monotonic() - t0 < 4


def test_slow_retrieval_trickled_body(repo, server, root_bytes, tmp_path):
    publish(repo, "1")
    sha = repo.load("targets").signed.targets["det/1.tflite"].hashes["sha256"]
    server.modes[f"/targets/det/{sha}.1.tflite"] = "slow_body"
    store = device(tmp_path / "dev", root_bytes, fetcher=BoundedFetcher(deadline_s=1.5))
    t0 = time.monotonic()
    with pytest.raises(E.DownloadError):
        store.update(server.url)
    assert time.monotonic() - t0 < 4
    assert store.current_version is None
    # What arrived is kept to be resumed, never more than the trusted length.
    for n in store.downloads.names():
        assert (store.dir / "downloads" / n).stat().st_size < len(model_bytes("1"))


def test_key_compromise_below_threshold(tmp_path):
    from ota_httpserver import RepoServer

    repo = Repository.init(tmp_path / "repo", thresholds={"targets": 2})
    publish(repo, "1")
    srv = RepoServer(repo.dir / "public").start()
    try:
        root = (repo.meta_dir / "1.root.json").read_bytes()
        store = device(tmp_path / "dev", root)
        assert store.update(srv.url).version == "1"
        publish(repo, "2")
        v = repo.load("targets").signed.version
        md = Metadata.from_file(str(repo.meta_dir / f"{v}.targets.json"))
        stolen = repo.signers("targets")[0]  # one of two keys
        md.signed.targets["det/2.tflite"] = md.signed.targets["det/2.tflite"]
        srv.overrides[f"/metadata/{v}.targets.json"] = _resign(md, stolen)
        with pytest.raises(E.SignatureError):
            store.update(srv.url)
        assert store.serving().version.text == "1"
    finally:
        srv.stop()


def test_wrong_software_only_another_models_targets(repo, server, root_bytes, tmp_path):
    publish(repo, "5", name="other")
    store = device(tmp_path / "dev", root_bytes)
    with pytest.raises(E.TargetNotFoundError):
        store.update(server.url)


def test_wrong_software_other_models_bytes_at_our_url(repo, server, root_bytes, tmp_path):
    publish(repo, "1", model_bytes("other-1"), name="other")
    publish(repo, "1")
    other_sha = repo.load("targets").signed.targets["other/1.tflite"].hashes["sha256"]
    sha = repo.load("targets").signed.targets["det/1.tflite"].hashes["sha256"]
    server.overrides[f"/targets/det/{sha}.1.tflite"] = (
        repo.targets_dir / "other" / f"{other_sha}.1.tflite"
    ).read_bytes()
    store = device(tmp_path / "dev", root_bytes)
    with pytest.raises(E.IntegrityError):
        store.update(server.url)


def test_key_rotation_is_followed_and_old_key_then_refused(repo, server, root_bytes, tmp_path):
    publish(repo, "1")
    store = device(tmp_path / "dev", root_bytes)
    _installed(store, root_bytes, server, tmp_path)
    old_targets_signer = repo.signers("targets")[0]
    repo.rotate("targets")
    publish(repo, "2")
    assert store.update(server.url).version == "2"
    # The revoked targets key can no longer sign for the device.
    publish(repo, "3")
    v = repo.load("targets").signed.version
    md = Metadata.from_file(str(repo.meta_dir / f"{v}.targets.json"))
    server.overrides[f"/metadata/{v}.targets.json"] = _resign(md, old_targets_signer)
    with pytest.raises(E.SignatureError):
        store.update(server.url)
    assert store.serving().version.text == "2"


def test_trusted_metadata_is_kept_in_the_store(repo, server, root_bytes, tmp_path):
    publish(repo, "1")
    store = device(tmp_path / "dev", root_bytes)
    _installed(store, root_bytes, server, tmp_path)
    assert {"root.json", "timestamp.json", "snapshot.json", "targets.json"} <= set(
        store.tufdir.names()
    )
    ts = json.loads((store.dir / "tuf" / "timestamp.json").read_text())
    assert ts["signed"]["version"] == repo.load("timestamp").signed.version
    assert datetime.fromisoformat(ts["signed"]["expires"].replace("Z", "+00:00")) > datetime.now(
        timezone.utc
    )
