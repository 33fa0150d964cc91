"""Model versions and names as they appear in TUF target paths (``<name>/<version>.tflite``).

A version is 1 to 4 dot-separated decimal numbers of at most 9 digits each
(``3``, ``1.2``, ``2026.12.1``), compared numerically. The digit limit keeps a
hostile 5,000-digit "version" from costing more than a typed error.
"""

from __future__ import annotations

import functools
import re

from .errors import MetadataError

_VERSION_RE = re.compile(r"(0|[1-9][0-9]{0,8})(\.(0|[1-9][0-9]{0,8})){0,3}")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SUFFIX = ".tflite"


@functools.total_ordering
class Version:
    """A comparable model version; ``Version("1.10") > Version("1.9")``."""

    __slots__ = ("parts", "text")
    parts: tuple[int, ...]
    text: str

    def __init__(self, text: str | int | Version) -> None:
        if isinstance(text, Version):
            self.text, self.parts = text.text, text.parts
            return
        if isinstance(text, bool) or not isinstance(text, (str, int)):
            raise MetadataError(f"version must be a string, not {type(text).__name__}")
        s = str(text) if isinstance(text, str) or 0 <= text < 10**9 else "bad"
        if len(s) > 40 or not _VERSION_RE.fullmatch(s):
            raise MetadataError(
                f"bad version {s[:40]!r}: use 1-4 dot-separated numbers of at most 9 digits"
            )
        self.text = s
        parts = tuple(int(p) for p in s.split("."))
        self.parts = parts + (0,) * (4 - len(parts))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self.parts == other.parts

    def __lt__(self, other: Version) -> bool:
        return self.parts < other.parts

    def __hash__(self) -> int:
        return hash(self.parts)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Version({self.text!r})"


def check_name(name: str, what: str = "model name") -> str:
    """Return ``name`` if it is a valid model or variant name, else raise MetadataError."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise MetadataError(
            f"bad {what} {str(name)[:70]!r}: 1-64 of letters, digits, '.', '_', '-', "
            "starting with a letter or digit"
        )
    return name


def target_path(name: str, version: str | Version) -> str:
    """The TUF target path of a model version: ``<name>/<version>.tflite``."""
    return f"{check_name(name)}/{Version(version).text}{SUFFIX}"


def parse_target_path(path: str) -> tuple[str, Version] | None:
    """``(name, version)`` of a ``<name>/<version>.tflite`` target path, else None."""
    name, sep, base = path.partition("/")
    if not sep or "/" in base or not base.endswith(SUFFIX):
        return None
    try:
        return check_name(name), Version(base[: -len(SUFFIX)])
    except MetadataError:
        return None


__all__ = ["SUFFIX", "Version", "check_name", "parse_target_path", "target_path"]
