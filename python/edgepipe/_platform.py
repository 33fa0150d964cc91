"""Which platforms edgepipe supports, and the one place that imports what only some have.

Supported and tested: Linux x86_64 and aarch64 (glibc). macOS arm64 is
*untested*: the ai-edge-litert wheel ships ``libLiteRt.dylib`` there and
edgepipe looks for it, but no CI runs it. Anywhere else ``import edgepipe``
still works; the first call that needs something this platform lacks raises
:class:`~edgepipe.errors.PlatformError` saying what and why.
"""

from __future__ import annotations

import importlib
import platform
import sys
from types import ModuleType

from .errors import PlatformError

#: (``platform.system()``, ``platform.machine()``) pairs that CI builds and tests.
TESTED = frozenset({("Linux", "x86_64"), ("Linux", "aarch64")})
#: Pairs that should work but that no CI runs.
UNTESTED = frozenset({("Darwin", "arm64")})


def here() -> tuple[str, str]:
    """This machine's (system, machine), e.g. ``("Linux", "x86_64")``."""
    return platform.system(), platform.machine()


def support_note() -> str:
    """One sentence: what is supported, and where this machine stands."""
    system, machine = here()
    if (system, machine) in TESTED:
        status = "supported and tested"
    elif (system, machine) in UNTESTED:
        status = "expected to work but untested"
    else:
        status = "not supported"
    return (
        f"edgepipe supports Linux x86_64 and aarch64 (tested) and macOS arm64 "
        f"(untested); this machine ({system} {machine}) is {status}."
    )


def runtime_library_name() -> str:
    """File name of the LiteRT runtime library on this platform."""
    return "libLiteRt.dylib" if sys.platform == "darwin" else "libLiteRt.so"


def need(module: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature``, or say that this platform cannot do it.

    Raises:
        PlatformError: ``module`` does not exist here (e.g. ``fcntl`` on Windows).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise PlatformError(
            f"{feature} needs the {module!r} module, which this platform lacks. " + support_note()
        ) from exc
