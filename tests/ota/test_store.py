"""The device store against a real repository on 127.0.0.1: slots, bundled fallback,
rollout shares, variants that are models, compatibility, recovery on open."""

from __future__ import annotations

from collections import Counter

import pytest
from edgepipe.ota import errors as E
from edgepipe.ota.store import ModelStore
from edgepipe.ota.targets import bucket
from edgepipe.ota.versions import Version
from ota_helpers import device, model_bytes, publish


def test_update_keeps_current_and_previous(repo, server, root_bytes, tmp_path):
    store = device(tmp_path / "dev", root_bytes)
    for v in ("1", "2", "3"):
        publish(repo, v)
        r = store.update(server.url)
        assert (r.status, r.version) == ("installed", v)
    st = store.status()
    assert st["current"]["version"] == "3" and st["previous"]["version"] == "2"
    assert len(store.models.names()) == 2
    assert store.serving().path.read_bytes() == model_bytes("3")
    assert [e["event"] for e in store.events].count("installed") == 3


def test_bundled_model_is_served_until_an_update(repo, server, root_bytes, tmp_path):
    bundled = tmp_path / "app.tflite"
    bundled.write_bytes(b"bundled")
    store = device(tmp_path / "dev", root_bytes, bundled=bundled, bundled_version="1")
    assert store.serving().source == "bundled"
    publish(repo, "1")
    with pytest.raises(E.RollbackError):  # not newer than what the app ships
        store.update(server.url)
    publish(repo, "2")
    assert store.update(server.url).version == "2"
    assert store.serving().source == "current"


def test_no_model_at_all(tmp_path, root_bytes):
    with pytest.raises(E.StoreError):
        device(tmp_path / "dev", root_bytes).serving()


def test_rollout_share_is_respected_and_growing_it_keeps_early_devices(
    repo, server, root_bytes, tmp_path
):
    publish(repo, "1", custom={"rollout": 30, "experiment": "det-1"})
    ids = [f"{i:032x}" for i in range(400)]
    inside = {i for i in ids if bucket("det-1", i) < 3000}
    assert 60 < len(inside) < 180
    for i in ids[:20]:
        s = device(tmp_path / f"d{i}", root_bytes, device_id=i)
        r = s.update(server.url)
        assert r.status == ("installed" if i in inside else "not_in_rollout")
        s.close()
    grown = {i for i in ids if bucket("det-1", i) < 6000}
    assert inside <= grown


def test_variants_install_different_targets(repo, server, root_bytes, tmp_path):
    (tmp_path / "q.tflite").write_bytes(model_bytes("2-int8"))
    repo.add_file(tmp_path / "q.tflite", "det/2-int8.tflite")
    publish(
        repo,
        "2",
        custom={
            "variants": {
                "float": {"share": 50},
                "int8": {"share": 50, "target": "det/2-int8.tflite"},
            }
        },
    )
    seen: Counter[str] = Counter()
    for i in range(12):
        did = f"{i:032x}"
        s = device(tmp_path / f"d{i}", root_bytes, device_id=did)
        r = s.update(server.url)
        seen[r.variant] += 1
        want = model_bytes("2-int8") if r.variant == "int8" else model_bytes("2")
        assert s.serving().path.read_bytes() == want
        assert s.serving().variant == r.variant
        # Deterministic and offline: a second store with the same id agrees.
        again = device(tmp_path / f"e{i}", root_bytes, device_id=did).update(server.url)
        assert again.variant == r.variant
        s.close()
    assert set(seen) == {"float", "int8"}


def test_incompatible_runtime_is_refused(repo, server, root_bytes, tmp_path):
    publish(repo, "1", custom={"min_runtime": "99.0"})
    store = device(tmp_path / "dev", root_bytes, runtime_version="2.3.0")
    with pytest.raises(E.IncompatibleError):
        store.update(server.url)
    publish(repo, "2", custom={"min_edgepipe": "0.1"})
    assert store.update(server.url).version == "2"


def test_oversized_target_is_refused_before_download(repo, server, root_bytes, tmp_path):
    publish(repo, "1", model_bytes("1", 200_000))
    store = device(tmp_path / "dev", root_bytes, max_model_bytes=100_000)
    with pytest.raises(E.IntegrityError, match="limit"):
        store.update(server.url)
    assert not any("targets/" in r for r in server.requests)


