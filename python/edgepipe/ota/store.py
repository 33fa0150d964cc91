"""The on-device model store: TUF-verified installs, crash-safe start-up, rollback.

Layout under the store directory (every path opened through a directory fd
with ``O_NOFOLLOW``; see :mod:`edgepipe.ota.safedir`)::

    state.json                       current/previous slots, start counts, events
    floor.json                       anti-rollback state (highest version, bad versions),
                                     kept apart so a damaged state.json forgets nothing
    device-id                        random stable id for rollout and A/B bucketing
    .lock                            flock held while state changes (short)
    .update-lock                     flock held for a whole update (one at a time)
    tuf/                             trusted TUF metadata (root, timestamp, snapshot, targets)
    models/<version>-<sha12>.tflite  installed model files
    downloads/<sha256>.partial       the download in progress

An install writes the model to ``downloads/``, verifies its length and hashes
against the TUF target, renames it into ``models/``, fsyncs, then writes
``floor.json`` and finally ``state.json`` (the commit point), each atomically.
A crash (SIGKILL) at any step leaves the old state or the new one; files no
state names are removed on the next open.

Start-up is crash-safe like A/B boot slots: :meth:`ModelStore.start` counts the
starts of a version that was not yet marked healthy, health-checks it in a
child process, and rolls it back once it has had ``max_starts`` chances.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import stat as _stat
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import (
    HealthCheckError,
    IntegrityError,
    MetadataError,
    RollbackError,
    StoreError,
    TargetNotFoundError,
    UnsafePathError,
    UpdateError,
)
from .safedir import SafeDir, read_small_file, write_all
from .targets import Offer, offers
from .versions import Version, check_name

log = logging.getLogger(__name__)

STATE = "state.json"
FLOOR = "floor.json"
FORMAT = 2
MAX_EVENTS = 50
MAX_STATE_BYTES = 1 << 20
DEFAULT_MAX_STARTS = 3
FREE_SPACE_MARGIN = 1 << 20

INSTALL_STEPS = (
    "begin",
    "downloaded",
    "model_renamed",
    "dirs_synced",
    "floor_written",
    "state_written",
    "cleaned",
)
"""Named points of an install, in order; see :data:`step_hook`."""

step_hook: Callable[[str], None] | None = None
"""Test seam: called with each step name of an install (crash tests SIGKILL there)."""

TRANSIENT_ERRNOS = frozenset(
    {
        errno.ENOMEM,
        errno.EINTR,
        errno.EAGAIN,
        errno.ENOENT,
        errno.EMFILE,
        errno.ENFILE,
        errno.EBUSY,
        errno.ETIMEDOUT,
    }
)
_TRANSIENT_TEXT = tuple(os.strerror(e) for e in TRANSIENT_ERRNOS)


def _step(name: str) -> None:
    if step_hook is not None:
        step_hook(name)


def is_transient(e: BaseException) -> bool:
    """True for errors that say nothing about a model (memory, signals, a moved file)."""
    if isinstance(e, (MemoryError, InterruptedError)):
        return True
    if isinstance(e, OSError) and e.errno in TRANSIENT_ERRNOS:
        return True
    text = str(e)
    return any(t in text for t in _TRANSIENT_TEXT)


@dataclass(frozen=True)
class InstalledModel:
    """A model file the store verified and can serve."""

    name: str | None
    version: Version
    path: Path
    sha256: str | None
    size: int
    source: str
    """``"current"``, ``"previous"`` or ``"bundled"``."""
    variant: str | None = None
    target: str | None = None
    healthy: bool = True
    contract: dict[str, Any] | None = None
    """The target's declared inputs/outputs, checked by :func:`check_in_child`."""


@dataclass(frozen=True)
class UpdateResult:
    """What :meth:`ModelStore.update` did."""

    status: str
    """``"installed"``, ``"up_to_date"`` or ``"not_in_rollout"``."""
    version: str | None
    variant: str | None
    target: str | None
    reason: str
    installed: InstalledModel | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "version": self.version,
            "variant": self.variant,
            "target": self.target,
            "reason": self.reason,
            "path": str(self.installed.path) if self.installed else None,
        }


