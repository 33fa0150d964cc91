"""The on-device model store: verified install, current/previous/bundled, crash recovery.

Layout under the store directory::

    store.json                      metadata, the single source of truth
    device-id                       random stable id used for rollout bucketing
    .lock                           advisory lock held while the store changes
    models/<version>-<sha12>.tflite installed model files (current and previous)
    manifests/<version>-<sha12>.json the signed manifest each model came with
    downloads/<sha256>.partial      an interrupted download, resumed next time

Every change follows the same order: write the new file to a temporary name,
fsync it, rename it into place, fsync the directory; only then rewrite
``store.json`` the same way. A crash at any point therefore leaves either the
old metadata (and an unreferenced file, removed on the next open) or the new
metadata with every file it names already durable.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .._files import fsync_dir, hash_file, unlink_logged
from ..errors import EdgepipeError
from . import download as _dl
from .errors import (
    IntegrityError,
    ManifestError,
    RollbackError,
    StoreError,
    UpdateError,
)
from .keys import PublicKeyLike, TrustedKeys
from .manifest import MAX_MANIFEST_BYTES, Manifest, Version, check_name, verify_manifest

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the in-process lock still applies
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

METADATA = "store.json"
FORMAT = 1
MAX_EVENTS = 50
FREE_SPACE_MARGIN = 1 << 20
"""Bytes to leave free beyond the model itself, so metadata can still be written."""

INSTALL_STEPS = (
    "begin",
    "downloaded",
    "manifest_written",
    "model_renamed",
    "models_dir_synced",
    "metadata_tmp_written",
    "metadata_renamed",
    "metadata_synced",
    "cleaned",
)
"""Named points of :meth:`ModelStore.install`, in order; see :data:`step_hook`."""

step_hook: Callable[[str], None] | None = None
"""Test seam: called with each step name of an install. Crash tests set it in a
child process to kill the process at a chosen step."""


def _step(name: str) -> None:
    if step_hook is not None:
        step_hook(name)


@dataclass(frozen=True)
class InstalledModel:
    """A model file the store has verified and can serve."""

    name: str | None
    version: Version
    path: Path
    sha256: str | None
    size: int
    source: str
    """``"current"``, ``"previous"`` or ``"bundled"``."""
    variant: str | None = None


@dataclass(frozen=True)
class UpdateResult:
    """What :meth:`ModelStore.update` did."""

    status: str
    """``"installed"``, ``"up_to_date"`` or ``"not_in_rollout"``."""
    manifest: Manifest
    installed: InstalledModel | None
    variant: str | None
    reason: str


class ModelStore:
    """A directory of verified models for one model name.

    Args:
        directory: where the store lives; created if missing.
        trusted_keys: public keys (objects, PEM bytes or PEM paths) or a
            :class:`TrustedKeys`; manifests must carry ``threshold`` valid
            signatures from distinct keys among them.
        threshold: number of distinct trusted signatures required.
        name: the model name this store accepts; if None, the name of the
            first installed manifest binds the store.
        bundled: path of the model shipped inside the app, served when
            nothing installed is usable.
        bundled_version: its version; updates must be newer.
        bundled_sha256: if given, the bundled file is checked against it.
        device_id: stable id for rollout bucketing; by default a random id is
            created once and kept in the store directory.
        edgepipe_version, runtime_version: local versions compared with the
            manifest's minimums; detected from edgepipe if omitted (the runtime
            version only when a manifest asks for one).
        max_model_bytes: refuse manifests that declare a larger model.
        client: an httpx client to use; by default the store makes one on first
            use and :meth:`close` closes it.
        timeout: per-read network timeout in seconds.
        max_download_seconds: overall time limit of one model download.
        clock: wall-clock source used for manifest expiry.
        opener: opens files for writing; injectable to simulate disk faults.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        trusted_keys: TrustedKeys | PublicKeyLike | list[PublicKeyLike],
        *,
        threshold: int | None = None,
        name: str | None = None,
        bundled: str | os.PathLike | None = None,
        bundled_version: str | int = "0",
        bundled_sha256: str | None = None,
        device_id: str | None = None,
        edgepipe_version: str | None = None,
        runtime_version: str | None = None,
        max_model_bytes: int = 2 << 30,
        client: httpx.Client | None = None,
        timeout: float = _dl.DEFAULT_TIMEOUT,
        max_download_seconds: float | None = 3600.0,
        clock: Callable[[], float] = time.time,
        opener: _dl.Opener = _dl.default_opener,
    ) -> None:
        self.dir = Path(directory)
        self.trusted = TrustedKeys.coerce(trusted_keys, threshold)
        self._name = check_name(name) if name is not None else None
        self.bundled = Path(bundled) if bundled is not None else None
        self.bundled_version = Version(bundled_version)
        self.bundled_sha256 = bundled_sha256
        self.edgepipe_version = (
            edgepipe_version if edgepipe_version is not None else _detect_edgepipe_version()
        )
        self.runtime_version = runtime_version
        self.max_model_bytes = max_model_bytes
        self._own_client = client is None
        self._client = client
        self.timeout = timeout
        self.max_download_seconds = max_download_seconds
        self.clock = clock
        self.opener = opener
        self._tlock = threading.RLock()
        self._verified: dict[str, InstalledModel] = {}
        for sub in ("models", "manifests", "downloads"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.device_id = device_id if device_id is not None else self._device_id()
        with self._locked():
            self._meta = self._recover()

    # ------------------------------------------------------------------ queries

    @property
    def name(self) -> str | None:
        """The model name this store is bound to, if any."""
        return self._name or self._meta.get("name")

    @property
    def current_version(self) -> Version | None:
        """Version of the installed current model, or None."""
        cur = self._meta.get("current")
        return Version(cur["version"]) if cur else None

    @property
    def bad_versions(self) -> dict[str, str]:
        """Versions refused for good, with the reason each was marked bad."""
        return dict(self._meta.get("bad_versions", {}))

    @property
    def events(self) -> list[dict[str, Any]]:
        """The most recent store events (installs, rollbacks, recoveries)."""
        return list(self._meta.get("events", []))

    def status(self) -> dict[str, Any]:
        """A JSON-able summary of the store for logs and diagnostics."""
        with self._tlock:
            m = self._meta
            return {
                "dir": str(self.dir),
                "name": self.name,
                "current": m.get("current"),
                "previous": m.get("previous"),
                "highest_version": m.get("highest_version"),
                "bad_versions": dict(m.get("bad_versions", {})),
                "bundled": str(self.bundled) if self.bundled else None,
                "serving": self._serving_or_none_desc(),
            }

    def serving(self) -> InstalledModel:
        """The verified model to serve: current, else previous, else bundled.

        Raises StoreError if none is usable.
        """
        with self._tlock:
            for slot in ("current", "previous"):
                entry = self._meta.get(slot)
                if entry and entry["file"] in self._verified:
                    return self._verified[entry["file"]]
            if self.bundled is not None:
                return self._verify_bundled()
            raise StoreError(f"no verified model in {self.dir} and no bundled model")

    def current_path(self) -> Path:
        """Path of the verified model to serve (see :meth:`serving`)."""
        return self.serving().path

    def load(self) -> Any:
        """Load the model to serve with ``edgepipe.Model.load``.

        If the runtime refuses an installed model, that version is marked bad
        and the next candidate (previous, then bundled) is tried.
        """
        import edgepipe

        from ..errors import ModelError

        while True:
            chosen = self.serving()
            try:
                return edgepipe.Model.load(str(chosen.path))
            except ModelError as e:
                if chosen.source == "bundled":
                    raise
                self.mark_bad(chosen.version, f"runtime refused the model: {e}")

    def verify(self) -> InstalledModel:
        """Re-hash the installed files now (not only at open) and return what to serve."""
        with self._locked():
            self._verified.clear()
            self._meta = self._recover()
        return self.serving()

    # ----------------------------------------------------------------- updates

    def fetch_manifest(self, source: _dl.Source) -> Manifest:
        """Fetch and fully verify a manifest (signatures, expiry, name, compatibility)."""
        data = _dl.fetch_bytes(source, max_bytes=MAX_MANIFEST_BYTES, client=self._http(source),
                               timeout=self.timeout)
        return self.verify_manifest_bytes(data)

    def verify_manifest_bytes(self, data: bytes) -> Manifest:
        """Verify manifest bytes against this store's keys, clock and constraints."""
        manifest = verify_manifest(data, self.trusted, now=self.clock())
        name = self.name
        if name is not None and manifest.name != name:
            raise ManifestError(
                f"manifest is for model {manifest.name!r}, this store holds {name!r}")
        if manifest.size > self.max_model_bytes:
            raise ManifestError(
                f"model of {manifest.size} bytes exceeds the limit of {self.max_model_bytes}"
            )
        runtime = self.runtime_version
        if runtime is None and manifest.min_runtime_version is not None:
            runtime = _detect_runtime_version()
        manifest.check_compatible(self.edgepipe_version, runtime)
        return manifest

    def update(
        self,
        manifest_source: _dl.Source,
        *,
        model_source: _dl.Source | None = None,
        progress: _dl.ProgressCallback | bool | None = None,
    ) -> UpdateResult:
        """Check ``manifest_source`` and install its model if it applies to this device.

        An unchanged manifest (same version and hash as installed) is the
        normal "nothing new" answer and returns ``status="up_to_date"``. An
        older version, the same version with different content, or a version
        marked bad raises RollbackError. The model is fetched from
        ``model_source`` or, by default, from the manifest's ``file`` next to
        the manifest.
        """
        from .rollout import experiment_for

        manifest = self.fetch_manifest(manifest_source)
        cur = self._meta.get("current")
        if cur and Version(cur["version"]) == manifest.version:
            if cur["sha256"] != manifest.sha256:
                raise RollbackError(
                    f"version {manifest.version} is installed with a different sha256"
                )
            return UpdateResult("up_to_date", manifest, self.serving(), cur.get("variant"),
                                f"version {manifest.version} is already installed")
        self._check_newer(manifest)
        variant = experiment_for(manifest).assign(self.device_id)
        if variant is None:
            return UpdateResult(
                "not_in_rollout", manifest, None, None,
                f"device is outside the {manifest.rollout.percent_bp / 100}% rollout",
            )
        src = model_source if model_source is not None else _dl.resolve(
            manifest_source, manifest.file)
        installed = self.install(manifest, src, variant=variant, progress=progress)
        return UpdateResult("installed", manifest, installed, variant,
                            f"installed {manifest.name} {manifest.version}")

    def install(
        self,
        manifest: Manifest | bytes,
        model_source: _dl.Source,
        *,
        variant: str | None = None,
        progress: _dl.ProgressCallback | bool | None = None,
    ) -> InstalledModel:
        """Download, verify and atomically install the model a manifest describes.

        ``manifest`` may be a verified :class:`Manifest` or raw bytes (verified
        here). On any error the store is unchanged and keeps serving what it
        served before.
        """
        if isinstance(manifest, bytes):
            manifest = self.verify_manifest_bytes(manifest)
        with self._locked():
            _step("begin")
            # Re-check under the lock: another process may have installed meanwhile.
            self._meta = self._read_meta_or(self._meta)
            self._check_newer(manifest)
            stem = f"{manifest.version}-{manifest.sha256[:12]}"
            partial = self.dir / "downloads" / f"{manifest.sha256}.partial"
            self._drop_other_partials(partial)
            self._check_free_space(manifest.size, partial)
            _dl.download(
                model_source, partial, size=manifest.size, sha256=manifest.sha256,
                client=self._http(model_source), progress=progress, timeout=self.timeout,
                max_seconds=self.max_download_seconds, opener=self.opener,
            )
            _step("downloaded")
            model_rel = f"models/{stem}.tflite"
            manifest_rel = f"manifests/{stem}.json"
            try:
                self._atomic_write(self.dir / manifest_rel, manifest.raw, sync_dir=False)
                _step("manifest_written")
                os.replace(partial, self.dir / model_rel)
                _step("model_renamed")
                fsync_dir(self.dir / "models")
                fsync_dir(self.dir / "manifests")
                fsync_dir(self.dir / "downloads")
                _step("models_dir_synced")
            except OSError as e:
                # The disk is failing or full: give back every byte this install took.
                self._discard_files(model_rel, manifest_rel)
                unlink_logged(partial)
                raise StoreError(f"installing {manifest.version} failed: {e.strerror or e}") from e
            except StoreError:
                self._discard_files(model_rel, manifest_rel)
                unlink_logged(partial)
                raise

            entry = {
                "version": manifest.version.text,
                "sha256": manifest.sha256,
                "size": manifest.size,
                "file": model_rel,
                "manifest": manifest_rel,
                "installed_at": int(self.clock()),
                "variant": variant,
            }
            meta = _copy(self._meta)
            dropped = meta.get("previous")
            meta["name"] = manifest.name
            meta["previous"] = meta.get("current")
            meta["current"] = entry
            meta["highest_version"] = _max_version(meta.get("highest_version"),
                                                   manifest.version.text)
            _event(meta, self.clock(), "installed", manifest.version.text,
                   f"sha256 {manifest.sha256[:12]}, variant {variant}")
            try:
                self._write_meta(meta, steps=True)
            except StoreError:
                self._discard_files(model_rel, manifest_rel)
                raise
            self._meta = meta
            installed = InstalledModel(manifest.name, manifest.version, self.dir / model_rel,
                                       manifest.sha256, manifest.size, "current", variant)
            self._verified[model_rel] = installed
            prev = meta["previous"]
            if prev is not None and prev["file"] in self._verified:
                self._verified[prev["file"]] = _with_source(self._verified[prev["file"]],
                                                            "previous")
            if dropped is not None:
                self._verified.pop(dropped["file"], None)
                self._discard_files(dropped["file"], dropped["manifest"])
            _step("cleaned")
            return installed

    def mark_bad(self, version: str | Version, reason: str) -> None:
        """Refuse ``version`` for good; if it is current, fall back to previous.

        Used after a failed health check or an automatic rollback. The bad
        model's files are deleted once the metadata no longer names them.
        """
        v = Version(version)
        with self._locked():
            self._meta = self._read_meta_or(self._meta)
            meta = _copy(self._meta)
            meta.setdefault("bad_versions", {})[v.text] = reason
            meta["highest_version"] = _max_version(meta.get("highest_version"), v.text)
            removed = []
            cur, prev = meta.get("current"), meta.get("previous")
            if cur and Version(cur["version"]) == v:
                removed.append(cur)
                meta["current"], meta["previous"] = prev, None
            elif prev and Version(prev["version"]) == v:
                removed.append(prev)
                meta["previous"] = None
            _event(meta, self.clock(), "marked_bad", v.text, reason)
            self._write_meta(meta)
            self._meta = meta
            for entry in removed:
                self._verified.pop(entry["file"], None)
                self._discard_files(entry["file"], entry["manifest"])
            if meta.get("current") and meta["current"]["file"] in self._verified:
                f = meta["current"]["file"]
                self._verified[f] = _with_source(self._verified[f], "current")

    def rollback(self, reason: str) -> InstalledModel:
        """Mark the current version bad and return what is served instead."""
        cur = self.current_version
        if cur is None:
            raise StoreError("nothing installed to roll back")
        self.mark_bad(cur, reason)
        return self.serving()

    def close(self) -> None:
        """Close the HTTP client the store created (a client passed in is left open)."""
        if self._own_client and self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> ModelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- internals

    def _http(self, source: _dl.Source) -> httpx.Client | None:
        # One client per store, created on first use, so connections and the
        # TLS context are reused across the manifest and model requests.
        if not _dl.is_url(source):
            return None
        if self._client is None:
            self._client = _dl.make_client(self.timeout)
        return self._client

    def _check_newer(self, manifest: Manifest) -> None:
        bad = self._meta.get("bad_versions", {})
        for text, reason in bad.items():
            if Version(text) == manifest.version:
                raise RollbackError(f"version {manifest.version} was marked bad: {reason}")
        floor = self.bundled_version
        for text in (self._meta.get("highest_version"),
                     (self._meta.get("current") or {}).get("version")):
            if text is not None and Version(text) > floor:
                floor = Version(text)
        if manifest.version <= floor:
            raise RollbackError(
                f"version {manifest.version} is not newer than {floor} (rollback refused)"
            )

    def _check_free_space(self, size: int, partial: Path) -> None:
        try:
            have = partial.stat().st_size
        except FileNotFoundError:
            have = 0
        free = shutil.disk_usage(self.dir).free
        need = size - have + FREE_SPACE_MARGIN
        if free < need:
            raise StoreError(f"not enough free space: need {need} bytes, {free} free")

    def _drop_other_partials(self, keep: Path) -> None:
        for p in (self.dir / "downloads").iterdir():
            if p != keep:
                unlink_logged(p)

    def _discard_files(self, *rels: str) -> None:
        for rel in rels:
            unlink_logged(self.dir / rel)

    def _device_id(self) -> str:
        from .rollout import load_or_create_device_id

        return load_or_create_device_id(self.dir / "device-id", opener=self.opener)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._tlock:
            if fcntl is None:
                yield
                return
            fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing releases the flock

    def _atomic_write(self, path: Path, data: bytes, *, sync_dir: bool = True,
                      steps: bool = False) -> None:
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            f = self.opener(tmp, "wb")
            try:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            finally:
                f.close()
            if steps:
                _step("metadata_tmp_written")
            os.replace(tmp, path)
            if steps:
                _step("metadata_renamed")
            if sync_dir:
                fsync_dir(path.parent)
        except OSError as e:
            unlink_logged(tmp)
            raise StoreError(f"writing {path.name} failed: {e.strerror or e}") from e

    def _write_meta(self, meta: dict[str, Any], *, steps: bool = False) -> None:
        meta["generation"] = int(meta.get("generation", 0)) + 1
        data = json.dumps(meta, indent=1, sort_keys=True).encode("utf-8")
        self._atomic_write(self.dir / METADATA, data, steps=steps)
        if steps:
            _step("metadata_synced")

    def _read_meta_or(self, fallback: dict[str, Any]) -> dict[str, Any]:
        path = self.dir / METADATA
        try:
            return _parse_meta(path.read_bytes())
        except FileNotFoundError:
            return fallback
        except (OSError, ValueError) as e:
            log.warning("cannot re-read %s (%s); keeping the in-memory copy", path, e)
            return fallback

    def _recover(self) -> dict[str, Any]:
        """Bring the directory in line with the metadata after a crash, and verify."""
        path = self.dir / METADATA
        changed = False
        try:
            meta = _parse_meta(path.read_bytes())
        except FileNotFoundError:
            meta = _fresh_meta()
        except (OSError, ValueError) as e:
            # Atomic writes make this a disk fault, not a crash; keep the evidence
            # and start over from the bundled model rather than not working at all.
            aside = path.with_name(f"{METADATA}.corrupt-{int(time.time())}")
            log.error("store metadata %s is unreadable (%s); moved to %s", path, e, aside)
            with contextlib.suppress(OSError):
                os.replace(path, aside)
            meta = _fresh_meta()
            _event(meta, self.clock(), "metadata_reset", None, f"unreadable metadata: {e}")
            changed = True
        if self._name is not None and meta.get("name") not in (None, self._name):
            raise StoreError(
                f"{self.dir} holds model {meta.get('name')!r}, not {self._name!r}"
            )

        referenced = {"store.json", "device-id", ".lock"}
        for slot in ("current", "previous"):
            entry = meta.get(slot)
            if entry:
                referenced.update((entry["file"], entry["manifest"]))
        # Leftover temporaries and files a crashed install never recorded.
        for sub in (".", "models", "manifests"):
            for p in (self.dir / sub).iterdir():
                rel = p.name if sub == "." else f"{sub}/{p.name}"
                if p.is_file() and (p.name.endswith(".tmp") or
                                    (sub != "." and rel not in referenced)):
                    log.info("removing leftover %s", p)
                    unlink_logged(p)

        for slot in ("current", "previous"):
            entry = meta.get(slot)
            if not entry:
                continue
            problem = self._verify_entry(entry, slot, meta.get("name"))
            if problem is None:
                continue
            log.error("%s model %s failed verification: %s", slot, entry["version"], problem)
            _event(meta, self.clock(), "verification_failed", entry["version"], problem)
            self._discard_files(entry["file"], entry["manifest"])
            meta[slot] = None
            changed = True
        if meta.get("current") is None and meta.get("previous") is not None:
            # Previous was verified above; it becomes what we serve.
            meta["current"], meta["previous"] = meta["previous"], None
            f = meta["current"]["file"]
            self._verified[f] = _with_source(self._verified[f], "current")
            changed = True
        if changed:
            self._write_meta(meta)
        return meta

    def _verify_entry(self, entry: dict[str, Any], slot: str, name: str | None) -> str | None:
        """Re-check an installed model: its signed manifest and the file's sha256.

        Expiry is not checked here: it guards against being offered stale
        updates, not against serving a model that was valid when installed.
        """
        try:
            raw = (self.dir / entry["manifest"]).read_bytes()
            manifest = verify_manifest(raw, self.trusted, check_expiry=False)
        except (OSError, UpdateError) as e:
            return f"manifest: {e}"
        if (manifest.sha256 != entry["sha256"] or manifest.version != Version(entry["version"])
                or manifest.size != entry["size"]):
            return "manifest does not match the store metadata"
        path = self.dir / entry["file"]
        try:
            digest, size = hash_file(path)
        except OSError as e:
            return f"model file: {e.strerror or e}"
        if size != entry["size"] or digest != entry["sha256"]:
            return f"model file hash/size mismatch (size {size}, sha256 {digest[:12]})"
        self._verified[entry["file"]] = InstalledModel(
            name, Version(entry["version"]), path, digest, size, slot, entry.get("variant"))
        return None

    def _verify_bundled(self) -> InstalledModel:
        assert self.bundled is not None
        key = "bundled:" + str(self.bundled)
        if key in self._verified:
            return self._verified[key]
        try:
            digest, size = hash_file(self.bundled)
        except OSError as e:
            raise StoreError(f"bundled model {self.bundled}: {e.strerror or e}") from e
        if self.bundled_sha256 is not None and digest != self.bundled_sha256:
            raise IntegrityError(f"bundled model {self.bundled} does not match its sha256")
        m = InstalledModel(self.name, self.bundled_version, self.bundled, digest, size, "bundled")
        self._verified[key] = m
        return m

    def _serving_or_none_desc(self) -> dict[str, Any] | None:
        try:
            s = self.serving()
        except UpdateError:
            return None
        return {"version": s.version.text, "source": s.source, "path": str(s.path)}


# ------------------------------------------------------------------ helpers


def _fresh_meta() -> dict[str, Any]:
    return {"format": FORMAT, "name": None, "generation": 0, "current": None,
            "previous": None, "highest_version": None, "bad_versions": {}, "events": []}


def _parse_meta(data: bytes) -> dict[str, Any]:
    meta = json.loads(data.decode("utf-8"))
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError("unknown store metadata format")
    for slot in ("current", "previous"):
        e = meta.get(slot)
        if e is not None and not (isinstance(e, dict) and {"version", "sha256", "size", "file",
                                                           "manifest"} <= set(e)):
            raise ValueError(f"bad {slot} entry")
        if e is not None:
            # The metadata names files; never let it point outside the store.
            for key, sub in (("file", "models/"), ("manifest", "manifests/")):
                rel = e[key]
                if not (isinstance(rel, str) and rel.startswith(sub)
                        and "/" not in rel[len(sub):] and ".." not in rel):
                    raise ValueError(f"bad path {rel!r} in {slot}")
    return meta


def _copy(meta: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(meta))


def _event(meta: dict[str, Any], now: float, kind: str, version: str | None,
           detail: str) -> None:
    events = meta.setdefault("events", [])
    events.append({"time": int(now), "event": kind, "version": version, "detail": detail})
    del events[:-MAX_EVENTS]


def _max_version(a: str | None, b: str) -> str:
    if a is None or Version(b) > Version(a):
        return b
    return a


def _with_source(m: InstalledModel, source: str) -> InstalledModel:
    return InstalledModel(m.name, m.version, m.path, m.sha256, m.size, source, m.variant)








def _detect_runtime_version() -> str | None:
    # Only asked when a manifest sets a minimum: it loads the runtime library.
    try:
        import edgepipe

        return str(edgepipe.runtime_version())
    except (ImportError, AttributeError) as e:
        log.info("runtime version unknown (%s)", e)
    except EdgepipeError as e:
        log.warning("runtime version unknown: %s", e)
    return None


def _detect_edgepipe_version() -> str | None:
    import sys
    from importlib import metadata

    mod = sys.modules.get("edgepipe")
    v = getattr(mod, "__version__", None)
    if isinstance(v, str):
        return v
    try:
        return metadata.version("edgepipe")
    except metadata.PackageNotFoundError:
        return None


__all__ = ["INSTALL_STEPS", "InstalledModel", "ModelStore", "UpdateResult"]
