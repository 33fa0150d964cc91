"""Deterministic builders for small, valid TFLite models.

The models are assembled directly as flatbuffers with the object API of
``ai_edge_litert.schema_py_generated`` so that no converter (and no TensorFlow) is
needed.  Every builder returns the serialized model as ``bytes``; the same call always
returns the same bytes, which lets the repository commit the default model and test
that it still matches its generator.

This module must stay importable on its own (no imports from the rest of
``edgepipe``): tests load it by file path when the compiled extension is not built.

Command line::

    python -m edgepipe.models.generator --out DIR [--write-default]
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys
from collections.abc import Callable, Mapping, Sequence

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

__all__ = [
    "MODEL_BUILDERS",
    "build_add_mul",
    "build_convnet",
    "build_custom_op",
    "build_dynamic_add",
    "build_multi_dtype",
    "build_quantized",
    "build_single_op",
    "build_weight_heavy",
    "default_model_path",
    "main",
    "write_all",
    "write_default_model",
]

SIGNATURE_KEY = "serving_default"
FILE_IDENTIFIER = b"TFL3"
CUSTOM_OP_NAME = "EdgepipeUnknownOp"

# The TFLite converter aligns constant buffers to 16 bytes; kernels (and XNNPACK's
# weight packing) may read them in place, so we keep the same guarantee.
_BUFFER_ALIGNMENT = 16
# Builtin codes above 127 only fit in the int32 field; the deprecated int8 field then
# holds this placeholder value (see the schema's comment on OperatorCode).
_PLACEHOLDER_FOR_GREATER_OP_CODES = 127

_NP_TO_TFLITE = {
    np.dtype(np.float32): schema.TensorType.FLOAT32,
    np.dtype(np.int32): schema.TensorType.INT32,
    np.dtype(np.int8): schema.TensorType.INT8,
    np.dtype(np.uint8): schema.TensorType.UINT8,
    np.dtype(np.int64): schema.TensorType.INT64,
    np.dtype(np.bool_): schema.TensorType.BOOL,
}

_OP = schema.BuiltinOperator
_OPTS = schema.BuiltinOptions
_ACT = schema.ActivationFunctionType
_PAD = schema.Padding


class _AlignedBufferT(schema.BufferT):
    """A BufferT whose payload is aligned to ``_BUFFER_ALIGNMENT`` in the final file."""

    # Name and signature are fixed by the schema object API (ModelT.Pack calls it).
    def Pack(self, builder: flatbuffers.Builder) -> int:
        payload = self.data
        if payload is None:
            return super().Pack(builder)
        n = len(payload)
        builder.StartVector(1, n, _BUFFER_ALIGNMENT)
        builder.head = builder.head - n
        builder.Bytes[builder.head : builder.head + n] = payload
        data_off = builder.EndVector()
        schema.BufferStart(builder)
        schema.BufferAddData(builder, data_off)
        return schema.BufferEnd(builder)


class _GraphBuilder:
    """Accumulates tensors, buffers and operators of a single-subgraph model."""

    def __init__(self, description: str) -> None:
        self.description = description
        self.tensors: list[schema.TensorT] = []
        # Buffer 0 must be the empty sentinel buffer (TFLite reserves it).
        self.buffers: list[schema.BufferT] = [schema.BufferT()]
        self.operators: list[schema.OperatorT] = []
        self.opcodes: list[schema.OperatorCodeT] = []
        self._opcode_index: dict[tuple[int, str | None, int], int] = {}

    def tensor(
        self,
        name: str,
        shape: Sequence[int],
        dtype: np.dtype | type,
        data: np.ndarray | None = None,
        *,
        quant: tuple[float, int] | None = None,
        shape_signature: Sequence[int] | None = None,
    ) -> int:
        """Add a tensor (constant when ``data`` is given) and return its index."""
        t = schema.TensorT()
        t.name = name
        t.shape = [int(d) for d in shape]
        t.type = _NP_TO_TFLITE[np.dtype(dtype)]
        t.buffer = 0
        if shape_signature is not None:
            t.shapeSignature = [int(d) for d in shape_signature]
        if data is not None:
            arr = np.ascontiguousarray(data, dtype=np.dtype(dtype))
            if list(arr.shape) != t.shape:
                raise ValueError(f"data shape {arr.shape} != tensor shape {t.shape} for {name}")
            buf = _AlignedBufferT()
            buf.data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
            self.buffers.append(buf)
            t.buffer = len(self.buffers) - 1
        if quant is not None:
            q = schema.QuantizationParametersT()
            q.scale = [float(quant[0])]
            q.zeroPoint = [int(quant[1])]
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(
        self,
        code: int,
        inputs: Sequence[int],
        outputs: Sequence[int],
        options_type: int = _OPTS.NONE,
        options: object | None = None,
        *,
        version: int = 1,
        custom_code: str | None = None,
    ) -> None:
        """Append an operator, registering its operator code on first use."""
        key = (code, custom_code, version)
        if key not in self._opcode_index:
            oc = schema.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, _PLACEHOLDER_FOR_GREATER_OP_CODES)
            oc.version = version
            oc.customCode = custom_code
            self.opcodes.append(oc)
            self._opcode_index[key] = len(self.opcodes) - 1
        o = schema.OperatorT()
        o.opcodeIndex = self._opcode_index[key]
        o.inputs = list(inputs)
        o.outputs = list(outputs)
        o.builtinOptionsType = options_type
        o.builtinOptions = options
        if custom_code is not None:
            o.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS
        self.operators.append(o)

    def finish(self, inputs: Mapping[str, int], outputs: Mapping[str, int]) -> bytes:
        """Serialize the model with a ``serving_default`` signature over the given I/O."""
        sg = schema.SubGraphT()
        sg.name = "main"
        sg.tensors = self.tensors
        sg.inputs = list(inputs.values())
        sg.outputs = list(outputs.values())
        sg.operators = self.operators

        sig = schema.SignatureDefT()
        sig.signatureKey = SIGNATURE_KEY
        sig.subgraphIndex = 0
        sig.inputs = [_tensor_map(name, idx) for name, idx in inputs.items()]
        sig.outputs = [_tensor_map(name, idx) for name, idx in outputs.items()]

        model = schema.ModelT()
        model.version = 3
        model.description = self.description
        model.operatorCodes = self.opcodes
        model.subgraphs = [sg]
        model.buffers = self.buffers
        model.signatureDefs = [sig]

        # Start big enough for the weight-heavy model to avoid repeated regrowth copies.
        payload = sum(len(b.data) for b in self.buffers if b.data is not None)
        builder = flatbuffers.Builder(max(1024, payload + 64 * 1024))
        builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
        return bytes(builder.Output())


def _tensor_map(name: str, index: int) -> schema.TensorMapT:
    tm = schema.TensorMapT()
    tm.name = name
    tm.tensorIndex = index
    return tm


def _conv_opts(stride: int, act: int, padding: int = _PAD.SAME) -> schema.Conv2DOptionsT:
    o = schema.Conv2DOptionsT()
    o.padding = padding
    o.strideW = o.strideH = stride
    o.dilationWFactor = o.dilationHFactor = 1
    o.fusedActivationFunction = act
    return o


def _pool_opts(filt: int, stride: int, padding: int) -> schema.Pool2DOptionsT:
    o = schema.Pool2DOptionsT()
    o.padding = padding
    o.strideW = o.strideH = stride
    o.filterWidth = o.filterHeight = filt
    o.fusedActivationFunction = _ACT.NONE
    return o


def _fc_opts(act: int = _ACT.NONE) -> schema.FullyConnectedOptionsT:
    o = schema.FullyConnectedOptionsT()
    o.fusedActivationFunction = act
    o.weightsFormat = schema.FullyConnectedOptionsWeightsFormat.DEFAULT
    return o


def _add_opts() -> schema.AddOptionsT:
    o = schema.AddOptionsT()
    o.fusedActivationFunction = _ACT.NONE
    return o


def _same_out(size: int, stride: int) -> int:
    return -(-size // stride)


def build_convnet(seed: int = 0, input_size: int = 96) -> bytes:
    """Build the default image classifier.

    ``image`` float32 [1,S,S,3] -> CONV_2D 3x3/2 (relu6) -> DEPTHWISE_CONV_2D 3x3 (relu6)
    -> CONV_2D 1x1 (relu) -> MAX_POOL_2D 2x2/2 -> AVERAGE_POOL_2D (global) -> RESHAPE
    -> FULLY_CONNECTED -> SOFTMAX -> ``probabilities`` float32 [1,10].
    """
    if input_size < 4:
        raise ValueError("input_size must be >= 4")
    rng = np.random.default_rng(seed)
    c1, c2, classes = 8, 16, 10
    s1 = _same_out(input_size, 2)
    s2 = _same_out(s1, 2)

    def he(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        # He-scaled weights keep activations away from both 0 and the relu6 ceiling,
        # so the output actually depends on the input.
        return (rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(np.float32)

    g = _GraphBuilder(f"edgepipe generated convnet seed={seed} size={input_size}")
    image = g.tensor("image", [1, input_size, input_size, 3], np.float32)

    w1 = g.tensor("conv1/weights", [c1, 3, 3, 3], np.float32, he((c1, 3, 3, 3), 27))
    b1 = g.tensor("conv1/bias", [c1], np.float32, (rng.standard_normal(c1) * 0.1))
    a1 = g.tensor("conv1/relu6", [1, s1, s1, c1], np.float32)
    g.op(_OP.CONV_2D, [image, w1, b1], [a1], _OPTS.Conv2DOptions, _conv_opts(2, _ACT.RELU6))

    dw_opts = schema.DepthwiseConv2DOptionsT()
    dw_opts.padding = _PAD.SAME
    dw_opts.strideW = dw_opts.strideH = 1
    dw_opts.depthMultiplier = 1
    dw_opts.dilationWFactor = dw_opts.dilationHFactor = 1
    dw_opts.fusedActivationFunction = _ACT.RELU6
    w2 = g.tensor("dw/weights", [1, 3, 3, c1], np.float32, he((1, 3, 3, c1), 9))
    b2 = g.tensor("dw/bias", [c1], np.float32, (rng.standard_normal(c1) * 0.1))
    a2 = g.tensor("dw/relu6", [1, s1, s1, c1], np.float32)
    g.op(_OP.DEPTHWISE_CONV_2D, [a1, w2, b2], [a2], _OPTS.DepthwiseConv2DOptions, dw_opts)

    w3 = g.tensor("pw/weights", [c2, 1, 1, c1], np.float32, he((c2, 1, 1, c1), c1))
    b3 = g.tensor("pw/bias", [c2], np.float32, (rng.standard_normal(c2) * 0.1))
    a3 = g.tensor("pw/relu", [1, s1, s1, c2], np.float32)
    g.op(_OP.CONV_2D, [a2, w3, b3], [a3], _OPTS.Conv2DOptions, _conv_opts(1, _ACT.RELU))

    a4 = g.tensor("maxpool", [1, s2, s2, c2], np.float32)
    g.op(_OP.MAX_POOL_2D, [a3], [a4], _OPTS.Pool2DOptions, _pool_opts(2, 2, _PAD.SAME))

    a5 = g.tensor("avgpool", [1, 1, 1, c2], np.float32)
    g.op(_OP.AVERAGE_POOL_2D, [a4], [a5], _OPTS.Pool2DOptions, _pool_opts(s2, 1, _PAD.VALID))

    # -1, not 1: the batch dimension follows the input's, so the model batches
    # (a pool with max_batch resizes dim 0 of "image" to N).
    new_shape = g.tensor("reshape/shape", [2], np.int32, np.array([-1, c2], np.int32))
    a6 = g.tensor("flatten", [1, c2], np.float32)
    rs = schema.ReshapeOptionsT()
    rs.newShape = [-1, c2]
    g.op(_OP.RESHAPE, [a5, new_shape], [a6], _OPTS.ReshapeOptions, rs)

    w7 = g.tensor("fc/weights", [classes, c2], np.float32, he((classes, c2), c2))
    b7 = g.tensor("fc/bias", [classes], np.float32, (rng.standard_normal(classes) * 0.1))
    a7 = g.tensor("logits", [1, classes], np.float32)
    g.op(_OP.FULLY_CONNECTED, [a6, w7, b7], [a7], _OPTS.FullyConnectedOptions, _fc_opts())

    probs = g.tensor("probabilities", [1, classes], np.float32)
    sm = schema.SoftmaxOptionsT()
    sm.beta = 1.0
    g.op(_OP.SOFTMAX, [a7], [probs], _OPTS.SoftmaxOptions, sm)

    return g.finish({"image": image}, {"probabilities": probs})


def build_add_mul(n: int = 4) -> bytes:
    """Build ``a``, ``b`` float32 [1,n] -> ``sum`` = a+b and ``product`` = a*b."""
    if n < 1:
        raise ValueError("n must be >= 1")
    g = _GraphBuilder(f"edgepipe generated add_mul n={n}")
    a = g.tensor("a", [1, n], np.float32)
    b = g.tensor("b", [1, n], np.float32)
    s = g.tensor("sum", [1, n], np.float32)
    p = g.tensor("product", [1, n], np.float32)
    g.op(_OP.ADD, [a, b], [s], _OPTS.AddOptions, _add_opts())
    mul = schema.MulOptionsT()
    mul.fusedActivationFunction = _ACT.NONE
    g.op(_OP.MUL, [a, b], [p], _OPTS.MulOptions, mul)
    return g.finish({"a": a, "b": b}, {"sum": s, "product": p})


def build_dynamic_add() -> bytes:
    """Build ``x`` float32 [1,4] (signature [-1,4]) -> ``y`` = x + 1.0 for resize tests."""
    g = _GraphBuilder("edgepipe generated dynamic_add")
    x = g.tensor("x", [1, 4], np.float32, shape_signature=[-1, 4])
    one = g.tensor("one", [1], np.float32, np.array([1.0], np.float32))
    y = g.tensor("y", [1, 4], np.float32, shape_signature=[-1, 4])
    g.op(_OP.ADD, [x, one], [y], _OPTS.AddOptions, _add_opts())
    return g.finish({"x": x}, {"y": y})


# Quantization parameters of build_quantized, public so tests can recompute the result.
QUANTIZED_IN = (0.05, -3)  # (scale, zero_point) of input "x"
QUANTIZED_OUT = (0.1, 5)  # of output "y"
QUANTIZED_W_SCALE = 0.02


def build_quantized(seed: int = 0) -> bytes:
    """Build an int8 model: ``x`` int8 [1,8] -> FULLY_CONNECTED (int8) -> ``y`` int8 [1,4].

    Weights are symmetric int8 (zero point 0), the bias is int32 with scale
    ``in_scale * w_scale``, as the TFLite int8 spec requires.
    """
    rng = np.random.default_rng(seed)
    in_units, out_units = 8, 4
    in_scale, in_zp = QUANTIZED_IN
    out_scale, out_zp = QUANTIZED_OUT
    w = rng.integers(-127, 128, size=(out_units, in_units)).astype(np.int8)
    bias = rng.integers(-2000, 2000, size=(out_units,)).astype(np.int32)

    g = _GraphBuilder(f"edgepipe generated quantized seed={seed}")
    x = g.tensor("x", [1, in_units], np.int8, quant=(in_scale, in_zp))
    wt = g.tensor("fc/weights", [out_units, in_units], np.int8, w, quant=(QUANTIZED_W_SCALE, 0))
    bt = g.tensor("fc/bias", [out_units], np.int32, bias, quant=(in_scale * QUANTIZED_W_SCALE, 0))
    y = g.tensor("y", [1, out_units], np.int8, quant=(out_scale, out_zp))
    # Version 4 is the FULLY_CONNECTED version that introduced int8 kernels.
    g.op(_OP.FULLY_CONNECTED, [x, wt, bt], [y], _OPTS.FullyConnectedOptions, _fc_opts(), version=4)
    return g.finish({"x": x}, {"y": y})


def build_custom_op() -> bytes:
    """Build a valid model whose only op is CUSTOM ``EdgepipeUnknownOp`` (unresolvable)."""
    g = _GraphBuilder("edgepipe generated custom_op")
    x = g.tensor("x", [1, 4], np.float32)
    y = g.tensor("y", [1, 4], np.float32)
    g.op(_OP.CUSTOM, [x], [y], custom_code=CUSTOM_OP_NAME)
    return g.finish({"x": x}, {"y": y})


def build_weight_heavy(units: int = 1024, layers: int = 4, seed: int = 0) -> bytes:
    """Build ``x`` float32 [1,units] -> ``layers`` x FULLY_CONNECTED(units) -> ``y``.

    Weights take ``units * units * layers * 4`` bytes (16 MiB by default) while the
    activations are only ``units`` floats, for memory benchmarks.
    """
    if units < 1 or layers < 1:
        raise ValueError("units and layers must be >= 1")
    rng = np.random.default_rng(seed)
    g = _GraphBuilder(f"edgepipe generated weight_heavy units={units} layers={layers}")
    x = g.tensor("x", [1, units], np.float32)
    prev = x
    scale = 1.0 / math.sqrt(units)
    for i in range(layers):
        w = (rng.standard_normal((units, units), dtype=np.float32) * scale).astype(np.float32)
        b = (rng.standard_normal(units, dtype=np.float32) * 0.01).astype(np.float32)
        wt = g.tensor(f"fc{i}/weights", [units, units], np.float32, w)
        bt = g.tensor(f"fc{i}/bias", [units], np.float32, b)
        last = i == layers - 1
        out = g.tensor("y" if last else f"fc{i}/relu", [1, units], np.float32)
        act = _ACT.NONE if last else _ACT.RELU
        g.op(_OP.FULLY_CONNECTED, [prev, wt, bt], [out], _OPTS.FullyConnectedOptions, _fc_opts(act))
        prev = out
    return g.finish({"x": x}, {"y": prev})


def build_multi_dtype() -> bytes:
    """Build ``ids`` int32 [1,4] and ``x`` float32 [1,4] ->
    ``ids_plus_one`` int32 = ids + 1 and ``y`` float32 = float(ids) + x.
    """
    g = _GraphBuilder("edgepipe generated multi_dtype")
    ids = g.tensor("ids", [1, 4], np.int32)
    x = g.tensor("x", [1, 4], np.float32)
    one = g.tensor("one", [1], np.int32, np.array([1], np.int32))
    ids1 = g.tensor("ids_plus_one", [1, 4], np.int32)
    g.op(_OP.ADD, [ids, one], [ids1], _OPTS.AddOptions, _add_opts())
    ids_f = g.tensor("ids_float", [1, 4], np.float32)
    cast = schema.CastOptionsT()
    cast.inDataType = schema.TensorType.INT32
    cast.outDataType = schema.TensorType.FLOAT32
    g.op(_OP.CAST, [ids], [ids_f], _OPTS.CastOptions, cast)
    y = g.tensor("y", [1, 4], np.float32)
    g.op(_OP.ADD, [ids_f, x], [y], _OPTS.AddOptions, _add_opts())
    return g.finish({"ids": ids, "x": x}, {"ids_plus_one": ids1, "y": y})


def build_single_op(
    code: int,
    inputs: Sequence[Sequence[int] | np.ndarray | None],
    outputs: Sequence[Sequence[int]],
    options_type: int = _OPTS.NONE,
    options: object | None = None,
    *,
    dtype: np.dtype | type = np.float32,
    version: int = 1,
    shape_signatures: Mapping[str, Sequence[int]] | None = None,
) -> bytes:
    """Build a model of one builtin operator, exactly as declared, for verifier tests.

    Each entry of ``inputs`` is a shape (a runtime input ``x<i>`` of ``dtype``), an
    array (a constant ``c<i>`` of the array's shape and dtype) or ``None`` (the
    optional-input hole -1). Outputs are ``y<j>`` of ``dtype`` with the given shapes.
    ``shape_signatures`` maps tensor names to shape signatures (-1 = dynamic).

    Nothing is checked: shapes that contradict the operator's semantics are written
    as given, which is the point (they model damaged or hostile files).
    """
    sigs = dict(shape_signatures or {})
    g = _GraphBuilder(f"edgepipe generated single_op code={code}")
    op_inputs: list[int] = []
    graph_inputs: dict[str, int] = {}
    for i, spec in enumerate(inputs):
        if spec is None:
            op_inputs.append(-1)
        elif isinstance(spec, np.ndarray):
            op_inputs.append(g.tensor(f"c{i}", spec.shape, spec.dtype, spec))
        else:
            name = f"x{i}"
            idx = g.tensor(name, spec, dtype, shape_signature=sigs.get(name))
            graph_inputs[name] = idx
            op_inputs.append(idx)
    graph_outputs = {
        f"y{j}": g.tensor(f"y{j}", shape, dtype, shape_signature=sigs.get(f"y{j}"))
        for j, shape in enumerate(outputs)
    }
    g.op(code, op_inputs, list(graph_outputs.values()), options_type, options, version=version)
    return g.finish(graph_inputs, graph_outputs)


# Stable file stems used by write_all / the CLI / the test fixtures.
MODEL_BUILDERS: dict[str, Callable[[], bytes]] = {
    "convnet": build_convnet,
    "add_mul": build_add_mul,
    "dynamic_add": build_dynamic_add,
    "quantized": build_quantized,
    "custom_op": build_custom_op,
    "weight_heavy": build_weight_heavy,
    "multi_dtype": build_multi_dtype,
}


def default_model_path() -> pathlib.Path:
    """Return the path of the packaged default model (``build_convnet()`` output)."""
    return pathlib.Path(__file__).resolve().parent / "default.tflite"


def write_default_model(path: str | pathlib.Path | None = None) -> pathlib.Path:
    """Write ``build_convnet()`` to ``path`` (default: the packaged location)."""
    target = pathlib.Path(path) if path is not None else default_model_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(build_convnet())
    return target


def write_all(out_dir: str | pathlib.Path) -> dict[str, pathlib.Path]:
    """Write every generated model as ``<out_dir>/<name>.tflite``; return name -> path."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, pathlib.Path] = {}
    for name, build in MODEL_BUILDERS.items():
        path = out / f"{name}.tflite"
        path.write_bytes(build())
        written[name] = path
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: write all models to ``--out`` and optionally the default model."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, help="directory to write all models to")
    parser.add_argument(
        "--write-default",
        action="store_true",
        help=f"regenerate the packaged default model at {default_model_path()}",
    )
    args = parser.parse_args(argv)
    if args.out is None and not args.write_default:
        parser.error("nothing to do: give --out DIR and/or --write-default")
    if args.out is not None:
        for name, path in write_all(args.out).items():
            print(f"{name}: {path} ({path.stat().st_size} bytes)")
    if args.write_default:
        print(f"default: {write_default_model()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
