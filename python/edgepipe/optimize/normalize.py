"""Normalise a ``.tflite`` file so that ai-edge-quantizer can work on it.

Real models (the MediaPipe ones among them) trip the quantizer up in ways that
make it silently do nothing ("Quantization Ratio: 1.00"):

- weights stored as float16 behind ``DEQUANTIZE`` ops: the quantizer only
  quantizes float32 constants, so they are folded to float32 constants and the
  ``DEQUANTIZE`` ops are removed (``fold_fp16_weights``);
- operator codes kept only in ``deprecated_builtin_code`` with
  ``builtin_code = 0``, which the quantizer reads as ``ADD`` (``opcodes``);
- no SignatureDef, which static calibration needs (``signature``);
- tensors no operator, input, output or signature uses (``dangling_tensors``);
- ``metadata_buffer`` entries that point past the buffer table (the quantizer
  writes such files itself; ``metadata_buffer``).

Every step is reported as a :class:`NormalizeStep`. The model is rebuilt
through the flatbuffers object API, *carefully*: buffers stored after the
flatbuffer (``offset``/``size``, used by large models) are read back before and
written after the flatbuffer again, 16-byte aligned, so nothing is dropped.
:func:`fix_metadata_buffer` patches a file's bytes in place, without any rebuild.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgepipe.errors import ModelError

# Model table vtable slot of `metadata_buffer: [int]` in the TFLite schema.
_MODEL_METADATA_BUFFER_SLOT = 14
# Buffers at least this large go after the flatbuffer (like ai-edge-quantizer does).
_EXTERNAL_MIN_BYTES = 1024
# Above this much constant data the whole model cannot be one flatbuffer (2 GiB).
_INLINE_LIMIT = 256 * 1024
_DEQUANTIZE = 6
_FLOAT32 = 0
_FLOAT16 = 1
_PLACEHOLDER_FOR_GREATER_OP_CODES = 127


@dataclass(frozen=True)
class NormalizeStep:
    """One normalisation step that changed something: its name, what, how many."""

    name: str
    detail: str
    count: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description."""
        return asdict(self)


def _schema() -> Any:
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _read(data: bytes | bytearray | memoryview) -> Any:
    from ai_edge_litert.tools import flatbuffer_utils

    try:
        # Resolves offset/size buffers and large custom options into the object.
        return flatbuffer_utils.read_model_from_bytearray(bytes(data))
    except Exception as exc:  # the generated code raises anything on garbage
        raise ModelError(f"cannot parse the model to normalise it: {exc}") from exc


def _round16(n: int) -> int:
    return (n + 15) & ~15


def pack_model(model: Any) -> bytearray:
    """Serialise a ``ModelT`` without losing data, large buffers after the flatbuffer.

    Small models (under 256 KiB of constants) are one plain flatbuffer; larger
    ones keep their constants after it, 16-byte aligned, referenced by
    ``offset``/``size`` as the TFLite schema allows, so models over 2 GiB work.
    """
    import flatbuffers
    from ai_edge_litert.tools import flatbuffer_utils

    schema = _schema()
    external: dict[int, memoryview] = {}
    total = 0
    for i, buf in enumerate(model.buffers or []):
        if buf.data is not None and len(buf.data) >= _EXTERNAL_MIN_BYTES:
            arr = buf.data if isinstance(buf.data, np.ndarray) else np.asarray(buf.data, np.uint8)
            external[i] = memoryview(np.ascontiguousarray(arr).reshape(-1).view(np.uint8).data)
            total += len(external[i])
    if total < _INLINE_LIMIT:
        external = {}
    saved = {}
    for i in external:
        buf = model.buffers[i]
        saved[i] = buf.data
        buf.data, buf.offset, buf.size = None, 1, 1  # reserve the fields
    try:
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        head = builder.Output()
    finally:
        for i, data in saved.items():
            buf = model.buffers[i]
            buf.data, buf.offset, buf.size = data, 0, 0
    if not external:
        return bytearray(head)
    size = _round16(len(head))
    for view in external.values():
        size = _round16(size + len(view))
    out = bytearray(size)
    out[: len(head)] = head
    packed = schema.Model.GetRootAs(out, 0)
    pos = _round16(len(head))
    for i, view in external.items():
        flatbuffer_utils.update_packed_buffer(packed.Buffers(i), offset=pos, size=len(view))
        out[pos : pos + len(view)] = view
        pos = _round16(pos + len(view))
    return out


