"""Finding and loading the LiteRT runtime, and describing it.

The search order is: an explicit library path (argument or the
``EDGEPIPE_LITERT_LIBRARY`` environment variable), the installed
``ai_edge_litert`` package folder, then the system loader.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import threading
from pathlib import Path

from . import _core, errors
from .errors import EdgepipeError, InputError

#: The core's error kinds (``kind`` of a pool callback) and the class each
#: becomes, from the C++ table the binding exposes (one source).
ERROR_BY_KIND: dict[str, type[EdgepipeError]] = {
    kind: getattr(errors, name) for kind, name in _core.ERROR_KINDS.items()
}


def error_for_kind(kind: str, message: str) -> EdgepipeError:
    """The typed exception for a core error ``kind`` (unknown kinds: EdgepipeError)."""
    return ERROR_BY_KIND.get(kind, EdgepipeError)(message)


#: ``EDGEPIPE_LOG_LEVEL`` names and LiteRT's severities.
LOG_LEVELS = {"debug": -1, "verbose": 0, "info": 1, "warning": 2, "error": 3, "silent": 4}
_lock = threading.Lock()
_default: _core.Runtime | None = None


def _package_dir() -> str | None:
    # find_spec locates the package without importing it: importing
    # ai_edge_litert pulls in its Python wrappers, which edgepipe does not use.
    spec = importlib.util.find_spec("ai_edge_litert")
    if spec is None or not spec.submodule_search_locations:
        return None
    return next(iter(spec.submodule_search_locations))


def log_level_name() -> str:
    """``EDGEPIPE_LOG_LEVEL`` (default ``error``), checked.

    Raises:
        InputError: the variable holds an unknown level.
    """
    raw = os.environ.get("EDGEPIPE_LOG_LEVEL", "error")
    name = raw.strip().lower()
    if name not in LOG_LEVELS:
        raise InputError(
            f"EDGEPIPE_LOG_LEVEL={raw!r} is not a log level; use one of {', '.join(LOG_LEVELS)}"
        )
    return name


def load_runtime(library: str | os.PathLike[str] | None = None) -> _core.Runtime:
    """Return the LiteRT runtime, loading it on first use.

    Args:
        library: explicit path of ``libLiteRt.so``; overrides the search.

    Raises:
        RuntimeLoadError: the library or one of its symbols is missing; the
            message lists every place tried and how to fix it.
    """
    global _default
    if library is not None and not isinstance(library, (str, os.PathLike)):
        raise InputError(f"library must be a file path, not {type(library).__name__}")
    with _lock:
        if library is None and _default is not None:
            return _default
        search = [d for d in [_package_dir()] if d]
        rt = _core.Runtime.load(
            str(library) if library else "", search, log_severity=LOG_LEVELS[log_level_name()]
        )
        if library is None:
            _default = rt
        return rt


def runtime_version(rt: _core.Runtime | None = None) -> str:
    """Version of the loaded runtime: the ai-edge-litert release that ships it.

    The LiteRT C API has no version call, so the version is that of the
    Python distribution whose folder holds the library; ``unknown`` for a
    library loaded from elsewhere.
    """
    rt = rt or load_runtime()
    pkg = _package_dir()
    if pkg and Path(rt.library_dir).resolve() == Path(pkg).resolve():
        try:
            return importlib.metadata.version("ai-edge-litert")
        except importlib.metadata.PackageNotFoundError:
            return "unknown"
    return "unknown"


def runtime_info() -> dict[str, object]:
    """Describe the loaded runtime: library path, version, log level, gaps."""
    rt = load_runtime()
    return {
        "library": rt.library_path,
        "version": runtime_version(rt),
        "log_severity": rt.log_severity,
        "missing_optional_symbols": list(rt.missing_optional_symbols),
    }
