"""Errors of the scale-out layer, in edgepipe's hierarchy."""

from __future__ import annotations

from typing import Any

from ..errors import EdgepipeError, InputError


class RayUnavailableError(EdgepipeError, ImportError):
    """Ray is not installed: ``pip install 'edgepipe[ray]'``."""


class RayJobError(EdgepipeError):
    """A job on the cluster failed; nothing was written. The message says which part."""


class ScoreDataError(InputError):
    """An input file for ``score`` is missing arrays, has wrong shapes or is unreadable."""


def require_ray() -> Any:
    """Import and return the ``ray`` module, or raise :class:`RayUnavailableError`."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - exercised where Ray is absent
        raise RayUnavailableError(
            "this needs Ray, which is an optional extra: pip install 'edgepipe[ray]'"
        ) from exc
    return ray


def connect(address: str | None) -> Any:
    """:func:`require_ray`, joined to the cluster at ``address`` unless already connected.

    ``None``: ``RAY_ADDRESS`` or a new local instance; ``"auto"``: the cluster
    this machine belongs to. Ray's own logging is left to Ray's defaults off
    the driver (no worker logs mirrored, no logging setup of the app's).
    """
    ray = require_ray()
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    return ray
