"""The publisher side: a TUF repository of models, built on ``tuf.api.metadata``.

Layout of a repository directory ``DIR``::

    DIR/keys/<role>-<keyid8>.pem     private keys (mode 0600); never serve this folder
    DIR/staged/targets.json          targets added but not yet published
    DIR/public/metadata/             what devices fetch: 1.root.json, 2.root.json, ...,
                                     N.targets.json, M.snapshot.json, timestamp.json
    DIR/public/targets/<name>/<sha256>.<version>.tflite   model files (consistent snapshots)

Serve ``DIR/public`` (any static HTTP server); devices are given its URL.
A model is the target ``<name>/<version>.tflite``; edgepipe's optional fields
live in the target's ``custom["edgepipe"]`` (see :mod:`edgepipe.ota.targets`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from securesystemslib.signer import CryptoSigner, Signer
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from .errors import MetadataError, UpdateError
from .targets import parse_edgepipe_custom
from .versions import Version, check_name, target_path

ROLES = ("root", "targets", "snapshot", "timestamp")
DEFAULT_EXPIRY = {
    "root": timedelta(days=365),
    "targets": timedelta(days=90),
    "snapshot": timedelta(days=7),
    "timestamp": timedelta(days=1),
}
_SERIALIZER = JSONSerializer(compact=False)


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``12h``, ``30d``, ``2w`` → timedelta (positive, at most 10 years)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    t = str(text).strip()
    if len(t) < 2 or t[-1] not in units or not t[:-1].isdigit() or len(t) > 12:
        raise UpdateError(f"bad duration {text!r}: use e.g. 12h, 30d, 2w")
    seconds = int(t[:-1]) * units[t[-1]]
    if not 0 < seconds <= 10 * 365 * 86400:
        raise UpdateError(f"duration {text!r} must be positive and at most 10 years")
    return timedelta(seconds=seconds)


def load_signer(path: str | os.PathLike[str]) -> CryptoSigner:
    """A signer from a PEM (PKCS#8) private key file."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    p = Path(path)
    try:
        data = p.read_bytes()
        return CryptoSigner(load_pem_private_key(data, None))  # type: ignore[arg-type]
    except (OSError, ValueError, TypeError) as e:
        raise UpdateError(f"cannot load private key {p}: {e}") from e


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


class Repository:
    """A TUF repository directory managed with ``tuf.api.metadata``.

    Args:
        directory: the repository directory (see the module docstring).
        signers: extra signers by role (e.g. an HSM or KMS signer); keys found in
            ``DIR/keys`` are used too. Only keys the root authorizes for a role sign it.
        expiry: validity of each role's metadata when it is (re)signed.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        signers: Mapping[str, Sequence[Signer]] | None = None,
        expiry: Mapping[str, timedelta] | None = None,
    ) -> None:
        self.dir = Path(directory)
        self.meta_dir = self.dir / "public" / "metadata"
        self.targets_dir = self.dir / "public" / "targets"
        self.keys_dir = self.dir / "keys"
        self.expiry = {**DEFAULT_EXPIRY, **(expiry or {})}
        self._extra = {r: list(s) for r, s in (signers or {}).items()}
        if not (self.meta_dir / "root.json").is_file():
            raise UpdateError(
                f"{self.dir} is not an edgepipe OTA repository (run `edgepipe ota repo init` first)"
            )

    # ------------------------------------------------------------------ creation

    @classmethod
    def init(
        cls,
        directory: str | os.PathLike[str],
        *,
        thresholds: Mapping[str, int] | None = None,
        key_files: Mapping[str, Sequence[str | os.PathLike[str]]] | None = None,
        signers: Mapping[str, Sequence[Signer]] | None = None,
        expiry: Mapping[str, timedelta] | None = None,
    ) -> Repository:
        """Create a repository: keys (generated unless given), root v1 and empty
        targets/snapshot/timestamp, all signed, with consistent snapshots."""
        d = Path(directory)
        if (d / "public" / "metadata" / "root.json").exists():
            raise UpdateError(f"{d} already holds a repository")
        thresholds = dict(thresholds or {})
        for role in thresholds:
            if role not in ROLES:
                raise UpdateError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        exp = {**DEFAULT_EXPIRY, **(expiry or {})}
        (d / "keys").mkdir(parents=True, exist_ok=True)
        os.chmod(d / "keys", 0o700)
        (d / "public" / "metadata").mkdir(parents=True, exist_ok=True)
        (d / "public" / "targets").mkdir(parents=True, exist_ok=True)
        role_signers: dict[str, list[Signer]] = {r: [] for r in ROLES}
        for role, files in (key_files or {}).items():
            if role not in ROLES:
                raise UpdateError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
            for f in files:
                loaded = load_signer(f)
                _keep_key(d / "keys", role, loaded)
                role_signers[role].append(loaded)
        for role, extra in (signers or {}).items():
            role_signers[role] += list(extra)
        for role in ROLES:
            want = max(1, thresholds.get(role, 1))
            while len(role_signers[role]) < want:
                new = CryptoSigner.generate_ed25519()
                _keep_key(d / "keys", role, new)
                role_signers[role].append(new)
        now = _now()
        root = Root(expires=now + exp["root"], consistent_snapshot=True)
        for role in ROLES:
            for signer in role_signers[role]:
                root.add_key(signer.public_key, role)
            root.roles[role].threshold = max(1, thresholds.get(role, 1))
        repo_meta: dict[str, Metadata[Any]] = {
            "root": Metadata(root),
            "targets": Metadata(Targets(expires=now + exp["targets"])),
            "snapshot": Metadata(Snapshot(expires=now + exp["snapshot"])),
            "timestamp": Metadata(Timestamp(expires=now + exp["timestamp"])),
        }
        for role in ROLES:
            for signer in role_signers[role]:
                repo_meta[role].sign(signer, append=True)
        md = d / "public" / "metadata"
        _dump(repo_meta["root"], md / "1.root.json")
        _dump(repo_meta["root"], md / "root.json")
        _dump(repo_meta["targets"], md / "1.targets.json")
        _dump(repo_meta["targets"], md / "targets.json")
        _dump(repo_meta["snapshot"], md / "1.snapshot.json")
        _dump(repo_meta["snapshot"], md / "snapshot.json")
        _dump(repo_meta["timestamp"], md / "timestamp.json")
        extra_signers = {
            r: [s for s in role_signers[r] if not isinstance(s, CryptoSigner)] for r in ROLES
        }
        return cls(d, signers=extra_signers, expiry=expiry)

    # --------------------------------------------------------------------- reads

    def load(self, role: str) -> Metadata[Any]:
        """The latest published metadata of a top-level role."""
        return Metadata.from_file(str(self.meta_dir / f"{role}.json"))

    def staged_targets(self) -> Metadata[Targets]:
        """Targets with unpublished additions (or the published targets)."""
        staged = self.dir / "staged" / "targets.json"
        if staged.is_file():
            return Metadata[Targets].from_file(str(staged))
        return Metadata[Targets].from_file(str(self.meta_dir / "targets.json"))

    def signers(self, role: str, root: Root | None = None) -> list[Signer]:
        """Signers whose keys ``root`` authorizes for ``role``."""
        root = root or self.load("root").signed
        allowed = set(root.roles[role].keyids)
        out: list[Signer] = [s for s in self._extra.get(role, []) if s.public_key.keyid in allowed]
        if self.keys_dir.is_dir():
            for p in sorted(self.keys_dir.glob("*.pem")):
                s = load_signer(p)
                if s.public_key.keyid in allowed and all(
                    o.public_key.keyid != s.public_key.keyid for o in out
                ):
                    out.append(s)
        if len(out) < root.roles[role].threshold:
            raise UpdateError(
                f"only {len(out)} key(s) for {role!r} available, "
                f"threshold is {root.roles[role].threshold}"
            )
        return out

    # ------------------------------------------------------------------- changes

    def add(
        self,
        model: str | os.PathLike[str],
        name: str,
        version: str,
        custom: Mapping[str, Any] | None = None,
    ) -> str:
        """Stage model file ``model`` as target ``<name>/<version>.tflite``; returns the path.

        ``custom`` is edgepipe's optional fields (stored under ``custom["edgepipe"]``).
        """
        check_name(name)
        path = target_path(name, Version(version))
        return self.add_file(model, path, custom)

    def add_file(
        self, local: str | os.PathLike[str], path: str, custom: Mapping[str, Any] | None = None
    ) -> str:
        """Stage any file as target ``path`` (e.g. a variant's model)."""
        if custom is not None:
            parse_edgepipe_custom(dict(custom))  # refuse what devices would refuse
        src = Path(local)
        if not src.is_file():
            raise UpdateError(f"{src} is not a regular file")
        tf = TargetFile.from_file(path, str(src), ["sha256"])
        if custom:
            tf.unrecognized_fields["custom"] = {"edgepipe": dict(custom)}
        targets = self.staged_targets()
        targets.signed.targets[path] = tf
        dirname, _, base = path.rpartition("/")
        dest_dir = self.targets_dir / dirname if dirname else self.targets_dir
        dest_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest_dir / f"{tf.hashes['sha256']}.{base}")
        (self.dir / "staged").mkdir(exist_ok=True)
        _dump(targets, self.dir / "staged" / "targets.json")
        return path

    def remove(self, path: str) -> None:
        """Stage the removal of target ``path`` (its file stays for old snapshots)."""
        targets = self.staged_targets()
        if targets.signed.targets.pop(path, None) is None:
            raise UpdateError(f"no target {path!r}")
        (self.dir / "staged").mkdir(exist_ok=True)
        _dump(targets, self.dir / "staged" / "targets.json")

    def publish(self) -> dict[str, int]:
        """Sign and publish staged targets, a new snapshot and a new timestamp."""
        root = self.load("root").signed
        now = _now()
        targets = self.staged_targets()
        targets.signed.version = self.load("targets").signed.version + 1
        targets.signed.expires = now + self.expiry["targets"]
        _sign(targets, self.signers("targets", root))
        _dump(targets, self.meta_dir / f"{targets.signed.version}.targets.json")
        _dump(targets, self.meta_dir / "targets.json")
        snapshot = self.load("snapshot")
        snapshot.signed.meta["targets.json"] = MetaFile(version=targets.signed.version)
        snapshot.signed.version += 1
        snapshot.signed.expires = now + self.expiry["snapshot"]
        _sign(snapshot, self.signers("snapshot", root))
        _dump(snapshot, self.meta_dir / f"{snapshot.signed.version}.snapshot.json")
        _dump(snapshot, self.meta_dir / "snapshot.json")
        ts = self._timestamp(snapshot.signed.version, root)
        staged = self.dir / "staged" / "targets.json"
        staged.unlink(missing_ok=True)
        return {
            "targets": targets.signed.version,
            "snapshot": snapshot.signed.version,
            "timestamp": ts,
        }

    def timestamp(self) -> int:
        """Re-sign the timestamp with a fresh expiry (run it more often than it expires)."""
        return self._timestamp(None, self.load("root").signed)

    def _timestamp(self, snapshot_version: int | None, root: Root) -> int:
        ts = self.load("timestamp")
        if snapshot_version is not None:
            ts.signed.snapshot_meta = MetaFile(version=snapshot_version)
        ts.signed.version += 1
        ts.signed.expires = _now() + self.expiry["timestamp"]
        _sign(ts, self.signers("timestamp", root))
        _dump(ts, self.meta_dir / "timestamp.json")
        return ts.signed.version

    def rotate(
        self,
        role: str = "root",
        *,
        new_keys: int = 1,
        threshold: int | None = None,
        keep_old: bool = False,
        key_files: Sequence[str | os.PathLike[str]] = (),
    ) -> dict[str, Any]:
        """Replace ``role``'s keys: a new root version signed by the old and new root keys.

        New keys are generated (or loaded from ``key_files``); the old keys of
        the role are revoked unless ``keep_old``. Other roles' metadata is
        re-signed with their (possibly new) keys and published.
        """
        if role not in ROLES:
            raise UpdateError(f"unknown role {role!r}")
        old_root_md = self.load("root")
        old_signers = self.signers("root", old_root_md.signed)
        new_signers: list[Signer] = []
        for f in key_files:
            loaded = load_signer(f)
            _keep_key(self.keys_dir, role, loaded)
            new_signers.append(loaded)
        while len(new_signers) < max(new_keys, threshold or 1):
            new = CryptoSigner.generate_ed25519()
            _keep_key(self.keys_dir, role, new)
            new_signers.append(new)
        root_md: Metadata[Root] = Metadata.from_bytes(old_root_md.to_bytes())
        root = root_md.signed
        if not keep_old:
            for keyid in list(root.roles[role].keyids):
                root.revoke_key(keyid, role)
        for s in new_signers:
            root.add_key(s.public_key, role)
        if threshold is not None:
            root.roles[role].threshold = threshold
        root.version += 1
        root.expires = _now() + self.expiry["root"]
        root_md.signatures.clear()
        signing = list(old_signers)
        if role == "root":
            signing += new_signers
        else:
            signing += [s for s in self.signers("root", root) if s not in signing]
        for signer in signing:
            root_md.sign(signer, append=True)
        _dump(root_md, self.meta_dir / f"{root.version}.root.json")
        _dump(root_md, self.meta_dir / "root.json")
        published = self.publish() if role != "root" else {}
        return {
            "root_version": root.version,
            "role": role,
            "keyids": [s.public_key.keyid for s in new_signers],
            **published,
        }


def _keep_key(keys_dir: Path, role: str, signer: CryptoSigner) -> None:
    """Store ``signer``'s private key as ``keys_dir/<role>-<keyid8>.pem`` (0600)."""
    path = keys_dir / f"{role}-{signer.public_key.keyid[:8]}.pem"
    if not path.exists():
        _write_private(path, signer.private_bytes)


def _sign(md: Metadata[Any], signers: Sequence[Signer]) -> None:
    md.signatures.clear()
    for s in signers:
        md.sign(s, append=True)


def _dump(md: Metadata[Any], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(md.to_bytes(_SERIALIZER))
    os.replace(tmp, path)


def read_custom(text: str | None) -> dict[str, Any] | None:
    """Parse ``--custom JSON`` (an object) for :meth:`Repository.add`."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as e:
        raise MetadataError(f"--custom is not valid JSON: {e}") from e
    if not isinstance(value, dict):
        raise MetadataError("--custom must be a JSON object")
    return value


__all__ = ["DEFAULT_EXPIRY", "ROLES", "Repository", "load_signer", "parse_duration", "read_custom"]
