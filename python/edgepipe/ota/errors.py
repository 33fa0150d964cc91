"""Typed errors of the OTA update path.

Every refusal carries a one-line reason meant for logs and for the ``error: ...``
line of the CLI. The classes form a small tree so callers can catch broadly
(:class:`UpdateError`) or narrowly (e.g. :class:`RollbackError`).
"""

from __future__ import annotations

from ..errors import EdgepipeError


class UpdateError(EdgepipeError):
    """Root of every error raised by :mod:`edgepipe.ota`."""


class ManifestError(UpdateError, ValueError):
    """The manifest is malformed, inconsistent or not applicable to this device."""


class SignatureError(ManifestError):
    """The manifest is not signed by enough trusted keys, or a signature is invalid."""


class UntrustedKeyError(SignatureError):
    """The manifest is signed only by keys that are not trusted."""


class ExpiredManifestError(ManifestError):
    """The manifest's expiry time has passed (protects against freeze attacks)."""


class IncompatibleError(ManifestError):
    """The manifest requires a newer edgepipe or runtime than this device has."""


class RollbackError(UpdateError):
    """The offered version is not newer than the installed one, or was marked bad."""


class IntegrityError(UpdateError):
    """The model's bytes do not match the manifest (size or sha256)."""


class DownloadError(UpdateError):
    """The model or manifest could not be retrieved (network, timeout, truncation)."""


class StoreError(UpdateError):
    """The model store could not read or write its files."""


class HealthCheckError(UpdateError):
    """A new model failed its health check on the golden inputs."""


__all__ = [
    "DownloadError",
    "ExpiredManifestError",
    "HealthCheckError",
    "IncompatibleError",
    "IntegrityError",
    "ManifestError",
    "RollbackError",
    "SignatureError",
    "StoreError",
    "UntrustedKeyError",
    "UpdateError",
]