def _opcode_steps(model: Any) -> list[NormalizeStep]:
    fixed = 0
    for oc in model.operatorCodes or []:
        dep = int(oc.deprecatedBuiltinCode or 0)
        code = int(oc.builtinCode or 0)
        if code < dep:
            oc.builtinCode = dep
            fixed += 1
        elif code > dep and code < _PLACEHOLDER_FOR_GREATER_OP_CODES:
            oc.deprecatedBuiltinCode = code
            fixed += 1
    if not fixed:
        return []
    return [
        NormalizeStep(
            "opcodes", "set builtin_code from deprecated_builtin_code (0 reads as ADD)", fixed
        )
    ]


def _buffer_array(buf: Any) -> np.ndarray | None:
    if buf.data is None or len(buf.data) == 0:
        return None
    data = buf.data
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    return np.frombuffer(bytes(data), np.uint8)


def _fold_fp16(model: Any) -> list[NormalizeStep]:
    schema = _schema()
    codes = model.operatorCodes or []
    folded = 0
    for sg in model.subgraphs or []:
        outputs = set(sg.outputs or [])
        keep = []
        for op in sg.operators or []:
            code = codes[op.opcodeIndex]
            if (
                max(int(code.builtinCode or 0), int(code.deprecatedBuiltinCode or 0)) == _DEQUANTIZE
                and len(op.inputs or []) == 1
                and len(op.outputs or []) == 1
            ):
                src = sg.tensors[op.inputs[0]]
                dst = sg.tensors[op.outputs[0]]
                raw = _buffer_array(model.buffers[src.buffer]) if src.buffer else None
                if (
                    raw is not None
                    and src.type == _FLOAT16
                    and dst.type == _FLOAT32
                    and src.sparsity is None
                    and op.outputs[0] not in outputs
                    and raw.size % 2 == 0
                ):
                    values = raw.view("<f2").astype("<f4")
                    new = schema.BufferT()
                    new.data = values.view(np.uint8)
                    model.buffers.append(new)
                    dst.buffer = len(model.buffers) - 1
                    folded += 1
                    continue
            keep.append(op)
        sg.operators = keep
    if not folded:
        return []
    return [
        NormalizeStep(
            "fold_fp16_weights",
            "float16 weights behind DEQUANTIZE folded to float32 constants",
            folded,
        )
    ]


def _drop_dangling(model: Any) -> list[NormalizeStep]:
    dropped = 0
    for si, sg in enumerate(model.subgraphs or []):
        used: set[int] = set(sg.inputs or []) | set(sg.outputs or [])
        for op in sg.operators or []:
            for field in (op.inputs, op.outputs, op.intermediates):
                used.update(int(t) for t in (field or []) if t >= 0)
        for sig in model.signatureDefs or []:
            if sig.subgraphIndex == si:
                used.update(t.tensorIndex for t in (sig.inputs or []) + (sig.outputs or []))
        n = len(sg.tensors or [])
        if len(used) == n:
            continue
        remap = {}
        tensors: list[Any] = []
        for i, t in enumerate(sg.tensors):
            if i in used:
                remap[i] = len(tensors)
                tensors.append(t)
        dropped += n - len(tensors)
        sg.tensors = tensors

        def m(idx: Any, remap: dict[int, int] = remap) -> list[int]:
            return [remap[int(t)] if t >= 0 else int(t) for t in (idx or [])]

        sg.inputs, sg.outputs = m(sg.inputs), m(sg.outputs)
        for op in sg.operators or []:
            op.inputs, op.outputs = m(op.inputs), m(op.outputs)
            if op.intermediates is not None:
                op.intermediates = m(op.intermediates)
        for sig in model.signatureDefs or []:
            if sig.subgraphIndex == si:
                for t in (sig.inputs or []) + (sig.outputs or []):
                    t.tensorIndex = remap[t.tensorIndex]
    if not dropped:
        return []
    return [NormalizeStep("dangling_tensors", "tensors nothing refers to removed", dropped)]


