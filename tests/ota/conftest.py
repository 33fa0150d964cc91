"""Fixtures of the OTA tests: keys, a real HTTP server on 127.0.0.1, publishing helpers."""

from __future__ import annotations

import importlib
import pathlib
import sys
from collections.abc import Iterator

import pytest

_HERE = pathlib.Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))
importlib.import_module("ota_bootstrap").ensure_importable()

from edgepipe.ota import keys as ota_keys  # noqa: E402
from ota_helpers import make_manifest, model_bytes  # noqa: E402
from ota_httpserver import ModelServer  # noqa: E402


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


