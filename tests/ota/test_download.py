"""Downloads against a real HTTP server: resume, size cap, stalls, wrong bytes."""

from __future__ import annotations

import hashlib

import pytest
from edgepipe.ota import errors as E
from edgepipe.ota.download import download, fetch_bytes
from ota_helpers import model_bytes

DATA = model_bytes("dl", 300_000)
SHA = hashlib.sha256(DATA).hexdigest()


def _serve(server, mode="ok"):
    server.files["/m.bin"] = DATA
    server.modes["/m.bin"] = mode
    return server.url("/m.bin")


def test_plain_download_with_progress(server, tmp_path):
    seen = []
    part = tmp_path / "m.partial"
    download(_serve(server), part, size=len(DATA), sha256=SHA,
             progress=lambda done, total: seen.append((done, total)))
    assert part.read_bytes() == DATA
    assert seen[0] == (0, len(DATA)) and seen[-1] == (len(DATA), len(DATA))


def test_progress_bar(server, tmp_path):
    download(_serve(server), tmp_path / "m.partial", size=len(DATA), sha256=SHA, progress=True)


def test_truncated_then_resumed_with_range(server, tmp_path):
    url = _serve(server, "truncate_once")
    part = tmp_path / "m.partial"
    with pytest.raises(E.DownloadError, match=r"will resume|truncated"):
        download(url, part, size=len(DATA), sha256=SHA)
    kept = part.stat().st_size
    assert 0 < kept < len(DATA)
    download(url, part, size=len(DATA), sha256=SHA)
    assert part.read_bytes() == DATA
    assert server.requests[-1] == ("/m.bin", f"bytes={kept}-")


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    part = tmp_path / "m.partial"
    part.write_bytes(DATA[:1000])
    download(_serve(server, "no_range"), part, size=len(DATA), sha256=SHA)
    assert part.read_bytes() == DATA


def test_wrong_content_range_is_refused(server, tmp_path):
    part = tmp_path / "m.partial"
    part.write_bytes(DATA[:1000])
    with pytest.raises(E.DownloadError, match="Content-Range"):
        download(_serve(server, "bad_range"), part, size=len(DATA), sha256=SHA)


def test_stale_partial_longer_than_file_is_dropped(server, tmp_path):
    part = tmp_path / "m.partial"
    part.write_bytes(b"x" * (len(DATA) + 5))
    download(_serve(server), part, size=len(DATA), sha256=SHA)
    assert part.read_bytes() == DATA


def test_garbage_partial_is_caught_by_hash(server, tmp_path):
    part = tmp_path / "m.partial"
    part.write_bytes(b"\1" * 1000)
    with pytest.raises(E.IntegrityError, match="sha256"):
        download(_serve(server), part, size=len(DATA), sha256=SHA)
    assert not part.exists()
    download(_serve(server), part, size=len(DATA), sha256=SHA)  # next attempt starts clean


def test_announced_extra_bytes_refused_before_reading(server, tmp_path):
    part = tmp_path / "m.partial"
    with pytest.raises(E.IntegrityError, match="announces"):
        download(_serve(server, "extra"), part, size=len(DATA), sha256=SHA)
    assert not part.exists()


def test_endless_data_is_cut_at_declared_size(server, tmp_path):
    part = tmp_path / "m.partial"
    with pytest.raises(E.IntegrityError, match="more than"):
        download(_serve(server, "endless"), part, size=len(DATA), sha256=SHA)
    assert not part.exists()


def test_stall_times_out(server, tmp_path):
    part = tmp_path / "m.partial"
    with pytest.raises(E.DownloadError, match="stalled"):
        download(_serve(server, "stall"), part, size=len(DATA), sha256=SHA, timeout=0.3)


def test_http_error_status(server, tmp_path):
    with pytest.raises(E.DownloadError, match="404"):
        download(server.url("/nope"), tmp_path / "p", size=1, sha256=SHA)


def test_manifest_fetch_is_capped(server, tmp_path):
    server.files["/big.json"] = b"{" * 100_000
    with pytest.raises(E.DownloadError, match="more than"):
        fetch_bytes(server.url("/big.json"), max_bytes=65536)
    (tmp_path / "big.json").write_bytes(b"{" * 100_000)
    with pytest.raises(E.DownloadError, match="larger"):
        fetch_bytes(tmp_path / "big.json", max_bytes=65536)


def test_unsupported_scheme(tmp_path):
    with pytest.raises(E.DownloadError, match="scheme"):
        download("ftp://example/x", tmp_path / "p", size=1, sha256=SHA)
