"""Over-the-air model updates: signed manifests, a verified on-device store,
rollouts, update scheduling and health-checked hot swaps.

Publisher side: ``edgepipe ota keygen|sign|verify`` (see :mod:`.cli`).
Device side: :class:`ModelStore` fetches and verifies manifests, downloads and
installs models atomically; :class:`HotSwapper` moves a running pool onto the
new model and rolls back if it misbehaves. See ``docs/ota.md``.

Names are imported lazily so that ``import edgepipe.ota`` stays cheap and does
not pull in httpx or numpy until they are used.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import (
    DownloadError,
    ExpiredManifestError,
    HealthCheckError,
    IncompatibleError,
    IntegrityError,
    ManifestError,
    RollbackError,
    SignatureError,
    StoreError,
    UntrustedKeyError,
    UpdateError,
)

_LAZY = {
    "Manifest": "manifest",
    "Version": "manifest",
    "verify_manifest": "manifest",
    "sign_manifest": "manifest",
    "build_signed": "manifest",
    "TrustedKeys": "keys",
    "ModelStore": "store",
    "InstalledModel": "store",
    "UpdateResult": "store",
    "Experiment": "rollout",
    "VariantStats": "rollout",
    "bucket": "rollout",
    "UpdateScheduler": "schedule",
    "CheckOutcome": "schedule",
    "HotSwapper": "hotswap",
    "SwapResult": "hotswap",
    "add_ota_parser": "cli",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
    *_LAZY,
]
