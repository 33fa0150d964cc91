"""Fixtures for the pytest-benchmark tests: models, inputs, edgepipe and peers.

Run with ``pytest benchmarks --benchmark-enable --benchmark-json=out.json``. The
project's ``addopts`` disable benchmarking by default, so a plain ``pytest benchmarks``
runs each benchmark once as a smoke test. ``tests/`` is the suite's ``testpaths``:
a bare ``pytest`` never collects these.
"""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import benchlib

#: One model per size class (see benchlib.MODEL_ROLES).
BENCH_MODELS = (
    "add_mul",
    "face_detection_short_range",
    "face_detection_full_range",
    "face_landmark",
    "weight_heavy",
)


@pytest.fixture(scope="session")
def edgepipe() -> Any:
    """The edgepipe package (installed, on PYTHONPATH, or from the source tree)."""
    return benchlib.import_edgepipe()


@pytest.fixture(scope="session", autouse=True)
def _private_weight_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Weight-cache files in a temp dir, not in the user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGEPIPE_CACHE_DIR", str(tmp_path_factory.mktemp("edgepipe-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session", params=BENCH_MODELS)
def model_path(request: pytest.FixtureRequest) -> pathlib.Path:
    """Path of one benchmark model (parametrized over tiny, mid, large, weight-heavy)."""
    name = request.param
    try:
        return benchlib.resolve_models([name])[name]
    except benchlib.import_fixtures().FixtureError as exc:
        pytest.skip(f"model {name} unavailable: {exc}")


@pytest.fixture(scope="session")
def model(edgepipe: Any, model_path: pathlib.Path) -> Any:
    """The ``edgepipe.Model`` of ``model_path``."""
    return edgepipe.Model.load(model_path)


@pytest.fixture(scope="session")
def inputs(model: Any) -> dict[str, Any]:
    """Deterministic random inputs for ``model``."""
    return benchlib.edgepipe_inputs(model)


@pytest.fixture(scope="session")
def interpreter_peer(model_path: pathlib.Path) -> benchlib.InterpreterPeer:
    """One ``ai_edge_litert`` Interpreter (1 thread) on the same model."""
    return benchlib.InterpreterPeer(model_path)


@pytest.fixture(scope="session")
def compiled_model_peer(model_path: pathlib.Path) -> benchlib.CompiledModelPeer:
    """One ``ai_edge_litert`` CompiledModel (CPU, 1 thread) on the same model."""
    return benchlib.CompiledModelPeer(model_path)