def _clear_unused_buffers(model: Any) -> None:
    """Empty every buffer no tensor or metadata uses (the DEQUANTIZE sources)."""
    used = {0}
    for sg in model.subgraphs or []:
        used.update(int(t.buffer) for t in sg.tensors or [])
    used.update(int(md.buffer) for md in model.metadata or [])
    used.update(int(b) for b in model.metadataBuffer or [])
    for i, buf in enumerate(model.buffers or []):
        if i not in used:
            buf.data, buf.offset, buf.size = None, 0, 0


def _add_signature(model: Any) -> list[NormalizeStep]:
    schema = _schema()
    if model.signatureDefs or not model.subgraphs:
        return []
    sg = model.subgraphs[0]

    def tensor_map(index: int) -> Any:
        t = schema.TensorMapT()
        name = sg.tensors[index].name
        t.name = name.decode() if isinstance(name, bytes) else (name or f"tensor_{index}")
        t.tensorIndex = int(index)
        return t

    sig = schema.SignatureDefT()
    sig.signatureKey = "serving_default"
    sig.subgraphIndex = 0
    sig.inputs = [tensor_map(i) for i in sg.inputs or []]
    sig.outputs = [tensor_map(i) for i in sg.outputs or []]
    model.signatureDefs = [sig]
    return [
        NormalizeStep(
            "signature", "added SignatureDef 'serving_default' (static calibration needs one)", 1
        )
    ]


def _metadata_buffer_step(model: Any) -> list[NormalizeStep]:
    # Reading compacts empty buffers away without renumbering metadata_buffer, so an
    # entry may point past the table or at an unrelated buffer; keep only entries that
    # point at a non-empty buffer (an empty one holds no metadata anyway).
    entries = [int(b) for b in model.metadataBuffer or []]
    n = len(model.buffers or [])
    good = [b for b in entries if 0 < b < n and _buffer_array(model.buffers[b]) is not None]
    if len(good) == len(entries):
        return []
    model.metadataBuffer = good
    return [
        NormalizeStep(
            "metadata_buffer",
            f"dropped metadata_buffer entries that point past the {n} buffers or at an empty one",
            len(entries) - len(good),
        )
    ]


def normalize(
    data: bytes | bytearray | memoryview, *, add_signature: bool = True
) -> tuple[bytearray, list[NormalizeStep]]:
    """Return ``(normalised bytes, steps)`` for a model's bytes.

    ``steps`` lists only the steps that changed something; when it is empty
    the returned bytes are a plain copy of ``data``.

    Raises:
        ModelError: the bytes are not a model this can parse.
    """
    model = _read(data)
    steps: list[NormalizeStep] = []
    steps += _opcode_steps(model)
    steps += _fold_fp16(model)
    if add_signature:
        steps += _add_signature(model)
    steps += _drop_dangling(model)
    steps += _metadata_buffer_step(model)
    if not steps:
        return bytearray(data), []
    _clear_unused_buffers(model)
    return pack_model(model), steps


def fix_metadata_buffer(data: bytearray) -> NormalizeStep | None:
    """Drop ``metadata_buffer`` entries past the buffer table, in place.

    The valid entries move to the front of the vector and its length shrinks;
    nothing else in the file moves. ai-edge-quantizer renumbers buffers but
    not these indices. Returns the step, or None when nothing was stale.
    """
    schema = _schema()
    try:
        m = schema.Model.GetRootAs(data, 0)
        n_buffers = m.BuffersLength()
        o = m._tab.Offset(_MODEL_METADATA_BUFFER_SLOT)
    except Exception as exc:
        raise ModelError(f"cannot parse the model: {exc}") from exc
    if o == 0:
        return None
    start = m._tab.Vector(o)
    length = m._tab.VectorLen(o)
    if start + 4 * length > len(data):
        raise ModelError("metadata_buffer vector runs past the end of the file")
    values = np.frombuffer(bytes(data[start : start + 4 * length]), "<i4")
    good = [int(v) for v in values if 0 <= v < n_buffers]
    if len(good) == length:
        return None
    data[start : start + 4 * len(good)] = np.asarray(good, "<i4").tobytes()
    data[start + 4 * len(good) : start + 4 * length] = bytes(4 * (length - len(good)))
    data[start - 4 : start] = len(good).to_bytes(4, "little")
    return NormalizeStep(
        "metadata_buffer",
        f"dropped metadata_buffer entries past the {n_buffers} buffers (in place)",
        length - len(good),
    )
