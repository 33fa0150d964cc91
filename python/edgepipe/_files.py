"""File helpers for durable writes: the OTA store, downloader and CLI, the weight cache."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


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