class ModelStore:
    """A directory of TUF-verified models for one model name.

    Args:
        directory: where the store lives (created if missing). Nothing outside
            it is ever touched, whatever is planted inside.
        name: the model name: targets ``<name>/<version>.tflite`` are considered.
        root: the trust anchor shipped with the app: TUF root metadata (bytes or
            a path). Needed for :meth:`update`; a newer root verified later and
            kept in ``tuf/`` takes over.
        bundled: the model shipped inside the app, served when nothing installed
            is usable; ``bundled_version`` is its version (updates must be newer).
        device_id: stable id for bucketing (default: random, kept in the store).
        max_model_bytes: refuse targets that declare a larger file.
        max_starts: starts a new version gets to be marked healthy before it is
            rolled back (see :meth:`start`).
        fetcher: a :class:`~edgepipe.ota.fetcher.BoundedFetcher` (injected; one
            with default limits is made otherwise).
        edgepipe_version, runtime_version: compared with a target's minimums
            (detected when omitted).
        clock: wall clock for events.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        name: str,
        root: bytes | str | os.PathLike[str] | None = None,
        bundled: str | os.PathLike[str] | None = None,
        bundled_version: str | int = "0",
        device_id: str | None = None,
        max_model_bytes: int = 2 << 30,
        max_starts: int = DEFAULT_MAX_STARTS,
        fetcher: Any = None,
        edgepipe_version: str | None = None,
        runtime_version: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = check_name(name)
        self._root = root
        self.bundled = Path(bundled) if bundled is not None else None
        self.bundled_version = Version(bundled_version)
        self.max_model_bytes = int(max_model_bytes)
        self.max_starts = int(max_starts)
        self.fetcher = fetcher
        self.edgepipe_version = edgepipe_version
        self.runtime_version = runtime_version
        self.clock = clock
        self._tlock = threading.RLock()
        self.root_dir = SafeDir.open_root(directory)
        self.dir = self.root_dir.path
        try:
            self.models = self.root_dir.subdir("models")
            self.downloads = self.root_dir.subdir("downloads")
            self.tufdir = self.root_dir.subdir("tuf")
            with self._locked():
                self.device_id = device_id or self._device_id()
                self._meta = self._recover()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ queries

    @property
    def current_version(self) -> Version | None:
        """Version of the installed current model, or None."""
        cur = self._meta.get("current")
        return Version(cur["version"]) if cur else None

    @property
    def bad_versions(self) -> dict[str, str]:
        """Versions refused for good, with the reason each was marked bad."""
        return dict(self._meta.get("bad", {}))

    @property
    def highest_version(self) -> Version | None:
        """The anti-rollback floor: the highest version ever installed or marked bad."""
        h = self._meta.get("highest")
        return Version(h) if h else None

    @property
    def events(self) -> list[dict[str, Any]]:
        """The most recent store events (installs, rollbacks, recoveries)."""
        return list(self._meta.get("events", []))

    def refresh_state(self) -> None:
        """Re-read the state other processes may have changed."""
        with self._locked():
            self._meta = self._read_state_or(self._meta)

    def status(self) -> dict[str, Any]:
        """A JSON-able summary for logs and the CLI."""
        with self._tlock:
            m = self._meta
            serving = self._serving_or_none()
            return {
                "dir": str(self.dir),
                "name": self.name,
                "device_id": self.device_id,
                "current": m.get("current"),
                "previous": m.get("previous"),
                "highest_version": m.get("highest"),
                "bad_versions": dict(m.get("bad", {})),
                "serving": None
                if serving is None
                else {
                    "version": serving.version.text,
                    "source": serving.source,
                    "path": str(serving.path),
                    "variant": serving.variant,
                },
            }

    def serving(self) -> InstalledModel:
        """The verified model to serve: current, else previous, else bundled."""
        with self._tlock:
            for slot in ("current", "previous"):
                e = self._meta.get(slot)
                if e and e["file"] in self._verified:
                    return self._installed(e, slot)
            if self.bundled is not None:
                return InstalledModel(
                    self.name,
                    self.bundled_version,
                    self.bundled,
                    None,
                    self._bundled_size(),
                    "bundled",
                )
            raise StoreError(f"no verified model in {self.dir} and no bundled model")

    def current_path(self) -> Path:
        """Path of the model to serve (see :meth:`serving`)."""
        return self.serving().path

    # --------------------------------------------------------------- start-up

    def start(
        self, *, health_check: bool | Callable[[InstalledModel], None] = True
    ) -> InstalledModel:
        """Call once per app start, before loading; returns the model to serve.

        A current version not yet marked healthy has its start counted
        (durably, before anything can crash); after ``max_starts`` starts it is
        rolled back. With ``health_check`` (True: :func:`check_in_child`, or
        your own callable) an unproven version is first compiled and run in a
        child process, so a model that crashes the runtime takes down the child,
        not the app, and is marked bad. Call :meth:`mark_healthy` once the app
        is satisfied with the model.
        """
        with self._locked():
            self._meta = self._read_state_or(self._meta)
            cur = self._meta.get("current")
            if cur and not cur.get("healthy"):
                if int(cur.get("starts", 0)) >= self.max_starts:
                    self._mark_bad_locked(
                        cur["version"],
                        cur["sha256"],
                        f"not marked healthy after {cur['starts']} starts",
                    )
                else:
                    meta = _copy(self._meta)
                    meta["current"]["starts"] = int(cur.get("starts", 0)) + 1
                    self._write_state(meta)
                    self._meta = meta
        chosen = self.serving()
        if health_check and chosen.source != "bundled" and not chosen.healthy:
            check = check_in_child if health_check is True else health_check
            try:
                check(chosen)
            except HealthCheckError as e:
                self.mark_bad(chosen.version, f"health check: {e}", sha256=chosen.sha256)
                return self.start(health_check=health_check)
            except StoreError as e:
                # Transient (memory, interrupted): says nothing about the model.
                # The start is counted, so a crash loop still ends in a rollback.
                log.warning("health check of %s not conclusive: %s", chosen.version, e)
        return chosen

    def mark_healthy(self, version: str | Version | None = None) -> bool:
        """Record that the current version (or ``version``, if current) serves well."""
        with self._locked():
            self._meta = self._read_state_or(self._meta)
            cur = self._meta.get("current")
            if not cur or (version is not None and Version(cur["version"]) != Version(version)):
                return False
            if cur.get("healthy"):
                return True
            meta = _copy(self._meta)
            meta["current"]["healthy"] = True
            _event(
                meta,
                self.clock(),
                "healthy",
                cur["version"],
                f"after {cur.get('starts', 0)} start(s)",
            )
            self._write_state(meta)
            self._meta = meta
            return True

    def load(self) -> Any:
        """Load the model to serve with ``edgepipe.Model.load``.

        A version the runtime refuses is marked bad and the next candidate
        (previous, then bundled) is tried; a transient error (out of memory,
        interrupted, a file another process just replaced) is raised as
        :class:`StoreError` and marks nothing.
        """
        from edgepipe import Model, errors

        while True:
            chosen = self.serving()
            try:
                return Model.load(str(chosen.path))
            except (errors.ModelError, OSError, MemoryError) as e:
                if chosen.source == "bundled":
                    raise
                if is_transient(e):
                    self.refresh_state()
                    if self.serving().path != chosen.path:
                        continue  # another process moved on; serve what it installed
                    raise StoreError(
                        f"transient error loading {chosen.version}: {e}; not marked bad, try again"
                    ) from e
                if not self.mark_bad(
                    chosen.version, f"runtime refused the model: {e}", sha256=chosen.sha256
                ):
                    self.refresh_state()

    def check(self, model: InstalledModel | None = None, **kw: Any) -> None:
        """Health-check ``model`` (default: what is served) in a child process."""
        check_in_child(model or self.serving(), **kw)

    # ----------------------------------------------------------------- updates

    def update(
        self,
        url: str | None = None,
        *,
        metadata_url: str | None = None,
        targets_url: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> UpdateResult:
        """Refresh the TUF metadata from a repository and install what it offers.

        ``url`` is the repository base (metadata under ``url/metadata/``, model
        files under ``url/targets/``); ``metadata_url``/``targets_url`` override.
        The highest ``<name>/<version>.tflite`` target is the offer; the
        device's rollout bucket and A/B variant pick whether and which target
        to install. Raises a typed :class:`UpdateError` on any refusal; the
        store is unchanged then.
        """
        from .client import TufSession
        from .fetcher import BoundedFetcher

        if url is None and (metadata_url is None or targets_url is None):
            raise UpdateError("give the repository URL (or metadata_url and targets_url)")
        base = (url or "").rstrip("/")
        murl = metadata_url or f"{base}/metadata/"
        turl = targets_url or f"{base}/targets/"
        fetcher = self.fetcher or BoundedFetcher(max_bytes=self.max_model_bytes)
        with (
            self._update_locked(),
            TufSession(self.tufdir, self._root_bytes(), murl, turl, fetcher) as tuf,
        ):
            tuf.refresh()
            found = offers(tuf.targets(), self.name)
            if not found:
                raise TargetNotFoundError(
                    f"the repository offers no {self.name}/<version>.tflite target"
                )
            offer = found[-1]
            self.refresh_state()
            early = self._decide(offer)
            if early is not None:
                return early
            variant = offer.variant_for(self.device_id)
            path = variant.target if variant and variant.target else offer.path
            info = tuf.targetinfo(path)
            sha = info.hashes.get("sha256")
            if not isinstance(sha, str) or len(sha) != 64 or sha.strip("0123456789abcdef"):
                raise MetadataError(f"target {path} has no valid sha256 hash")
            if info.length > self.max_model_bytes:
                raise IntegrityError(
                    f"target {path} declares {info.length} bytes, above the "
                    f"limit of {self.max_model_bytes}"
                )
            return self._install(
                offer, variant.name if variant else None, path, info, tuf, progress
            )

    def _decide(self, offer: Offer) -> UpdateResult | None:
        v = offer.version
        bad = self._meta.get("bad", {})
        if v.text in bad or any(Version(b) == v for b in bad):
            raise RollbackError(f"version {v} was marked bad: {bad.get(v.text, '')}".rstrip())
        runtime = self.runtime_version
        if runtime is None and offer.fields.min_runtime is not None:
            runtime = _detect_runtime_version()
        offer.check_compatible(self.edgepipe_version or _detect_edgepipe_version(), runtime)
        cur = self._meta.get("current")
        if cur and Version(cur["version"]) == v:
            return UpdateResult(
                "up_to_date",
                v.text,
                cur.get("variant"),
                cur.get("target"),
                f"{self.name} {v} is already installed",
                self.serving(),
            )
        self._check_floor(v)
        if not offer.in_rollout(self.device_id):
            return UpdateResult(
                "not_in_rollout",
                v.text,
                None,
                None,
                f"device is outside the {offer.fields.rollout_bp / 100:g}% "
                f"rollout of {self.name} {v}",
            )
        return None

    def _check_floor(self, v: Version) -> None:
        floor = self.bundled_version
        h = self._meta.get("highest")
        if h and Version(h) > floor:
            floor = Version(h)
        if v < floor or (v == floor and h is None):
            raise RollbackError(
                f"version {v} is older than {floor}, which this device has "
                "already trusted (rollback refused)"
            )

    def _install(
        self,
        offer: Offer,
        variant: str | None,
        path: str,
        info: Any,
        tuf: Any,
        progress: Callable[[int, int], None] | None,
    ) -> UpdateResult:
        sha = info.hashes["sha256"]
        partial = f"{sha}.partial"
        _step("begin")
        for n in self.downloads.names():
            if n != partial:
                self.downloads.unlink(n)
        free = shutil.disk_usage(self.dir).free
        if free < info.length + FREE_SPACE_MARGIN:
            raise StoreError(
                f"not enough free space: need {info.length + FREE_SPACE_MARGIN} bytes, {free} free"
            )
        self._download(tuf, info, partial, progress)
        _step("downloaded")
        stem = f"{offer.version.text}-{sha[:12]}.tflite"
        with self._locked():
            self._meta = self._read_state_or(self._meta)
            cur = self._meta.get("current")
            if cur and Version(cur["version"]) == offer.version:
                # Another process installed it while we downloaded: we lost the race.
                self.downloads.unlink(partial)
                return UpdateResult(
                    "up_to_date",
                    offer.version.text,
                    cur.get("variant"),
                    cur.get("target"),
                    f"{self.name} {offer.version} is already installed (by another process)",
                    self.serving(),
                )
            self._check_floor(offer.version)
            try:
                self.downloads.replace(partial, stem, self.models)
                _step("model_renamed")
                self.models.fsync()
                self.downloads.fsync()
                _step("dirs_synced")
            except OSError as e:
                raise StoreError(f"installing {stem} failed: {e.strerror or e}") from e
            meta = _copy(self._meta)
            old_prev = meta.get("previous")
            entry = {
                "version": offer.version.text,
                "sha256": sha,
                "size": info.length,
                "file": stem,
                "variant": variant,
                "target": path,
                "starts": 0,
                "healthy": False,
                "contract": _contract_of(offer),
                "installed_at": int(self.clock()),
            }
            meta["previous"], meta["current"] = meta.get("current"), entry
            meta["highest"] = _max_version(meta.get("highest"), offer.version.text)
            _event(
                meta,
                self.clock(),
                "installed",
                offer.version.text,
                f"target {path}, sha256 {sha[:12]}, variant {variant}",
            )
            self._write_floor(meta)
            _step("floor_written")
            self._write_state(meta)
            _step("state_written")
            self._meta = meta
            self._verified[stem] = True
            keep = {e["file"] for e in (meta["current"], meta["previous"]) if e}
            if old_prev and old_prev["file"] not in keep:
                self.models.unlink(old_prev["file"])
                self._verified.pop(old_prev["file"], None)
            _step("cleaned")
            return UpdateResult(
                "installed",
                offer.version.text,
                variant,
                path,
                f"installed {self.name} {offer.version}",
                self.serving(),
            )

    def _download(
        self, tuf: Any, info: Any, partial: str, progress: Callable[[int, int], None] | None
    ) -> None:
        from tuf.api import exceptions as tuf_exc

        from .client import translate

        # A prefix left by an interrupted attempt is resumed (HTTP Range); the
        # final length and hash check covers every byte either way.
        st = self.downloads.lstat(partial)
        have = 0
        if st is not None and _stat.S_ISREG(st.st_mode) and 0 < st.st_size < info.length:
            have = st.st_size
        offset, chunks = tuf.fetch_from(info, have)
        try:
            fd = self.downloads.open_write(partial, append=offset > 0)
        except BaseException:
            # Refused (a planted link, ...): hang up instead of leaving the socket open.
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
            raise
        done = offset
        keep = False
        try:
            try:
                for chunk in chunks:
                    done += len(chunk)
                    if done > info.length:
                        raise IntegrityError(
                            f"{info.path}: the server sent more than the "
                            f"{info.length} bytes the target declares"
                        )
                    write_all(fd, chunk)
                    if progress is not None:
                        progress(done, info.length)
            except tuf_exc.DownloadLengthMismatchError as e:
                raise translate(e, f"download {info.path}") from e
            except tuf_exc.DownloadError as e:
                keep = True  # a network failure: keep the prefix to resume next time
                raise translate(e, f"download {info.path}") from e
            except OSError as e:
                raise StoreError(f"writing {partial} failed: {e.strerror or e}") from e
            os.fsync(fd)
        except BaseException:
            if keep:
                with contextlib.suppress(OSError):
                    os.fsync(fd)
            os.close(fd)
            if not keep:
                self.downloads.unlink(partial)
            raise
        os.close(fd)
        rfd = self.downloads.open_read(partial)
        try:
            with os.fdopen(os.dup(rfd), "rb") as f:
                info.verify_length_and_hashes(f)
        except tuf_exc.LengthOrHashMismatchError as e:
            self.downloads.unlink(partial)
            raise IntegrityError(f"{info.path}: {e} (file discarded)") from e
        finally:
            os.close(rfd)

    # ---------------------------------------------------------------- rollback

    def mark_bad(self, version: str | Version, reason: str, *, sha256: str | None = None) -> bool:
        """Refuse ``version`` for good and fall back from it; True if it was marked.

        Only a version that is the store's current or previous *now* (re-read
        under the lock, and with ``sha256`` if given) is marked: a process with
        a stale view cannot mark a version it never served.
        """
        with self._locked():
            self._meta = self._read_state_or(self._meta)
            return self._mark_bad_locked(Version(version).text, sha256, reason)

    def _mark_bad_locked(self, version: str, sha256: str | None, reason: str) -> bool:
        v = Version(version)
        meta = _copy(self._meta)
        removed = None
        cur, prev = meta.get("current"), meta.get("previous")
        if cur and Version(cur["version"]) == v and sha256 in (None, cur["sha256"]):
            removed = cur
            meta["current"], meta["previous"] = prev, None
        elif prev and Version(prev["version"]) == v and sha256 in (None, prev["sha256"]):
            removed = prev
            meta["previous"] = None
        else:
            log.warning("not marking %s bad: it is not installed here any more", v)
            return False
        meta.setdefault("bad", {})[v.text] = reason[:500]
        meta["highest"] = _max_version(meta.get("highest"), v.text)
        _event(meta, self.clock(), "marked_bad", v.text, reason)
        self._write_floor(meta)
        self._write_state(meta)
        self._meta = meta
        self._verified.pop(removed["file"], None)
        self.models.unlink(removed["file"])
        return True

    def rollback(self, reason: str) -> InstalledModel:
        """Mark the current version bad and return what is served instead."""
        cur = self._meta.get("current")
        if not cur:
            raise StoreError("nothing installed to roll back")
        self.mark_bad(cur["version"], reason, sha256=cur["sha256"])
        return self.serving()

    def close(self) -> None:
        """Close the store's directory fds."""
        for d in ("models", "downloads", "tufdir", "root_dir"):
            sd = getattr(self, d, None)
            if sd is not None:
                sd.close()

    def __enter__(self) -> ModelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --------------------------------------------------------------- internals

    def _root_bytes(self) -> bytes:
        r = self._root
        if r is None:
            try:
                return self.tufdir.read_bytes("root.json", 512_000)
            except FileNotFoundError:
                raise UpdateError("no trusted root: pass root= (the app's root.json)") from None
        if isinstance(r, bytes):
            return r
        return read_small_file(r, 512_000, "root metadata")

    def _installed(self, e: Mapping[str, Any], slot: str) -> InstalledModel:
        return InstalledModel(
            self.name,
            Version(e["version"]),
            self.models.path / e["file"],
            e["sha256"],
            int(e["size"]),
            slot,
            e.get("variant"),
            e.get("target"),
            bool(e.get("healthy", slot == "previous")),
            e.get("contract") if isinstance(e.get("contract"), dict) else None,
        )

    def _serving_or_none(self) -> InstalledModel | None:
        try:
            return self.serving()
        except UpdateError:
            return None

    def _bundled_size(self) -> int:
        try:
            assert self.bundled is not None
            return self.bundled.stat().st_size
        except OSError:
            return 0

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._tlock, self.root_dir.locked(".lock"):
            yield

    @contextmanager
    def _update_locked(self) -> Iterator[None]:
        with self.root_dir.locked(".update-lock"):
            yield

    def _device_id(self) -> str:
        try:
            text = self.root_dir.read_bytes("device-id", 64).decode("ascii", "replace").strip()
            if len(text) == 32 and all(c in "0123456789abcdef" for c in text):
                return text
        except FileNotFoundError:
            pass
        new = uuid.uuid4().hex
        self.root_dir.write_atomic("device-id", new.encode("ascii"))
        return new

    def _write_state(self, meta: dict[str, Any]) -> None:
        meta["generation"] = int(meta.get("generation", 0)) + 1
        self.root_dir.write_atomic(STATE, json.dumps(meta, indent=1, sort_keys=True).encode())

    def _write_floor(self, meta: dict[str, Any]) -> None:
        floor = {"format": FORMAT, "highest": meta.get("highest"), "bad": meta.get("bad", {})}
        self.root_dir.write_atomic(FLOOR, json.dumps(floor, sort_keys=True).encode())

    def _read_state_or(self, fallback: dict[str, Any]) -> dict[str, Any]:
        try:
            meta = _parse_state(self.root_dir.read_bytes(STATE, MAX_STATE_BYTES))
        except FileNotFoundError:
            return fallback
        except UnsafePathError:
            raise
        except (OSError, ValueError, UpdateError) as e:
            log.warning("cannot re-read %s (%s); keeping the in-memory state", STATE, e)
            return fallback
        self._merge_floor(meta)
        for slot in ("current", "previous"):
            entry = meta.get(slot)
            # Installed by another process since we looked: verify before serving it.
            if entry and entry["file"] not in self._verified and self._verify_entry(entry) is None:
                self._verified[entry["file"]] = True
        return meta

    def _read_floor(self) -> dict[str, Any] | None:
        try:
            doc = json.loads(self.root_dir.read_bytes(FLOOR, MAX_STATE_BYTES))
            if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                raise ValueError("unknown format")
            h = doc.get("highest")
            if h is not None:
                Version(h)
            bad = doc.get("bad", {})
            if not isinstance(bad, dict):
                raise ValueError("bad 'bad'")
            for b in bad:
                Version(b)
            return {"highest": h, "bad": {str(k): str(v) for k, v in bad.items()}}
        except FileNotFoundError:
            return None
        except UnsafePathError:
            raise
        except (OSError, ValueError, UpdateError) as e:
            log.error("anti-rollback state %s is damaged: %s", FLOOR, e)
            return None

    def _merge_floor(self, meta: dict[str, Any]) -> None:
        floor = self._read_floor()
        if floor is None:
            return
        if floor["highest"]:
            meta["highest"] = _max_version(meta.get("highest"), floor["highest"])
        bad = meta.setdefault("bad", {})
        for k, v in floor["bad"].items():
            bad.setdefault(k, v)

    def _recover(self) -> dict[str, Any]:
        """Bring the directory in line with the state after a crash, and verify."""
        self._verified: dict[str, bool] = {}
        changed = False
        try:
            meta = _parse_state(self.root_dir.read_bytes(STATE, MAX_STATE_BYTES))
        except FileNotFoundError:
            meta = _fresh_state()
        except UnsafePathError:
            raise
        except (OSError, ValueError, UpdateError) as e:
            aside = f"{STATE}.corrupt-{int(time.time())}"
            log.error("store state is unreadable (%s); moved to %s", e, aside)
            try:
                self.root_dir.replace(STATE, aside)
            except OSError:
                self.root_dir.unlink(STATE)
            meta = _fresh_state()
            _event(meta, self.clock(), "state_reset", None, f"unreadable state: {e}")
            self._rebuild_floor(meta)
            changed = True
        self._merge_floor(meta)
        referenced = {e["file"] for e in (meta.get("current"), meta.get("previous")) if e}
        # Temp files and unreferenced model files are a crashed update's
        # leftovers only if no update is running: another process's update
        # writes them under the update lock (removing its temp file made its
        # rename fail, seen with two processes installing at once).
        with self.root_dir.try_locked(".update-lock") as no_update_running:
            if no_update_running:
                for n in self.root_dir.names():
                    if n.endswith(".tmp"):
                        self.root_dir.unlink(n)
                for n in self.tufdir.names():
                    if n.endswith(".tmp"):
                        self.tufdir.unlink(n)
                for n in self.models.names():
                    if n not in referenced:
                        st = self.models.lstat(n)
                        if st is not None and not _is_dir(st):
                            log.info("removing leftover models/%s", n)
                            self.models.unlink(n)
        for slot in ("current", "previous"):
            entry = meta.get(slot)
            if not entry:
                continue
            problem = self._verify_entry(entry)
            if problem is None:
                self._verified[entry["file"]] = True
                continue
            if problem == "transient":
                continue  # kept, just not served this time
            log.error("%s model %s failed verification: %s", slot, entry["version"], problem)
            _event(meta, self.clock(), "verification_failed", entry["version"], problem)
            self.models.unlink(entry["file"])
            meta[slot] = None
            changed = True
        if meta.get("current") is None and meta.get("previous") is not None:
            meta["current"], meta["previous"] = meta["previous"], None
            changed = True
        if changed:
            self._write_floor(meta)
            self._write_state(meta)
        return meta

    def _rebuild_floor(self, meta: dict[str, Any]) -> None:
        """After losing state.json: the floor from floor.json and the installed files."""
        for n in self.models.names():
            v = n.split("-", 1)[0]
            try:
                meta["highest"] = _max_version(meta.get("highest"), Version(v).text)
            except UpdateError:
                continue

    def _verify_entry(self, e: Mapping[str, Any]) -> str | None:
        try:
            digest, size = self.models.hash(e["file"])
        except FileNotFoundError:
            return "model file is missing"
        except UnsafePathError as err:
            return str(err)
        except OSError as err:
            if is_transient(err):
                log.warning("could not verify %s now: %s", e["file"], err)
                return "transient"
            return f"model file: {err.strerror or err}"
        if size != e["size"] or digest != e["sha256"]:
            return f"model file hash/size mismatch (size {size}, sha256 {digest[:12]})"
        return None


