"""Checks of public arguments: each failure is an :class:`~edgepipe.errors.InputError`
(a ``ValueError``) that names the argument and says what it takes.

Layer: just above the errors; used by every public entry point.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import InputError

#: Upper bounds that keep a typo from starting thousands of OS threads.
MAX_WORKERS = 256
MAX_THREADS = 256
MAX_QUEUE_SIZE = 1 << 20
#: Most requests one dynamic batch may hold (the core's kMaxBatch).
MAX_BATCH = 1024
#: Timeouts at or above this many seconds (about 31 years) mean "wait forever".
FOREVER_S = 1e9


def integer(name: str, value: Any, *, low: int, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]``; bools and floats are refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name} must be an integer, not {type(value).__name__} {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise InputError(f"{name} must be {bound}, got {value}")
    return int(value)


def optional_integer(name: str, value: Any, *, low: int, high: int | None = None) -> int | None:
    """Like :func:`integer`, but None passes through."""
    return None if value is None else integer(name, value, low=low, high=high)


def boolean(name: str, value: Any) -> bool:
    """``value`` if it is True or False."""
    if not isinstance(value, bool):
        raise InputError(f"{name} must be True or False, not {value!r}")
    return value


def choice(name: str, value: Any, allowed: Iterable[str]) -> str:
    """``value`` if it is one of ``allowed``."""
    options = tuple(allowed)
    if not isinstance(value, str) or value not in options:
        raise InputError(f"{name} must be one of {', '.join(options)}; got {value!r}")
    return value


def optional_str(name: str, value: Any) -> str | None:
    """``value`` if it is a string or None."""
    if value is not None and not isinstance(value, str):
        raise InputError(f"{name} must be a string or None, not {type(value).__name__}")
    return value


def timeout(name: str, value: Any) -> float:
    """Seconds for the core: ``-1.0`` for None (no limit), else a finite value >= 0.

    ``math.inf`` and values of :data:`FOREVER_S` or more mean "wait forever"
    (``-1.0``). NaN, negative values and non-numbers are refused.
    """
    if value is None:
        return -1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(
            f"{name} must be a number of seconds or None, not {type(value).__name__} {value!r}"
        )
    seconds = float(value)
    if math.isnan(seconds):
        raise InputError(f"{name} must be a number of seconds or None, not NaN")
    if seconds < 0:
        raise InputError(f"{name} must be >= 0 seconds (or None for no limit), got {value}")
    return -1.0 if seconds >= FOREVER_S else seconds


def seconds(name: str, value: Any) -> float:
    """A finite number of seconds >= 0 (None, NaN, inf and negatives are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(
            f"{name} must be a number of seconds, not {type(value).__name__} {value!r}"
        )
    result = float(value)
    if not math.isfinite(result) or result < 0:
        raise InputError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return result


def path(name: str, value: Any) -> Path:
    """``value`` as a Path if it is a ``str`` or ``os.PathLike`` of one."""
    if isinstance(value, str) or (
        isinstance(value, os.PathLike) and isinstance(os.fspath(value), str)
    ):
        return Path(value)
    raise InputError(f"{name} must be a file path (str or os.PathLike), not {type(value).__name__}")


def names(name: str, value: Any) -> list[str]:
    """A list of strings: one string is refused (it would be iterated by character)."""
    if (
        isinstance(value, str)
        or not isinstance(value, (list, tuple))
        or not all(isinstance(v, str) for v in value)
    ):
        raise InputError(f"{name} must be a list of strings, not {value!r}")
    return list(value)


def weight_cache(name: str, value: Any) -> bool | str | os.PathLike[str]:
    """``True``, ``False``/None or a path."""
    if value is None:
        return False
    if isinstance(value, (bool, str, os.PathLike)):
        if isinstance(value, str) and not value:
            raise InputError(f"{name} must be True, False or a file path, not ''")
        return value
    raise InputError(f"{name} must be True, False or a file path, not {type(value).__name__}")
