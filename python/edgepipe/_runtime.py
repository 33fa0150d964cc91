"""Finding and loading the LiteRT runtime, and describing it.

The search order is: an explicit library path (argument or the
``EDGEPIPE_LITERT_LIBRARY`` environment variable), the installed
``ai_edge_litert`` package folder, then the system loader. On macOS (untested)
the package folder's ``libLiteRt.dylib`` is used.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import threading
from pathlib import Path

from . import _core, _platform
from .errors import RuntimeLoadError

_LOG_LEVELS = {"debug": -1, "verbose": 0, "info": 1, "warning": 2, "error": 3, "silent": 4}
_lock = threading.Lock()
_default: _core.Runtime | None = None


def _package_dir() -> str | None:
    # find_spec locates the package without importing it: importing
    # ai_edge_litert pulls in its Python wrappers, which edgepipe does not use.
    spec = importlib.util.find_spec("ai_edge_litert")
    if spec is None or not spec.submodule_search_locations:
        return None
    return next(iter(spec.submodule_search_locations))


def _log_severity() -> int:
    name = os.environ.get("EDGEPIPE_LOG_LEVEL", "error").strip().lower()
    if name not in _LOG_LEVELS:
        raise ValueError(
            f"EDGEPIPE_LOG_LEVEL={name!r} is not one of {', '.join(_LOG_LEVELS)}"
        )
    return _LOG_LEVELS[name]


def load_runtime(library: str | os.PathLike[str] | None = None) -> _core.Runtime:
    """Return the LiteRT runtime, loading it on first use.

    Args:
        library: explicit path of ``libLiteRt.so``; overrides the search.

    Raises:
        RuntimeLoadError: the library or one of its symbols is missing; the
            message lists every place tried and how to fix it.
    """
    global _default
    with _lock:
        if library is None and _default is not None:
            return _default
        search = [d for d in [_package_dir()] if d]
        path = str(library) if library else ""
        name = _platform.runtime_library_name()
        if (not path and name != "libLiteRt.so" and search
                and not os.environ.get("EDGEPIPE_LITERT_LIBRARY")):
            # The core searches folders for libLiteRt.so only.
            candidate = Path(search[0], name)
            path = str(candidate) if candidate.is_file() else ""
        try:
            rt = _core.Runtime.load(path, search, log_severity=_log_severity())
        except RuntimeLoadError as exc:
            if _platform.here() in _platform.TESTED:
                raise
            raise RuntimeLoadError(f"{exc}\n{_platform.support_note()}") from exc
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
