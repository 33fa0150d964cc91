"""Typed errors of the OTA update path.

Every refusal carries a one-line reason meant for logs and for the ``error: ...``
line of the CLI. The classes form a small tree so callers can catch broadly
(:class:`UpdateError`) or narrowly (e.g. :class:`RollbackError`). TUF's own
exceptions (``tuf.api.exceptions``) are translated into these by
:func:`edgepipe.ota.client.translate`, so callers never need to import tuf.
"""

from __future__ import annotations

from ..errors import EdgepipeError


class UpdateError(EdgepipeError):
    """Root of every error raised by :mod:`edgepipe.ota`."""

    kind = "update_error"
    """Short machine-readable name, printed by ``edgepipe ota update`` in its JSON."""


class MetadataError(UpdateError, ValueError):
    """TUF metadata was refused: malformed, inconsistent, or not for this device."""

    kind = "metadata_error"


class SignatureError(MetadataError):
    """Metadata is not signed by a threshold of the keys its delegating role trusts."""

    kind = "signature_error"


class ExpiredMetadataError(MetadataError):
    """A metadata file's expiry time has passed (indefinite-freeze protection)."""

    kind = "expired_metadata"


class TargetNotFoundError(MetadataError):
    """The trusted metadata lists no target for the requested model (or variant)."""

    kind = "target_not_found"


class IncompatibleError(MetadataError):
    """The target requires a newer edgepipe or runtime than this device has."""

    kind = "incompatible"


class RollbackError(UpdateError):
    """Metadata or a model version older than what the device already trusts, or marked bad."""

    kind = "rollback"


class IntegrityError(UpdateError):
    """Downloaded bytes do not match their trusted length or hashes."""

    kind = "integrity_error"


class DownloadError(UpdateError):
    """Something could not be retrieved: network error, HTTP error, byte cap or deadline."""

    kind = "download_error"


class StoreError(UpdateError):
    """The model store could not read or write its files."""

    kind = "store_error"


class UnsafePathError(StoreError):
    """A store path is a symlink, a special file, a hard link or otherwise not ours; untouched."""

    kind = "unsafe_path"


class HealthCheckError(UpdateError):
    """A new model failed its health check (crash, compile failure, bad golden outputs)."""

    kind = "health_check_failed"


__all__ = [
    "DownloadError",
    "ExpiredMetadataError",
    "HealthCheckError",
    "IncompatibleError",
    "IntegrityError",
    "MetadataError",
    "RollbackError",
    "SignatureError",
    "StoreError",
    "TargetNotFoundError",
    "UnsafePathError",
    "UpdateError",
]
