"""Paths and files: where edgepipe keeps its caches, durable writes, hashing.

The layer under the model: it knows nothing about models or the runtime.
Used by the weight cache, the accelerator records (crash marks, denylist,
auto decisions), the OTA store, downloader and CLI.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from pathlib import Path

import platformdirs

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Root of edgepipe's caches: ``EDGEPIPE_CACHE_DIR`` or the user cache dir (created)."""
    override = os.environ.get("EDGEPIPE_CACHE_DIR")
    root = Path(override) if override else Path(platformdirs.user_cache_dir("edgepipe"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new content, never a part.

    The data goes to a uniquely named temp file beside ``path``, is fsynced,
    moved over ``path`` with ``os.replace``, and the directory is fsynced, so
    the new content survives a power cut once this returns. The temp file is
    removed if anything fails. ``str`` data is written as UTF-8.
    """
    target = Path(path)
    blob = data.encode() if isinstance(data, str) else data
    tmp = target.with_name(f"{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, mode)
        try:
            view = memoryview(blob)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        unlink_logged(tmp)
        raise
    fsync_dir(target.parent)


def hash_fd(fd: int) -> tuple[str, int]:
    """Hex SHA-256 and size of an open file, read with ``pread`` in 1 MiB blocks.

    ``pread`` leaves the file offset alone, so the fd can be handed on as is.
    """
    h = hashlib.sha256()
    size = 0
    while block := os.pread(fd, 1 << 20, size):
        h.update(block)
        size += len(block)
    return h.hexdigest(), size


def hash_file(path: Path) -> tuple[str, int]:
    """Hex SHA-256 and size of a file."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        return hash_fd(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink inside ``path`` durable."""
    if os.name != "posix":  # pragma: no cover - directories cannot be fsynced elsewhere
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unlink_logged(path: Path) -> None:
    """Remove a file if present; a failure is logged, not raised (cleanup paths)."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as e:
        log.warning("could not remove %s: %s", path, e)
