"""Errors of the scale-out layer, in edgepipe's hierarchy."""

from __future__ import annotations

from ..errors import EdgepipeError, InputError


class RayUnavailableError(EdgepipeError, ImportError):
    """Ray is not installed: ``pip install 'edgepipe[ray]'``."""


class RayJobError(EdgepipeError):
    """A job on the cluster failed; nothing was written. The message says which part."""


class ScoreDataError(InputError):
    """An input file for ``score`` is missing arrays, has wrong shapes or is unreadable."""


def require_ray():  # type: ignore[no-untyped-def]
    """Import and return the ``ray`` module, or raise :class:`RayUnavailableError`."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - exercised where Ray is absent
        raise RayUnavailableError(
            "this needs Ray, which is an optional extra: pip install 'edgepipe[ray]'"
        ) from exc
    return ray
