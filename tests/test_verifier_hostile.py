"""Hostile models that crashed LiteRT are a ModelError before the runtime sees them.

Each case runs in a child process (``crash_harness``), so a regression fails the test
with the signal that killed the child instead of killing pytest. Cases are built from
the generated convnet with the flatbuffers object API (generated models have no data
after the flatbuffer, so re-encoding loses nothing).
"""

from __future__ import annotations

import math

import crash_harness
import flatbuffers
import pytest
from ai_edge_litert import schema_py_generated as schema

# Load, compile and run; report the typed error's class name, or "ran".
_WORKER = crash_harness.make_worker("""
import edgepipe
from edgepipe import errors

def run_case(data):
    try:
        model = edgepipe.Model.from_bytes(data)
        model.compile("cpu").run()
    except errors.EdgepipeError as e:
        return type(e).__name__ + " " + str(e)
    return "ran"
""")


def _encode(model: schema.ModelT) -> bytes:
    b = flatbuffers.Builder(1 << 16)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _convnet(generator) -> schema.ModelT:
    return schema.ModelT.InitFromPackedBuf(generator.build_convnet(), 0)


def _quantize_input(generator, scale, zero_point, qdim: int = 0) -> bytes:
    m = _convnet(generator)
    q = schema.QuantizationParametersT()
    q.scale = scale
    q.zeroPoint = zero_point
    q.quantizedDimension = qdim
    m.subgraphs[0].tensors[m.subgraphs[0].inputs[0]].quantization = q
    return _encode(m)


def _swap_opcode(generator, old: int, new: int) -> bytes:
    m = _convnet(generator)
    swapped = 0
    for oc in m.operatorCodes:
        if max(oc.builtinCode, oc.deprecatedBuiltinCode) == old:
            oc.builtinCode = oc.deprecatedBuiltinCode = new
            swapped += 1
    assert swapped == 1
    return _encode(m)


_SWAPS = [
    "SPLIT",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "ADD",
    "GATHER",
    "TRANSPOSE_CONV",
    "RESHAPE",
    "MEAN",
    "STRIDED_SLICE",
    "BATCH_MATMUL",
    "CONCATENATION",
    "PAD",
    "SOFTMAX",
]
_QUANT = [
    ([math.nan], [0], 0, "finite positive"),
    ([math.inf], [0], 0, "finite positive"),
    ([0.0], [0], 0, "finite positive"),
    ([-0.5], [0], 0, "finite positive"),
    ([0.5, 0.5], [0], 3, "2 scales but 1 zero points"),
    ([0.5], [0], 7, "quantized_dimension 7"),
    ([0.5, 0.5], [0, 0], 3, "2 scales but dimension 3 has size"),
]


@pytest.fixture(scope="module")
def results(generator) -> dict[str, crash_harness.CaseResult]:
    """Every case of this file, run once in one batch of child processes."""
    op = schema.BuiltinOperator
    cases = [
        ("1a", _quantize_input(generator, [1e-30], None)),
        ("tiny", _quantize_input(generator, [1e-30], [0])),
    ]
    cases += [
        (f"swap {new}", _swap_opcode(generator, op.CONV_2D, getattr(op, new))) for new in _SWAPS
    ]
    cases += [
        (f"quant {i}", _quantize_input(generator, s, z, d)) for i, (s, z, d, _) in enumerate(_QUANT)
    ]
    m = schema.ModelT.InitFromPackedBuf(generator.build_add_mul(2), 0)
    sig = m.signatureDefs[0]
    sig.inputs[1].tensorIndex = sig.inputs[0].tensorIndex
    cases.append(("sig", _encode(m)))
    out = crash_harness.run_cases_in_subprocess(cases, _WORKER, timeout=120)
    return {r.description: r for r in out}


def _assert_model_error(r: crash_harness.CaseResult, *needles: str) -> None:
    assert r.outcome == "ok", f"{r.description}: {r.outcome} {r.signal_name} {r.detail}"
    assert r.detail.startswith("ModelError "), f"{r.description}: {r.detail}"
    for n in needles:
        assert n in r.detail, f"{r.description}: {r.detail}"


def test_issue10_1a_tiny_scale_without_zero_point(results):
    # SIGSEGV in LiteRtCreateModelFromBuffer during Model.load before the fix.
    _assert_model_error(results["1a"], "1 scales but 0 zero points", "quantization of tensor")


def test_issue10_1b_operator_code_swapped_conv_to_split(results):
    # SIGSEGV in LiteRtCreateCompiledModel before the fix.
    _assert_model_error(results["swap SPLIT"], "(SPLIT)")


@pytest.mark.parametrize("new", _SWAPS)
def test_conv_swapped_to_other_builtins_never_crashes(results, new):
    r = results[f"swap {new}"]
    assert r.outcome == "ok", f"{new}: {r.outcome} {r.signal_name} {r.detail}"
    assert r.detail.split(" ")[0] in ("ModelError", "CompileError", "ran"), r.detail


@pytest.mark.parametrize("index", range(len(_QUANT)))
def test_bad_quantization_is_a_model_error(results, index):
    _assert_model_error(results[f"quant {index}"], _QUANT[index][3])


def test_tiny_scale_with_zero_point_does_not_crash(results):
    # Legal (finite, positive) but extreme: must run or fail typed, never crash.
    r = results["tiny"]
    assert r.outcome == "ok", f"{r.outcome} {r.signal_name} {r.detail}"


def test_signature_naming_a_tensor_twice_is_a_model_error(results):
    # Left one subgraph input unnamed: a null name reached the binding (untyped error).
    _assert_model_error(results["sig"], "names already")
