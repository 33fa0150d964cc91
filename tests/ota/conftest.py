"""Fixtures of the OTA tests: keys, a real HTTP server on 127.0.0.1, publishing helpers."""

from __future__ import annotations

import hashlib
import importlib
import os
import pathlib
import sys
from collections.abc import Iterator

import pytest

_HERE = pathlib.Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))
importlib.import_module("_bootstrap").ensure_importable()

from edgepipe.ota import keys as ota_keys  # noqa: E402
from edgepipe.ota import manifest as ota_manifest  # noqa: E402
from httpserver import ModelServer  # noqa: E402


@pytest.fixture(scope="session")
def signing_key():
    """The publisher's private key."""
    return ota_keys.generate_private_key()


@pytest.fixture(scope="session")
def public_key(signing_key):
    return signing_key.public_key()


@pytest.fixture(scope="session")
def other_key():
    """A valid key nobody trusts."""
    return ota_keys.generate_private_key()


@pytest.fixture
def server() -> Iterator[ModelServer]:
    srv = ModelServer()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


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


@pytest.fixture
def publish(server, signing_key):
    """Publish ``(version, data)`` on the server; returns the manifest URL."""

    def _publish(version: str, data: bytes | None = None, *, name: str = "det",
                 key=None, mode: str = "ok", **kw) -> str:
        data = model_bytes(version) if data is None else data
        fname = f"{name}-{version}.tflite"
        server.files[f"/{fname}"] = data
        server.modes[f"/{fname}"] = mode
        server.files[f"/{name}.json"] = make_manifest(
            key or signing_key, name, version, data, file=fname, **kw)
        return server.url(f"/{name}.json")

    return _publish


def tree(path: pathlib.Path) -> list[str]:
    """Every file under ``path``, relative, sorted (for 'nothing left over' checks)."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


os.environ.setdefault("EDGEPIPE_OTA_TESTS", "1")
