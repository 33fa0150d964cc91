"""Shipping a model to cluster nodes by content hash.

The driver puts the model's bytes into Ray's object store once
(:meth:`ModelRef.from_model`); each actor or task that needs it calls
:meth:`ModelRef.materialize`, which checks the bytes' SHA-256 against the hash
the driver computed, writes them once per node into
``<cache dir>/ray-models/<sha256>.tflite`` (atomically, and only if no verified
copy is there), and loads that file with edgepipe's verifier. The node-local
file is also what the node's XNNPACK weight cache is keyed on, so every actor
on a node shares one weight cache.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import Model
from .._files import atomic_write, cache_dir
from ..errors import ModelError
from .errors import require_ray


def node_cache_dir() -> Path:
    """Where this node keeps shipped models (under edgepipe's cache dir)."""
    return cache_dir() / "ray-models"


def _sha256(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ModelRef:
    """A model on the cluster: its hash, size, a display name, and the object-store ref."""

    sha256: str
    size: int
    name: str
    data: Any  # ray.ObjectRef[bytes]

    @classmethod
    def from_model(cls, model: Model | str | os.PathLike[str]) -> ModelRef:
        """Verify ``model`` locally, then put its bytes into the object store once."""
        ray = require_ray()
        m = model if isinstance(model, Model) else Model.load(model)
        data = bytes(m.memoryview())
        name = m.path.name if m.path is not None else f"{m.sha256[:12]}.tflite"
        return cls(sha256=m.sha256, size=len(data), name=name, data=ray.put(data))

    def materialize(self) -> Path:
        """The verified node-local copy of the model (written on first use on this node).

        Raises:
            ModelError: the bytes that arrived do not have the expected hash or size.
        """
        path = node_cache_dir() / f"{self.sha256}.tflite"
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as f:
                if _sha256(f.read()) == self.sha256:
                    return path
        ray = require_ray()
        data = ray.get(self.data)
        if len(data) != self.size or _sha256(data) != self.sha256:
            raise ModelError(
                f"model {self.name} arrived damaged on this node: expected sha256 "
                f"{self.sha256} ({self.size} bytes), got {_sha256(data)} ({len(data)} bytes)"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)
        return path

    def load(self) -> Model:
        """:meth:`materialize`, then map and verify the node-local file."""
        return Model.load(self.materialize())