# ------------------------------------------------------------------ helpers


def _contract_of(offer: Offer) -> dict[str, Any] | None:
    f = offer.fields
    if f.inputs is None and f.outputs is None:
        return None
    out: dict[str, Any] = {}
    if f.inputs is not None:
        out["inputs"] = list(f.inputs)
    if f.outputs is not None:
        out["outputs"] = list(f.outputs)
    return out


def _is_dir(st: os.stat_result) -> bool:
    return _stat.S_ISDIR(st.st_mode)


def _fresh_state() -> dict[str, Any]:
    return {
        "format": FORMAT,
        "generation": 0,
        "current": None,
        "previous": None,
        "highest": None,
        "bad": {},
        "events": [],
    }


def _parse_state(data: bytes) -> dict[str, Any]:
    meta = json.loads(data.decode("utf-8"))
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError("unknown store state format")
    if meta.get("highest") is not None:
        Version(meta["highest"])
    if not isinstance(meta.get("bad", {}), dict):
        raise ValueError("bad 'bad' versions")
    for slot in ("current", "previous"):
        e = meta.get(slot)
        if e is None:
            continue
        if not (isinstance(e, dict) and {"version", "sha256", "size", "file"} <= set(e)):
            raise ValueError(f"bad {slot} entry")
        Version(e["version"])
        f = e["file"]
        if not (
            isinstance(f, str) and "/" not in f and f not in (".", "..") and f.endswith(".tflite")
        ):
            raise ValueError(f"bad file name {f!r} in {slot}")
        if not (isinstance(e["size"], int) and isinstance(e["sha256"], str)):
            raise ValueError(f"bad {slot} entry")
    return meta


