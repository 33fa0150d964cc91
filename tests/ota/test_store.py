"""ModelStore over a real HTTP server: installs, and every attack of the issue refused.

After each refusal the store must be unchanged: same version served, the file
still verified, no leftover partial or temporary files.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import time

import pytest
from edgepipe.ota import errors as E
from edgepipe.ota.download import default_opener
from edgepipe.ota.manifest import build_signed, sign_manifest
from edgepipe.ota.store import ModelStore
from ota_helpers import make_manifest, model_bytes, tree


def open_store(path, keys, **kw):
    kw.setdefault("name", "det")
    kw.setdefault("edgepipe_version", "0.1.0")
    kw.setdefault("timeout", 2.0)
    return ModelStore(path, keys, **kw)


def assert_serves(store, version):
    s = store.serving()
    assert str(s.version) == version
    assert hashlib.sha256(s.path.read_bytes()).hexdigest() == s.sha256
    assert s.path.read_bytes() == model_bytes(version)


def assert_clean(path):
    """No temporaries, no partials, no unreferenced model files."""
    files = tree(path)
    assert not [f for f in files if f.endswith(".tmp") or f.startswith("downloads/")], files
    meta = json.loads((path / "store.json").read_text())
    referenced = {e[k] for e in (meta["current"], meta["previous"]) if e
                  for k in ("file", "manifest")}
    stored = {f for f in files if f.startswith(("models/", "manifests/"))}
    assert stored == referenced


@pytest.fixture
def v1_store(tmp_path, public_key, publish):
    """A store with version 1 installed over HTTP."""
    store = open_store(tmp_path / "s", public_key)
    assert store.update(publish("1")).status == "installed"
    return store


# ----------------------------------------------------------------- normal flow


def test_update_keeps_current_and_previous(tmp_path, public_key, publish):
    d = tmp_path / "s"
    store = open_store(d, public_key)
    r = store.update(publish("1"))
    assert (r.status, r.variant) == ("installed", "update")
    assert store.update(publish("1")).status == "up_to_date"
    store.update(publish("2"))
    assert store.status()["previous"]["version"] == "1"
    store.update(publish("3"))
    assert_serves(store, "3")
    assert store.status()["previous"]["version"] == "2"
    assert_clean(d)  # version 1's files are gone
    reopened = open_store(d, public_key)
    assert_serves(reopened, "3")
    assert [e["event"] for e in reopened.events] == ["installed"] * 3


def test_install_from_local_paths(tmp_path, public_key, signing_key):
    pub = tmp_path / "pub"
    pub.mkdir()
    (pub / "det-1.tflite").write_bytes(model_bytes("1"))
    (pub / "det.json").write_bytes(make_manifest(signing_key, "det", "1", model_bytes("1")))
    store = open_store(tmp_path / "s", public_key)
    assert store.update(pub / "det.json").status == "installed"
    assert_serves(store, "1")


def test_bundled_model_is_served_until_an_update(tmp_path, public_key, publish):
    bundled = tmp_path / "app.tflite"
    bundled.write_bytes(b"bundled model")
    store = open_store(tmp_path / "s", public_key, bundled=bundled, bundled_version="1")
    assert store.serving().source == "bundled"
    with pytest.raises(E.RollbackError):  # not newer than what the app ships
        store.update(publish("1"))
    store.update(publish("2"))
    assert store.serving().source == "current"
    store.rollback("bad model")
    assert store.serving().source == "bundled"


def test_no_model_at_all(tmp_path, public_key):
    with pytest.raises(E.StoreError, match="no verified model"):
        open_store(tmp_path / "s", public_key).current_path()


def test_rollout_outside_is_not_installed(tmp_path, public_key, publish):
    store = open_store(tmp_path / "s", public_key)
    from edgepipe.ota.manifest import make_rollout

    r = store.update(publish("1", rollout=make_rollout("det", "0")))
    assert r.status == "not_in_rollout"
    assert store.current_version is None


def test_device_id_is_stable(tmp_path, public_key):
    a = open_store(tmp_path / "s", public_key).device_id
    assert a == open_store(tmp_path / "s", public_key).device_id


# ---------------------------------------------------------------------- attacks


def test_attack_tampered_model(v1_store, publish):
    with pytest.raises(E.IntegrityError, match="sha256"):
        v1_store.update(publish("2", mode="wrong"))
    assert_serves(v1_store, "1")
    assert_clean(v1_store.dir)


def test_attack_tampered_manifest(v1_store, publish, server):
    url = publish("2")
    doc = json.loads(server.files["/det.json"])
    doc["signed"]["sha256"] = hashlib.sha256(b"evil").hexdigest()
    server.files["/det.json"] = json.dumps(doc).encode()
    with pytest.raises(E.SignatureError):
        v1_store.update(url)
    assert_serves(v1_store, "1")
    assert_clean(v1_store.dir)


def test_attack_unknown_key(v1_store, publish, other_key):
    with pytest.raises(E.UntrustedKeyError):
        v1_store.update(publish("2", key=other_key))
    assert_serves(v1_store, "1")


def test_attack_expired_manifest_freeze(tmp_path, public_key, publish):
    url = publish("1", expires_in=60)
    store = open_store(tmp_path / "s", public_key, clock=lambda: time.time() + 120)
    with pytest.raises(E.ExpiredManifestError):
        store.update(url)
    assert store.current_version is None


@pytest.mark.parametrize("offered", ["1", "2", "1.9.9"])
def test_attack_rollback_older_or_equal(tmp_path, public_key, publish, offered):
    store = open_store(tmp_path / "s", public_key)
    store.update(publish("1"))
    store.update(publish("2"))
    if offered == "2":
        # Same version with other bytes is a replay/mix-and-match, not "up to date".
        url = publish("2", data=model_bytes("other"))
    else:
        url = publish(offered)
    with pytest.raises(E.RollbackError):
        store.update(url)
    assert_serves(store, "2")
    assert_clean(store.dir)


def test_attack_rollback_to_version_marked_bad(v1_store, publish):
    v1_store.update(publish("2"))
    v1_store.mark_bad("2", "health check failed")
    assert_serves(v1_store, "1")
    with pytest.raises(E.RollbackError, match="marked bad"):
        v1_store.update(publish("2"))
    reopened = open_store(v1_store.dir, v1_store.trusted)
    with pytest.raises(E.RollbackError):
        reopened.update(publish("2"))
    reopened.update(publish("3"))
    assert_serves(reopened, "3")


@pytest.mark.parametrize("mode", ["extra", "endless"])
def test_attack_endless_data(v1_store, publish, mode):
    with pytest.raises(E.IntegrityError):
        v1_store.update(publish("2", mode=mode))
    assert_serves(v1_store, "1")
    assert_clean(v1_store.dir)


def test_attack_oversized_declared_model(tmp_path, public_key, publish):
    store = open_store(tmp_path / "s", public_key, max_model_bytes=1000)
    with pytest.raises(E.ManifestError, match="exceeds"):
        store.update(publish("1"))


@pytest.mark.parametrize("field,value", [
    ("file", "../../../outside.tflite"),
    ("file", "/etc/passwd"),
    ("name", "../det"),
    ("version", "../../1"),
])
def test_attack_path_traversal(tmp_path, public_key, signing_key, server, field, value):
    data = model_bytes("1")
    signed = build_signed(name="det", version="1", sha256=hashlib.sha256(data).hexdigest(),
                          size=len(data), file="det-1.tflite", expires_in=3600)
    signed[field] = value
    server.files["/det.json"] = sign_manifest(signed, [signing_key])  # validly signed
    server.files["/det-1.tflite"] = data
    store = open_store(tmp_path / "s", public_key)
    with pytest.raises(E.ManifestError):
        store.update(server.url("/det.json"))
    assert not (tmp_path / "outside.tflite").exists()
    assert tree(tmp_path / "s") == [".lock", "device-id"]


def test_attack_path_traversal_in_store_metadata(v1_store, public_key):
    meta = json.loads((v1_store.dir / "store.json").read_text())
    meta["current"]["file"] = "models/../../victim"
    (v1_store.dir / "store.json").write_text(json.dumps(meta))
    reopened = open_store(v1_store.dir, public_key)
    assert reopened.current_version is None  # refused as unreadable, set aside
    assert any(f.startswith("store.json.corrupt") for f in tree(v1_store.dir))


def test_attack_wrong_model_name(v1_store, publish):
    with pytest.raises(E.ManifestError, match="this store holds"):
        v1_store.update(publish("2", name="other"))


def test_incompatible_runtime_is_refused(v1_store, publish):
    with pytest.raises(E.IncompatibleError):
        v1_store.update(publish("2", min_edgepipe_version="9.0"))
    with pytest.raises(E.IncompatibleError):
        v1_store.update(publish("2", min_runtime_version="99.0"))
    assert_serves(v1_store, "1")


def test_attack_truncated_download_then_resume(v1_store, publish, server):
    url = publish("2", mode="truncate")
    with pytest.raises(E.DownloadError):
        v1_store.update(url)
    assert_serves(v1_store, "1")
    partials = list((v1_store.dir / "downloads").iterdir())
    assert len(partials) == 1
    kept = partials[0].stat().st_size
    assert 0 < kept < 40_000
    server.modes["/det-2.tflite"] = "ok"
    v1_store.update(url)
    assert server.requests[-1] == ("/det-2.tflite", f"bytes={kept}-")
    assert_serves(v1_store, "2")
    assert_clean(v1_store.dir)


def test_attack_slow_retrieval(v1_store, publish):
    with pytest.raises(E.DownloadError, match="stalled"):
        v1_store.timeout = 0.3
        v1_store.update(publish("2", mode="stall"))
    assert_serves(v1_store, "1")


class FailingWriter:
    """A file wrapper whose writes fail with ``err`` after ``limit`` bytes."""

    def __init__(self, f, limit, err):
        self.f, self.limit, self.err, self.written = f, limit, err, 0

    def write(self, b):
        if self.written + len(b) > self.limit:
            raise OSError(self.err, os.strerror(self.err))
        self.written += len(b)
        return self.f.write(b)

    def __getattr__(self, name):
        return getattr(self.f, name)


def failing_opener(match, limit, err):
    def opener(path, mode):
        f = default_opener(path, mode)
        return FailingWriter(f, limit, err) if match(path) else f
    return opener


@pytest.mark.parametrize("err", [errno.EIO, errno.ENOSPC])
def test_io_error_and_full_disk_mid_model_write(v1_store, publish, err):
    v1_store.opener = failing_opener(lambda p: p.suffix == ".partial", 10_000, err)
    with pytest.raises(E.StoreError, match=os.strerror(err)):
        v1_store.update(publish("2"))
    assert_serves(v1_store, "1")
    assert_clean(v1_store.dir)
    v1_store.opener = default_opener
    v1_store.update(publish("2"))
    assert_serves(v1_store, "2")


@pytest.mark.parametrize("target", ["store.json", "manifests"])
def test_io_error_writing_metadata_or_manifest(v1_store, publish, target):
    v1_store.opener = failing_opener(
        lambda p: p.name.startswith(target) or p.parent.name == target, 0, errno.ENOSPC)
    with pytest.raises(E.StoreError):
        v1_store.update(publish("2"))
    assert_serves(v1_store, "1")
    assert_clean(v1_store.dir)
    assert_serves(open_store(v1_store.dir, v1_store.trusted), "1")


def test_full_disk_on_a_real_small_filesystem(tmp_path, public_key, publish):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        store = open_store(mnt / "s", public_key)
        store.update(publish("1"))
        filler = mnt / "filler"

        def fill_then_open(path, mode):
            # Eat the space the free-space check saw, so the write really hits ENOSPC.
            if path.suffix == ".partial" and not filler.exists():
                with open(filler, "wb") as f:
                    try:
                        while True:
                            f.write(b"\0" * 65536)
                    except OSError as e:
                        assert e.errno == errno.ENOSPC
            return default_opener(path, mode)

        store.opener = fill_then_open
        with pytest.raises(E.StoreError, match="No space"):
            store.update(publish("2"))
        assert_serves(store, "1")
        assert_clean(store.dir)
        filler.unlink()
        store.opener = default_opener
        store.update(publish("2"))
        assert_serves(open_store(mnt / "s", public_key), "2")
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_not_enough_space_is_refused_before_download(v1_store, publish, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(1, 1, 10))
    with pytest.raises(E.StoreError, match="free space"):
        v1_store.update(publish("2"))
    assert_serves(v1_store, "1")


# ------------------------------------------------------------------ recovery


def test_leftovers_are_cleaned_on_open(v1_store, public_key):
    d = v1_store.dir
    (d / "store.json.abcd1234.tmp").write_bytes(b"{half")
    (d / "models" / "9-deadbeef.tflite").write_bytes(b"orphan")
    (d / "manifests" / "9-deadbeef.json.1234.tmp").write_bytes(b"x")
    reopened = open_store(d, public_key)
    assert_serves(reopened, "1")
    assert_clean(d)


def test_corrupted_current_falls_back_to_previous(v1_store, publish, public_key):
    v1_store.update(publish("2"))
    cur = v1_store.serving().path
    cur.write_bytes(b"bit rot" + cur.read_bytes()[7:])
    reopened = open_store(v1_store.dir, public_key)
    assert_serves(reopened, "1")
    assert reopened.events[-1]["event"] == "verification_failed"
    assert_clean(v1_store.dir)
    # A fresh update to 2 is still refused (not newer than the highest seen)...
    with pytest.raises(E.RollbackError):
        reopened.update(publish("2"))
    reopened.update(publish("3"))
    assert_serves(reopened, "3")


def test_replaced_installed_manifest_is_caught(v1_store, public_key, other_key):
    # Someone with write access swaps model and manifest for their own.
    meta = json.loads((v1_store.dir / "store.json").read_text())
    evil = model_bytes("evil")
    (v1_store.dir / meta["current"]["file"]).write_bytes(evil)
    (v1_store.dir / meta["current"]["manifest"]).write_bytes(
        make_manifest(other_key, "det", "1", evil))
    reopened = open_store(v1_store.dir, public_key)
    with pytest.raises(E.StoreError):
        reopened.serving()


def test_verify_rechecks_now(v1_store):
    v1_store.serving().path.write_bytes(b"x")
    with pytest.raises(E.StoreError):
        v1_store.verify()
