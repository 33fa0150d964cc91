"""Make ``edgepipe.errors`` and ``edgepipe.ota`` importable before the core is built.

``edgepipe/__init__.py`` imports the compiled ``_core``; until it is built, a
bare package module pointing at ``python/edgepipe`` is registered instead, so
the pure-Python subpackages import normally. Used by the conftest and by the
child processes the tests start.
"""

from __future__ import annotations

import importlib
import pathlib
import sys
import types

PYTHON_DIR = pathlib.Path(__file__).resolve().parents[2] / "python"


def ensure_importable() -> None:
    """Import edgepipe for real if possible, else register a bare package."""
    # The installed package comes first: putting the source tree on sys.path
    # unconditionally would shadow it (it has no compiled _core), in this
    # process and in every child process that inherits sys.path.
    try:
        importlib.import_module("edgepipe")
        return
    except ImportError:
        for name in [m for m in sys.modules if m == "edgepipe" or m.startswith("edgepipe.")]:
            del sys.modules[name]
    if str(PYTHON_DIR) not in sys.path:
        sys.path.insert(0, str(PYTHON_DIR))
    try:
        importlib.import_module("edgepipe.errors")
        return
    except ImportError:
        # The real package failed (no compiled core yet); drop its remains.
        for name in [m for m in sys.modules if m == "edgepipe" or m.startswith("edgepipe.")]:
            del sys.modules[name]
    pkg = types.ModuleType("edgepipe")
    pkg.__path__ = [str(PYTHON_DIR / "edgepipe")]
    pkg.__file__ = str(PYTHON_DIR / "edgepipe" / "__init__.py")
    sys.modules["edgepipe"] = pkg
    importlib.import_module("edgepipe.errors")


def bare() -> None:
    """Register a bare ``edgepipe`` package without importing its ``__init__`` (numpy,
    the compiled core): child processes that only use the store start in a fraction
    of the time."""
    if "edgepipe" in sys.modules:
        return
    import importlib.util

    spec = importlib.util.find_spec("edgepipe")
    origin = (
        spec.origin
        if spec is not None and spec.origin
        else str(PYTHON_DIR / "edgepipe" / "__init__.py")
    )
    pkg = types.ModuleType("edgepipe")
    pkg.__path__ = [str(pathlib.Path(origin).parent)]
    pkg.__file__ = origin
    sys.modules["edgepipe"] = pkg
