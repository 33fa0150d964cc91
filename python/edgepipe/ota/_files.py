"""File helpers shared by the OTA store, downloader and CLI."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

log = logging.getLogger("edgepipe.ota")


def hash_file(path: Path) -> tuple[str, int]:
    """Hex SHA-256 and size of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


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
