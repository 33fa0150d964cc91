"""The device side of TUF: ``tuf.ngclient.Updater`` fed and drained through the store.

python-tuf's Updater verifies the whole chain (root rotations, timestamp,
snapshot, targets, delegations: signatures, thresholds, versions, expiry,
lengths, hashes). It reads and writes its metadata cache with plain paths, so
it is given a private temporary directory (mode 0700, created fresh): the
store's trusted metadata is copied in through the store's safe directory fd,
and what the Updater persisted is copied back the same way. Nothing of tuf's
ever opens a path inside the store.

Every tuf exception is translated into an :mod:`edgepipe.ota.errors` type by
:func:`translate`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from tuf.api import exceptions as tuf_exc
from tuf.api.metadata import Metadata, TargetFile
from tuf.ngclient import Updater, UpdaterConfig

from .errors import (
    DownloadError,
    ExpiredMetadataError,
    IntegrityError,
    MetadataError,
    RollbackError,
    SignatureError,
    StoreError,
    UpdateError,
)
from .fetcher import BoundedFetcher
from .safedir import SafeDir

MAX_METADATA_BYTES = 5_000_000
TOP_LEVEL = ("root", "timestamp", "snapshot", "targets")
DEFAULT_MAX_TIMESTAMP_LIFETIME_S = 31 * 86400


def translate(e: BaseException, what: str = "update") -> UpdateError:
    """The edgepipe error for a tuf (or OS) exception raised while updating."""
    msg = f"{what}: {e}"
    if isinstance(e, UpdateError):
        return e
    if isinstance(e, tuf_exc.UnsignedMetadataError):
        return SignatureError(msg)
    if isinstance(e, tuf_exc.ExpiredMetadataError):
        return ExpiredMetadataError(msg)
    if isinstance(e, tuf_exc.BadVersionNumberError):
        return RollbackError(msg)
    if isinstance(e, tuf_exc.LengthOrHashMismatchError):
        return IntegrityError(msg)
    if isinstance(e, tuf_exc.DownloadLengthMismatchError):
        return IntegrityError(msg)
    if isinstance(e, tuf_exc.DownloadError):
        cause = e.__cause__
        return DownloadError(f"{msg}" + (f" ({cause})" if cause else ""))
    if isinstance(e, tuf_exc.RepositoryError):
        return MetadataError(msg)
    if isinstance(e, (ValueError, KeyError, TypeError)):
        return MetadataError(msg)
    if isinstance(e, OSError):
        return StoreError(msg)
    return UpdateError(msg)


def _version_of(data: bytes) -> int:
    try:
        return int(Metadata.from_bytes(data).signed.version)
    except Exception:  # any parse failure: not usable as a trust anchor
        return -1


class TufSession:
    """One refresh of the trusted metadata against a repository.

    Args:
        tufdir: the store's ``tuf/`` directory (trusted metadata cache).
        root: the app's trusted root metadata bytes (the trust anchor shipped
            with the app); a newer verified root in ``tufdir`` takes over.
        metadata_url, targets_url: repository URLs.
        fetcher: the network fetcher (a :class:`BoundedFetcher` by default).
        max_timestamp_lifetime_s: refuse a timestamp that expires further in the
            future than this (a signed "valid for 100 years" defeats freeze
            protection).
    """

    def __init__(
        self,
        tufdir: SafeDir,
        root: bytes,
        metadata_url: str,
        targets_url: str,
        fetcher: BoundedFetcher,
        *,
        max_timestamp_lifetime_s: float = DEFAULT_MAX_TIMESTAMP_LIFETIME_S,
    ) -> None:
        self.tufdir = tufdir
        self.fetcher = fetcher
        self.targets_url = targets_url if targets_url.endswith("/") else targets_url + "/"
        self.max_timestamp_lifetime_s = max_timestamp_lifetime_s
        self._tmp = tempfile.mkdtemp(prefix="edgepipe-tuf-")
        try:
            anchor = root
            cached = self._read_cached("root")
            if cached is not None and _version_of(cached) > _version_of(root):
                anchor = cached
            for role in TOP_LEVEL[1:]:
                data = self._read_cached(role)
                if data is not None:
                    with open(os.path.join(self._tmp, f"{role}.json"), "wb") as f:
                        f.write(data)
            config = UpdaterConfig(
                root_max_length=512_000,
                timestamp_max_length=16_384,
                snapshot_max_length=MAX_METADATA_BYTES,
                targets_max_length=MAX_METADATA_BYTES,
            )
            try:
                self.updater = Updater(
                    self._tmp, metadata_url, None, targets_url, fetcher, config, bootstrap=anchor
                )
            except Exception as e:
                raise translate(e, "trusted root") from e
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise

    def _read_cached(self, role: str) -> bytes | None:
        try:
            return self.tufdir.read_bytes(f"{role}.json", MAX_METADATA_BYTES)
        except FileNotFoundError:
            return None

    def refresh(self, now: datetime | None = None) -> None:
        """Update root → timestamp → snapshot → targets; persist what was verified."""
        try:
            self.updater.refresh()
        except Exception as e:
            self._save()  # a verified newer root is kept even if a later step fails
            raise translate(e, "refresh") from e
        ts = Metadata.from_bytes(self._read_tmp("timestamp")).signed
        now = now or datetime.now(timezone.utc)
        if (ts.expires - now).total_seconds() > self.max_timestamp_lifetime_s:
            raise ExpiredMetadataError(
                f"timestamp expires {ts.expires.isoformat()}, more than "
                f"{self.max_timestamp_lifetime_s / 86400:g} days ahead: refused "
                "(a far-future timestamp defeats freeze protection)"
            )
        self._save()

    def _read_tmp(self, role: str) -> bytes:
        with open(os.path.join(self._tmp, f"{role}.json"), "rb") as f:
            return f.read(MAX_METADATA_BYTES + 1)

    def _save(self) -> None:
        for name in sorted(os.listdir(self._tmp)):
            p = os.path.join(self._tmp, name)
            if not name.endswith(".json") or not os.path.isfile(p):
                continue
            with open(p, "rb") as f:
                data = f.read(MAX_METADATA_BYTES + 1)
            if len(data) <= MAX_METADATA_BYTES:
                self.tufdir.write_atomic(name, data)

    def targets(self) -> dict[str, TargetFile]:
        """The top-level targets of the refreshed, verified metadata (path → TargetFile)."""
        md = Metadata.from_bytes(self._read_tmp("targets"))
        return dict(md.signed.targets)  # type: ignore[attr-defined]

    def targetinfo(self, path: str) -> TargetFile:
        """The verified TargetFile of ``path`` (delegations followed)."""
        from .errors import TargetNotFoundError

        try:
            info = self.updater.get_targetinfo(path)
        except Exception as e:
            raise translate(e, f"target {path}") from e
        if info is None:
            raise TargetNotFoundError(f"the trusted metadata has no target {path!r}")
        return info

    def target_url(self, info: TargetFile) -> str:
        """Where ``info`` is downloaded from (hash-prefixed under consistent snapshots)."""
        path = info.path
        consistent = Metadata.from_bytes(self._read_tmp("root")).signed.consistent_snapshot
        if consistent and info.hashes:
            dirname, sep, base = path.rpartition("/")
            path = f"{dirname}{sep}{next(iter(info.hashes.values()))}.{base}"
        return self.targets_url + path

    def fetch(self, info: TargetFile) -> Iterator[bytes]:
        """The raw bytes of target ``info`` (length-capped by the caller)."""
        try:
            return self.fetcher.fetch(self.target_url(info))
        except Exception as e:
            raise translate(e, f"download {info.path}") from e

    def fetch_from(self, info: TargetFile, start: int) -> tuple[int, Iterator[bytes]]:
        """Resume target ``info`` at byte ``start`` when the fetcher and server can:
        ``(offset, chunks)`` with ``offset`` 0 when starting over."""
        resume = getattr(self.fetcher, "fetch_from", None)
        if resume is None or start <= 0:
            return 0, self.fetch(info)
        try:
            offset, chunks = resume(self.target_url(info), start)
        except Exception as e:
            raise translate(e, f"download {info.path}") from e
        return int(offset), chunks

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> TufSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["DEFAULT_MAX_TIMESTAMP_LIFETIME_S", "TufSession", "translate"]
