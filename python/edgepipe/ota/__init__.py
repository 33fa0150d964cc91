"""Over-the-air model updates on The Update Framework (python-tuf).

Publisher side: ``edgepipe ota repo init|add|publish|timestamp|rotate`` (see
:mod:`.cli` and :class:`Repository`), built on ``tuf.api.metadata``.
Device side: :class:`ModelStore` refreshes TUF metadata with
``tuf.ngclient.Updater`` and edgepipe's :class:`BoundedFetcher`, installs the
offered model atomically, counts starts and rolls back a version that never
becomes healthy; :class:`HotSwapper` moves a running pool onto it with a
health check. :class:`VariantStats` keeps per-variant statistics for A/B
rollouts. See ``docs/ota.md``.

Names are imported lazily so that ``import edgepipe.ota`` stays cheap and does
not pull in tuf or numpy until they are used.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import (
    DownloadError,
    ExpiredMetadataError,
    HealthCheckError,
    IncompatibleError,
    IntegrityError,
    MetadataError,
    RollbackError,
    SignatureError,
    StoreError,
    TargetNotFoundError,
    UnsafePathError,
    UpdateError,
)

_LAZY = {
    "Version": "versions",
    "target_path": "versions",
    "Offer": "targets",
    "bucket": "targets",
    "parse_edgepipe_custom": "targets",
    "Repository": "repo",
    "BoundedFetcher": "fetcher",
    "TufSession": "client",
    "ModelStore": "store",
    "InstalledModel": "store",
    "UpdateResult": "store",
    "check_in_child": "store",
    "Experiment": "rollout",
    "VariantStats": "rollout",
    "ObservedPool": "rollout",
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
    *_LAZY,
]
