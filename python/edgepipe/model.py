"""Models: verified .tflite files held in sealed memory, and what they take and give.

Layer: above tensors, files and the runtime loader; below the weight cache,
accelerators, sessions and pools. :meth:`Model.compile` is the one call that
reaches up (to :class:`edgepipe.Session`), imported when it runs.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from . import _args, _core
from ._runtime import load_runtime
from .errors import InputError
from .tensors import Quantization, Signature, TensorInfo

if TYPE_CHECKING:
    from .accelerators.spec import AcceleratorSpec
    from .session import Session

__all__ = ["Model", "Quantization", "Signature", "TensorInfo", "as_model"]


def as_model(value: Model | str | os.PathLike[str], argument: str = "model") -> Model:
    """``value`` if it is a :class:`Model`, else the model loaded from that path.

    Raises:
        InputError: ``value`` is neither a Model nor a path (names ``argument``).
    """
    if isinstance(value, Model):
        return value
    if isinstance(value, (str, os.PathLike)):
        return Model.load(value)
    raise InputError(
        f"{argument} must be an edgepipe.Model or a path to a .tflite file, "
        f"not {type(value).__name__}"
    )


log = logging.getLogger(__name__)


class Model:
    """A verified model, shared by every session and pool made from it.

    Load one with :meth:`load` (a regular file) or :meth:`from_bytes` (a
    bytes-like object). Either is copied once into sealed read-only memory
    (a memfd nobody can write, shrink or grow; see ``docs/models.md``), so a
    file truncated or rewritten, or a buffer changed, after loading cannot
    reach the runtime. Every model is checked byte by byte before the runtime
    sees it: a corrupt or hostile file raises
    :class:`~edgepipe.errors.ModelError` instead of crashing the process.
    """

    def __init__(self, core_model: _core.Model, path: Path | None = None) -> None:
        self._core = core_model
        self._path = path
        self._sha256: str | None = None
        for warning in self.warnings:
            log.info("model %s: %s", path or "from bytes", warning)
        sigs = core_model.signatures
        self._signatures = tuple(
            Signature(
                key=s["key"],
                inputs=tuple(TensorInfo.from_core(t) for t in s["inputs"]),
                outputs=tuple(TensorInfo.from_core(t) for t in s["outputs"]),
            )
            for s in sigs
        )

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, verify: bool = True, runtime: str | None = None
    ) -> Model:
        """Copy a ``.tflite`` file into sealed memory and verify it.

        Args:
            path: the model file.
            verify: check the flatbuffer before the runtime reads it. Leave it
                on unless the bytes were verified in this process already.
            runtime: explicit path of ``libLiteRt.so`` (default: search).

        Raises:
            ModelError: missing, not a regular file (a directory, FIFO, device,
                socket), a NUL in the path, empty, changed while read, truncated
                or corrupt.
            RuntimeLoadError: the runtime library cannot be loaded.
        """
        p = _args.path("path", path)
        _args.boolean("verify", verify)
        library = None if runtime is None else _args.path("runtime", runtime)
        core = _core.Model.from_file(load_runtime(library), str(p), verify=verify)
        return cls(core, p)

    @classmethod
    def from_bytes(
        cls, data: bytes | bytearray | memoryview | np.ndarray, *, verify: bool = True
    ) -> Model:
        """Verify and load a model held in memory.

        The bytes are copied once into sealed memory: the caller may change,
        resize or free ``data`` as soon as this returns.
        """
        _args.boolean("verify", verify)
        if isinstance(data, np.ndarray):
            data = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        elif not isinstance(data, (bytes, bytearray, memoryview)):
            raise InputError(
                "data must be bytes, bytearray, memoryview or a numpy array, "
                f"not {type(data).__name__}"
            )
        return cls(_core.Model.from_buffer(load_runtime(), cast(Any, data), verify=verify))

    @property
    def path(self) -> Path | None:
        """The file the model was loaded from, or None for in-memory models."""
        return self._path

    @property
    def signatures(self) -> dict[str, Signature]:
        """Signatures by key (models without SignatureDefs get one default)."""
        return {s.key: s for s in self._signatures}

    @property
    def signature(self) -> Signature:
        """The first (usually only) signature."""
        return self._signatures[0]

    @property
    def inputs(self) -> list[TensorInfo]:
        """Inputs of the first signature, in the order ``run`` takes them."""
        return list(self._signatures[0].inputs)

    @property
    def outputs(self) -> list[TensorInfo]:
        """Outputs of the first signature."""
        return list(self._signatures[0].outputs)

    @property
    def size(self) -> int:
        """Size of the model in bytes."""
        return int(self._core.size)

    @property
    def zero_copy(self) -> bool:
        """Always False: the runtime reads edgepipe's sealed copy (kept for compatibility)."""
        return bool(self._core.zero_copy)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the model bytes (computed once, from the sealed copy)."""
        if self._sha256 is None:
            self._sha256 = hashlib.sha256(memoryview(self._core.bytes)).hexdigest()
        return self._sha256

    @property
    def op_counts(self) -> dict[str, int]:
        """Operators by name (``CUSTOM:<code>`` for custom ones) and how often."""
        return dict(self._core.summary["op_counts"])

    @property
    def custom_ops(self) -> list[str]:
        """Distinct custom operator codes the model needs."""
        return list(self._core.summary["custom_ops"])

    @property
    def warnings(self) -> list[str]:
        """Fields the verifier ignored because the runtime ignores them too (for
        example a stale ``metadata_buffer`` entry left by ai-edge-quantizer),
        each with what was ignored; also logged at info level on load."""
        return list(self._core.summary.get("warnings", []))

    def memoryview(self) -> memoryview:
        """A read-only view of the model bytes (no copy)."""
        return memoryview(self._core.bytes)

    def describe(self) -> dict[str, Any]:
        """Everything ``edgepipe info --json`` prints."""
        s = self._core.summary
        return {
            "path": str(self._path) if self._path else None,
            "size": self.size,
            "sha256": self.sha256,
            "schema_version": s["schema_version"],
            "description": s["description"],
            "signatures": [
                {
                    "key": sig.key,
                    "inputs": [t.to_dict() for t in sig.inputs],
                    "outputs": [t.to_dict() for t in sig.outputs],
                }
                for sig in self._signatures
            ],
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "op_counts": self.op_counts,
            "num_operators": s["num_operators"],
            "num_tensors": s["num_tensors"],
            "num_subgraphs": s["num_subgraphs"],
            "custom_ops": self.custom_ops,
            "warnings": self.warnings,
            "has_sparse_tensors": s["has_sparse_tensors"],
            "constant_bytes": s["constant_bytes"],
        }

    def compile(
        self,
        accelerator: AcceleratorSpec = "cpu",
        *,
        threads: int | None = None,
        weight_cache: bool | str | os.PathLike[str] = False,
        signature: str | None = None,
        **options: Any,
    ) -> Session:
        """Compile an inference session; see :class:`edgepipe.Session` for the arguments.

        ``accelerator`` may be ``"auto"``: a short measured trial picks the
        fastest accelerator whose outputs match the CPU (cached).
        """
        # The one upward import of the layers (see pyproject's import-linter
        # contract): a convenience for Session(model, ...).
        from .session import Session

        return Session(
            self,
            accelerator=accelerator,
            threads=threads,
            weight_cache=weight_cache,
            signature=signature,
            **options,
        )

    def signature_index(self, key: str | None) -> int:
        """Index of the signature ``key`` (None: the first)."""
        if key is None:
            return 0
        for i, s in enumerate(self._signatures):
            if s.key == key:
                return i
        raise InputError(
            f"model has no signature {key!r}; it has {[s.key for s in self._signatures]}"
        )

    def __repr__(self) -> str:
        where = str(self._path) if self._path else "<bytes>"
        return f"<edgepipe.Model {where} {self.size} bytes, inputs={[t.name for t in self.inputs]}>"