def _copy(meta: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = json.loads(json.dumps(meta))
    return copied


def _event(meta: dict[str, Any], now: float, kind: str, version: str | None, detail: str) -> None:
    events = meta.setdefault("events", [])
    events.append({"time": int(now), "event": kind, "version": version, "detail": detail})
    del events[:-MAX_EVENTS]


def _max_version(a: str | None, b: str) -> str:
    if a is None or Version(b) > Version(a):
        return b
    return a


def _detect_runtime_version() -> str | None:
    try:
        import edgepipe

        return str(edgepipe.runtime_version())
    except Exception as e:  # no runtime: the minimum cannot be proven
        log.info("runtime version unknown (%s)", e)
        return None


def _detect_edgepipe_version() -> str | None:
    from importlib import metadata

    mod = sys.modules.get("edgepipe")
    v = getattr(mod, "__version__", None)
    if isinstance(v, str):
        return v
    try:
        return metadata.version("edgepipe")
    except metadata.PackageNotFoundError:
        return None


# ------------------------------------------------------------ child-process check

PROBE_OK, PROBE_REFUSED, PROBE_TRANSIENT = 0, 3, 4


def check_in_child(
    model: InstalledModel | str | os.PathLike[str],
    *,
    golden: Mapping[str, Any] | None = None,
    accelerator: str = "cpu",
    timeout: float = 120.0,
    command: Sequence[str] | None = None,
) -> None:
    """Load, compile and run ``model`` once in a child process.

    ``golden`` inputs are used if given, else zeros of the declared shapes.
    A target's declared ``inputs``/``outputs`` (``model.contract``) must match
    the model. ``command`` replaces the child's argv before the model path
    (default: ``python -m edgepipe.ota.probe``), e.g. to run an app's own
    check; it gets the model path only.
    A crash (signal), a refusal by edgepipe or a timeout raises
    :class:`HealthCheckError`; a transient failure (out of memory, interrupted)
    raises :class:`StoreError` and says nothing about the model.
    """
    import subprocess
    import tempfile

    path = str(model.path if isinstance(model, InstalledModel) else model)
    with tempfile.TemporaryDirectory(prefix="edgepipe-probe-") as tmp:
        if command is not None:
            args = [*command, path]
        else:
            args = [sys.executable, "-m", "edgepipe.ota.probe", path, "--accelerator", accelerator]
        if golden is not None and command is None:
            import numpy as np

            npz = os.path.join(tmp, "golden.npz")
            np.savez(npz, **{k: np.asarray(v) for k, v in golden.items()})  # type: ignore[arg-type]
            args += ["--golden", npz]
        contract = model.contract if isinstance(model, InstalledModel) else None
        if contract and command is None:
            cfile = os.path.join(tmp, "contract.json")
            with open(cfile, "w", encoding="utf-8") as f:
                json.dump(contract, f)
            args += ["--contract", cfile]
        try:
            r = subprocess.run(args, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as e:
            raise HealthCheckError(f"{path}: no answer within {timeout:g} s") from e
    tail = r.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    if r.returncode == PROBE_OK:
        return
    if r.returncode < 0:
        import signal

        try:
            sig = signal.Signals(-r.returncode).name
        except ValueError:
            sig = str(-r.returncode)
        raise HealthCheckError(f"{path}: the runtime crashed ({sig}) compiling or running it")
    if r.returncode == PROBE_TRANSIENT:
        raise StoreError(f"{path}: transient failure in the health check: {tail[0]}")
    raise HealthCheckError(f"{path}: {tail[0] or f'exit status {r.returncode}'}")


__all__ = [
    "INSTALL_STEPS",
    "InstalledModel",
    "ModelStore",
    "UpdateResult",
    "check_in_child",
    "is_transient",
]
