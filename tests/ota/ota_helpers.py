"""Helpers shared by the OTA tests (a uniquely named module: the repository has
another ``conftest``, so tests must not import from ``conftest`` by name)."""

from __future__ import annotations

import hashlib
import pathlib

from edgepipe.ota import manifest as ota_manifest


def model_bytes(version: str, size: int = 40_000) -> bytes:
    """Deterministic fake model content (the store never parses models)."""
    seed = hashlib.sha256(f"model-{version}".encode()).digest()
    out = bytearray()
    while len(out) < size:
        seed = hashlib.sha256(seed).digest()
        out += seed
    return bytes(out[:size])


def make_manifest(key, name: str, version: str, data: bytes, *, expires_in: int = 3600,
                  now: float | None = None, file: str | None = None, keys=None,
                  **kw) -> bytes:
    """Sign a manifest for ``data``."""
    signed = ota_manifest.build_signed(
        name=name, version=version, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
        file=f"{name}-{version}.tflite" if file is None else file,
        expires_in=expires_in, now=now, **kw,
    )
    return ota_manifest.sign_manifest(signed, keys or [key])


def tree(path: pathlib.Path) -> list[str]:
    """Every file under ``path``, relative, sorted (for 'nothing left over' checks)."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
