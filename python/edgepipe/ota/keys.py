"""Ed25519 keys for signing and verifying model manifests.

Keys are stored as PEM: the private key as unencrypted PKCS#8 (file mode 0600),
the public key as SubjectPublicKeyInfo. A key is named by its *key id*, the
hex sha256 of its 32 raw public bytes, so a manifest signature can say which
key made it without embedding the key itself.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .errors import ManifestError, UpdateError

PublicKeyLike = Ed25519PublicKey | bytes | str | os.PathLike
"""A public key object, PEM bytes, or the path of a PEM file."""


def generate_private_key() -> Ed25519PrivateKey:
    """Return a new random Ed25519 private key."""
    return Ed25519PrivateKey.generate()


def key_id(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """Return the key id (hex sha256 of the raw public key) of ``key``."""
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    """Serialize a private key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    """Serialize the public half of ``key`` as SubjectPublicKeyInfo PEM."""
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_keypair(prefix: str | os.PathLike, *, overwrite: bool = False) -> tuple[Path, Path, str]:
    """Generate a key pair and write ``PREFIX.key`` (0600) and ``PREFIX.pub``.

    Returns ``(private_path, public_path, key_id)``. Refuses to overwrite an
    existing file unless ``overwrite`` is true, because losing a signing key
    silently would lock every device out of future updates.
    """
    prefix = Path(prefix)
    priv_path = prefix.with_name(prefix.name + ".key")
    pub_path = prefix.with_name(prefix.name + ".pub")
    if not overwrite:
        for p in (priv_path, pub_path):
            if p.exists():
                raise UpdateError(f"{p} already exists (use --force to overwrite)")
    key = generate_private_key()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    # Created with 0600 from the start: a chmod afterwards would leave a window
    # in which the private key is world-readable.
    fd = os.open(priv_path, flags, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_key_pem(key))
    pub_path.write_bytes(public_key_pem(key))
    return priv_path, pub_path, key_id(key)


def load_private_key(source: str | os.PathLike | bytes) -> Ed25519PrivateKey:
    """Load an Ed25519 private key from PEM bytes or a PEM file path."""
    data = source if isinstance(source, bytes) else _read(source, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise UpdateError(f"not a usable private key: {e}") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise UpdateError("private key is not Ed25519")
    return key


def load_public_key(source: PublicKeyLike) -> Ed25519PublicKey:
    """Load an Ed25519 public key from an object, PEM bytes or a PEM file path.

    A private key PEM is refused: devices should never hold signing keys.
    """
    if isinstance(source, Ed25519PublicKey):
        return source
    data = source if isinstance(source, bytes) else _read(source, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as e:
        raise UpdateError(f"not a usable public key: {e}") from e
    if not isinstance(key, Ed25519PublicKey):
        raise UpdateError("public key is not Ed25519")
    return key


def _read(path: str | os.PathLike, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise UpdateError(f"cannot read {what} {path}: {e.strerror or e}") from e


@dataclass
class TrustedKeys:
    """The set of public keys a device trusts, and how many must sign.

    ``threshold`` distinct trusted keys must each produce a valid signature
    over a manifest before any of its fields is believed.
    """

    keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    threshold: int = 1

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError("threshold must be at least 1")
        if self.threshold > len(self.keys):
            raise ValueError(
                f"threshold {self.threshold} exceeds the {len(self.keys)} trusted key(s)"
            )

    @classmethod
    def from_keys(cls, keys: Iterable[PublicKeyLike], threshold: int = 1) -> TrustedKeys:
        """Build a key set from public key objects, PEM bytes or PEM file paths."""
        loaded = [load_public_key(k) for k in keys]
        return cls({key_id(k): k for k in loaded}, threshold)

    @classmethod
    def coerce(
        cls, value: TrustedKeys | PublicKeyLike | Iterable[PublicKeyLike] | Mapping,
        threshold: int | None = None,
    ) -> TrustedKeys:
        """Accept a TrustedKeys, a single key, or an iterable of keys."""
        if isinstance(value, TrustedKeys):
            if threshold is not None and threshold != value.threshold:
                return cls(dict(value.keys), threshold)
            return value
        if isinstance(value, Mapping):
            raise TypeError("pass trusted keys as a list of keys, not a mapping")
        if isinstance(value, (Ed25519PublicKey, bytes, str, os.PathLike)):
            value = [value]
        return cls.from_keys(value, threshold if threshold is not None else 1)

    def verify(self, key_id_: str, signature: bytes, message: bytes) -> bool:
        """Return True iff ``key_id_`` is trusted and ``signature`` is valid for it."""
        key = self.keys.get(key_id_)
        if key is None:
            return False
        try:
            key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def __contains__(self, key_id_: object) -> bool:
        return key_id_ in self.keys


def require_ed25519_signature(sig: bytes) -> bytes:
    """Check a raw signature's length; Ed25519 signatures are exactly 64 bytes."""
    if len(sig) != 64:
        raise ManifestError(f"signature has {len(sig)} bytes, expected 64")
    return sig


__all__ = [
    "PublicKeyLike",
    "TrustedKeys",
    "generate_private_key",
    "key_id",
    "load_private_key",
    "load_public_key",
    "private_key_pem",
    "public_key_pem",
    "write_keypair",
]
