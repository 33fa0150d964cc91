"""Retrieval of manifests and model files over HTTP(S) or from local paths.

Model downloads are bounded by the size the signed manifest declares, hashed
while streaming, and resumable: the bytes received so far live in a partial
file, and the next attempt asks the server for the rest with an HTTP Range
request. Nothing here trusts the server: more bytes than declared, a wrong
Content-Range, a stall or a wrong hash all end the download with an error.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

import httpx

from .._files import unlink_logged
from .errors import DownloadError, IntegrityError, StoreError

log = logging.getLogger(__name__)

Source = str | os.PathLike
"""An ``http://`` or ``https://`` URL, a ``file://`` URL, or a local path."""

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(bytes_done, bytes_total)`` as a download advances."""

Opener = Callable[[Path, str], IO[bytes]]
"""Opens a file for writing (``"wb"`` or ``"ab"``); injectable for fault tests."""

CHUNK_SIZE = 64 * 1024
DEFAULT_TIMEOUT = 30.0


def default_opener(path: Path, mode: str) -> IO[bytes]:
    """Open ``path`` with the built-in :func:`open`."""
    return open(path, mode)  # the caller owns and closes the file


def is_url(source: Source) -> bool:
    """True if ``source`` is an http(s) URL."""
    return isinstance(source, str) and urlsplit(source).scheme in ("http", "https")


def _local_path(source: Source) -> Path:
    if isinstance(source, str):
        parts = urlsplit(source)
        if parts.scheme == "file":
            return Path(parts.path)
        if parts.scheme and len(parts.scheme) > 1:
            # One-letter schemes are Windows drive letters, not URLs.
            raise DownloadError(f"unsupported URL scheme {parts.scheme!r} in {source!r}")
    return Path(source)


def resolve(base: Source, file_name: str) -> Source:
    """Locate a model file named in a manifest relative to where the manifest came from."""
    if is_url(base):
        return urljoin(str(base), file_name)
    return _local_path(base).parent / file_name


def _timeout(timeout: float) -> httpx.Timeout:
    return httpx.Timeout(timeout, connect=min(timeout, 10.0))


def make_client(timeout: float = DEFAULT_TIMEOUT) -> httpx.Client:
    """An httpx client with a per-read timeout, so a stalled server is noticed."""
    return httpx.Client(
        timeout=_timeout(timeout),
        follow_redirects=True,
        headers={"Accept-Encoding": "identity"},
    )


def fetch_bytes(
    source: Source,
    *,
    max_bytes: int,
    client: httpx.Client | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> bytes:
    """Fetch a small document (a manifest), refusing more than ``max_bytes``."""
    if not is_url(source):
        path = _local_path(source)
        try:
            with open(path, "rb") as f:
                data = f.read(max_bytes + 1)
        except OSError as e:
            raise DownloadError(f"cannot read {path}: {e.strerror or e}") from e
        if len(data) > max_bytes:
            raise DownloadError(f"{path} is larger than {max_bytes} bytes")
        return data
    own = client is None
    c = make_client(timeout) if own else client
    try:
        with c.stream("GET", str(source), timeout=_timeout(timeout)) as r:
            if r.status_code != 200:
                raise DownloadError(f"GET {source}: HTTP {r.status_code}")
            buf = bytearray()
            for chunk in r.iter_bytes():
                buf += chunk
                if len(buf) > max_bytes:
                    raise DownloadError(f"{source} sent more than {max_bytes} bytes")
            return bytes(buf)
    except httpx.HTTPError as e:
        raise DownloadError(f"GET {source}: {type(e).__name__}: {e}") from e
    finally:
        if own:
            c.close()


class _Progress:
    """Adapts a callback, a tqdm bar (``progress=True``) or nothing."""

    def __init__(self, progress: ProgressCallback | bool | None, total: int, label: str) -> None:
        self._cb: ProgressCallback | None = None
        self._bar: Any = None
        if callable(progress):
            self._cb = progress
        elif progress:
            try:
                from tqdm import tqdm
            except ImportError:
                log.warning("progress=True needs tqdm; downloading without a progress bar")
            else:
                self._bar = tqdm(total=total, unit="B", unit_scale=True, desc=label)

    def update(self, done: int, total: int) -> None:
        if self._cb is not None:
            self._cb(done, total)
        if self._bar is not None:
            self._bar.n = done
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def download(
    source: Source,
    partial: Path,
    *,
    size: int,
    sha256: str,
    client: httpx.Client | None = None,
    progress: ProgressCallback | bool | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_seconds: float | None = None,
    opener: Opener = default_opener,
    chunk_size: int = CHUNK_SIZE,
) -> Path:
    """Download ``source`` into ``partial`` and verify it; return ``partial``.

    If ``partial`` already holds a prefix of the file, only the rest is
    requested (HTTP Range). On return the file holds exactly ``size`` bytes
    whose sha256 is ``sha256`` and has been fsynced.

    Raises:
        IntegrityError: the server sent more bytes than ``size``, or the
            sha256 does not match. The partial file is deleted.
        DownloadError: network error, HTTP error, stall (``timeout`` per read,
            ``max_seconds`` overall) or a truncated body. The partial file is
            kept so the next attempt can resume.
        StoreError: writing the partial file failed (full disk, I/O error).
            The partial file is deleted to give the space back.
    """
    hasher, have = _hash_prefix(partial, size)
    prog = _Progress(progress, size, partial.name)
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    try:
        if is_url(source):
            have = _download_http(
                str(source), partial, have, hasher, size, client, timeout, deadline,
                opener, prog,
            )
        else:
            have = _copy_local(_local_path(source), partial, have, hasher, size, deadline,
                               opener, prog, chunk_size)
    finally:
        prog.close()
    if have < size:
        raise DownloadError(f"download truncated: got {have} of {size} bytes (will resume)")
    if hasher.hexdigest() != sha256:
        unlink_logged(partial)
        raise IntegrityError(
            f"sha256 mismatch: expected {sha256}, got {hasher.hexdigest()} (file discarded)"
        )
    return partial


class _Hasher:
    """A sha256 that can be restarted when the server makes us start over."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def reset(self) -> None:
        self._h = hashlib.sha256()

    def update(self, data: bytes) -> None:
        self._h.update(data)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def _hash_prefix(partial: Path, size: int) -> tuple[_Hasher, int]:
    """Hash what an earlier attempt left, so the final digest covers every byte."""
    hasher = _Hasher()
    try:
        have = partial.stat().st_size
    except FileNotFoundError:
        return hasher, 0
    if have > size:
        # Cannot be a prefix of the right file; start over.
        unlink_logged(partial)
        return hasher, 0
    with open(partial, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            hasher.update(block)
    return hasher, have


def _download_http(
    url: str, partial: Path, have: int, hasher: _Hasher, size: int,
    client: httpx.Client | None, timeout: float, deadline: float | None,
    opener: Opener, prog: _Progress,
) -> int:
    own = client is None
    c = make_client(timeout) if own else client
    try:
        for _attempt in range(2):
            headers = {"Accept-Encoding": "identity"}
            if 0 < have < size:
                headers["Range"] = f"bytes={have}-"
            elif have == size:
                return have  # complete from an earlier attempt; the caller checks the hash
            with c.stream("GET", url, headers=headers, timeout=_timeout(timeout)) as r:
                if r.status_code == 416 and have:
                    # The server's file is shorter than our prefix: our prefix is stale.
                    unlink_logged(partial)
                    hasher.reset()
                    have = 0
                    continue
                if r.status_code == 206 and have:
                    _check_content_range(r.headers.get("content-range"), have, size)
                    mode = "ab"
                elif r.status_code == 200:
                    if have:
                        log.info("server ignored Range for %s; restarting from byte 0", url)
                    hasher.reset()
                    have = 0
                    mode = "wb"
                else:
                    raise DownloadError(f"GET {url}: HTTP {r.status_code}")
                declared = r.headers.get("content-length")
                if declared is not None and declared.isdigit() and have + int(declared) > size:
                    if mode == "wb":
                        unlink_logged(partial)
                    raise IntegrityError(
                        f"server announces {have + int(declared)} bytes, manifest says {size}"
                    )
                return _stream_into(r.iter_bytes(), partial, mode, have, hasher, size,
                                    deadline, opener, prog)
        raise DownloadError(f"GET {url}: could not resume or restart")
    except httpx.TimeoutException as e:
        raise DownloadError(f"GET {url}: stalled ({type(e).__name__}), will resume") from e
    except httpx.TransportError as e:
        raise DownloadError(f"GET {url}: {type(e).__name__}: {e} (will resume)") from e
    except httpx.HTTPError as e:
        raise DownloadError(f"GET {url}: {type(e).__name__}: {e}") from e
    finally:
        if own:
            c.close()


def _check_content_range(value: str | None, have: int, size: int) -> None:
    # Appending bytes that start anywhere but where our prefix ends would
    # splice two files together; the final hash would catch it, but late.
    expected = f"bytes {have}-"
    if value is None or not value.startswith(expected):
        raise DownloadError(f"bad Content-Range {value!r} for a resume at byte {have}")
    total = value.rpartition("/")[2]
    if total != "*" and total != str(size):
        raise IntegrityError(f"server's file has {total} bytes, manifest says {size}")


def _copy_local(
    path: Path, partial: Path, have: int, hasher: _Hasher, size: int, deadline: float | None,
    opener: Opener, prog: _Progress, chunk_size: int,
) -> int:
    try:
        f = open(path, "rb")
    except OSError as e:
        raise DownloadError(f"cannot read {path}: {e.strerror or e}") from e
    with f:
        f.seek(have)
        mode = "ab" if have else "wb"
        return _stream_into(iter(lambda: f.read(chunk_size), b""), partial, mode, have,
                            hasher, size, deadline, opener, prog)


def _stream_into(
    chunks: Any, partial: Path, mode: str, have: int, hasher: _Hasher, size: int,
    deadline: float | None, opener: Opener, prog: _Progress,
) -> int:
    try:
        out = opener(partial, mode)
    except OSError as e:
        raise StoreError(f"cannot write {partial}: {e.strerror or e}") from e
    failed = True
    try:
        prog.update(have, size)
        for chunk in chunks:
            if have + len(chunk) > size:
                raise IntegrityError(
                    f"source sent more than the {size} bytes the manifest declares"
                )
            try:
                out.write(chunk)
            except OSError as e:
                raise StoreError(f"writing {partial} failed: {e.strerror or e}") from e
            hasher.update(chunk)
            have += len(chunk)
            prog.update(have, size)
            if deadline is not None and time.monotonic() > deadline:
                # Too slow overall even if each read met its timeout (slow retrieval).
                _flush(out, partial)
                failed = False
                raise DownloadError(f"download exceeded its time limit at {have} of {size} bytes")
        _flush(out, partial)
        failed = False
        return have
    except (IntegrityError, StoreError):
        _close_quietly(out)
        unlink_logged(partial)
        raise
    finally:
        if failed:
            # A network error mid-stream: keep what was written so we can resume.
            _close_quietly(out)
        else:
            out.close()


def _flush(out: IO[bytes], partial: Path) -> None:
    try:
        out.flush()
        os.fsync(out.fileno())
    except OSError as e:
        raise StoreError(f"writing {partial} failed: {e.strerror or e}") from e


def _close_quietly(out: IO[bytes]) -> None:
    try:
        out.close()
    except OSError as e:
        # Already failing; the original error is the one worth reporting.
        log.debug("closing partial file after an error failed too: %s", e)

