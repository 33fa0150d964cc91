"""Fixtures of the OTA tests: a real TUF repository, a real HTTP server on 127.0.0.1."""

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

pytest.importorskip("tuf", reason="edgepipe.ota needs python-tuf (pip install tuf)")

from edgepipe.ota.repo import Repository  # noqa: E402
from ota_httpserver import RepoServer  # noqa: E402


@pytest.fixture
def repo(tmp_path) -> Repository:
    """A fresh edgepipe-published TUF repository (one ed25519 key per role)."""
    return Repository.init(tmp_path / "repo")


@pytest.fixture
def server(repo) -> Iterator[RepoServer]:
    """The repository's ``public/`` folder served on 127.0.0.1."""
    srv = RepoServer(repo.dir / "public").start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def root_bytes(repo) -> bytes:
    """The trust anchor a device ships with: the repository's first root."""
    return (repo.meta_dir / "1.root.json").read_bytes()
