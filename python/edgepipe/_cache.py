"""Cache locations (XNNPACK weight caches, accelerator decisions)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def cache_dir() -> Path:
    """Root of edgepipe's caches: ``EDGEPIPE_CACHE_DIR`` or the user cache dir."""
    override = os.environ.get("EDGEPIPE_CACHE_DIR")
    root = Path(override) if override else Path(platformdirs.user_cache_dir("edgepipe"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def weight_cache_path(model_sha256: str, runtime_version: str) -> Path:
    """The XNNPACK weight-cache file for one model under one runtime version.

    Instances that name the same file share its packed weights through one
    file mapping; the runtime version is part of the name because packing
    may change between releases.
    """
    folder = cache_dir() / "xnnpack"
    folder.mkdir(parents=True, exist_ok=True)
    safe_version = "".join(c if c.isalnum() or c in ".-" else "_" for c in runtime_version)
    return folder / f"{model_sha256[:40]}-litert{safe_version}.xnnpack_cache"
