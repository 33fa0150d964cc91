"""Helpers shared by the OTA tests (a uniquely named module: the repository has
another ``conftest``, so tests must not import from ``conftest`` by name)."""

from __future__ import annotations

import hashlib
import pathlib
from typing import Any

from edgepipe.ota.fetcher import BoundedFetcher
from edgepipe.ota.store import ModelStore


def model_bytes(version: str, size: int = 40_000) -> bytes:
    """Deterministic fake model content (the store never parses models)."""
    seed = hashlib.sha256(f"model-{version}".encode()).digest()
    out = bytearray()
    while len(out) < size:
        seed = hashlib.sha256(seed).digest()
        out += seed
    return bytes(out[:size])


def publish(
    repo,
    version: str,
    data: bytes | None = None,
    *,
    name: str = "det",
    custom: dict[str, Any] | None = None,
    tmp: pathlib.Path | None = None,
) -> bytes:
    """Add ``<name>/<version>.tflite`` with ``data`` and publish; returns the bytes."""
    data = model_bytes(version) if data is None else data
    d = tmp or (repo.dir / "incoming")
    d.mkdir(parents=True, exist_ok=True)
    f = d / f"{name}-{version}.tflite"
    f.write_bytes(data)
    repo.add(f, name, version, custom)
    repo.publish()
    return data


def device(path: pathlib.Path, root: bytes, **kw: Any) -> ModelStore:
    """A device store trusting ``root``, with short network limits for tests."""
    kw.setdefault("fetcher", BoundedFetcher(deadline_s=5.0, max_bytes=8 << 20))
    kw.setdefault("edgepipe_version", "0.1.0")
    return ModelStore(path, name=kw.pop("name", "det"), root=root, **kw)


def tree(path: pathlib.Path) -> list[str]:
    """Every file under ``path``, relative, sorted (for 'nothing left over' checks)."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