def test_malformed_edgepipe_fields_hide_only_that_target(repo, server, root_bytes, tmp_path):
    publish(repo, "1")
    publish(repo, "2")
    t = repo.staged_targets()
    t.signed.targets["det/2.tflite"].unrecognized_fields["custom"] = {
        "edgepipe": {"rollout": "x" * 10_000}
    }
    (repo.dir / "staged").mkdir(exist_ok=True)
    (repo.dir / "staged" / "targets.json").write_bytes(t.to_bytes())
    repo.publish()
    assert device(tmp_path / "dev", root_bytes).update(server.url).version == "1"


def test_corrupted_current_falls_back_to_previous(repo, server, root_bytes, tmp_path):
    store = device(tmp_path / "dev", root_bytes)
    for v in ("1", "2"):
        publish(repo, v)
        store.update(server.url)
    path = store.serving().path
    store.close()
    path.write_bytes(b"flipped bits")
    store = device(tmp_path / "dev", root_bytes)
    assert store.serving().version == Version("1")
    assert any(e["event"] == "verification_failed" for e in store.events)
    assert store.update(server.url).version == "2"  # re-installed, not marked bad


def test_leftovers_are_cleaned_on_open(repo, server, root_bytes, tmp_path):
    publish(repo, "1")
    store = device(tmp_path / "dev", root_bytes)
    store.update(server.url)
    store.close()
    (tmp_path / "dev" / "models" / "7-abc.tflite").write_bytes(b"orphan")
    (tmp_path / "dev" / "state.json.1234.tmp").write_bytes(b"half")
    (tmp_path / "dev" / "models" / "keepdir").mkdir()
    store = device(tmp_path / "dev", root_bytes)
    assert sorted(store.models.names()) == sorted([store.serving().path.name, "keepdir"])
    assert not (tmp_path / "dev" / "state.json.1234.tmp").exists()


def test_device_id_is_stable_and_root_required_for_updates(tmp_path):
    a = ModelStore(tmp_path / "dev", name="det")
    b = ModelStore(tmp_path / "dev", name="det")
    assert a.device_id == b.device_id and len(a.device_id) == 32
    with pytest.raises(E.UpdateError, match="root"):
        a.update("http://127.0.0.1:9")


def test_mark_bad_falls_back_and_is_remembered(repo, server, root_bytes, tmp_path):
    store = device(tmp_path / "dev", root_bytes)
    for v in ("1", "2"):
        publish(repo, v)
        store.update(server.url)
    assert store.rollback("bad outputs").version.text == "1"
    assert "bad outputs" in store.bad_versions["2"]
    with pytest.raises(E.RollbackError, match="marked bad"):
        store.update(server.url)
    publish(repo, "3")
    assert store.update(server.url).version == "3"


def test_interrupted_download_resumes_with_a_range_request(repo, server, root_bytes, tmp_path):
    data = publish(repo, "1", model_bytes("1", 500_000))
    sha = repo.load("targets").signed.targets["det/1.tflite"].hashes["sha256"]
    url_path = f"/targets/det/{sha}.1.tflite"
    server.modes[url_path] = "truncate_once"
    store = device(tmp_path / "dev", root_bytes)
    with pytest.raises(E.DownloadError):
        store.update(server.url)
    kept = (store.dir / "downloads" / f"{sha}.partial").stat().st_size
    assert 0 < kept < len(data)
    r = store.update(server.url)
    assert r.status == "installed"
    assert server.ranges == [(url_path, kept)]
    assert store.serving().path.read_bytes() == data
    assert store.downloads.names() == []


def test_a_stale_partial_with_wrong_bytes_is_caught_and_discarded(
    repo, server, root_bytes, tmp_path
):
    data = publish(repo, "1", model_bytes("1", 200_000))
    sha = repo.load("targets").signed.targets["det/1.tflite"].hashes["sha256"]
    store = device(tmp_path / "dev", root_bytes)
    (store.dir / "downloads" / f"{sha}.partial").write_bytes(b"x" * 1000)
    with pytest.raises(E.IntegrityError):
        store.update(server.url)
    assert store.downloads.names() == []
    assert store.update(server.url).status == "installed"
    assert store.serving().path.read_bytes() == data
