"""edgepipe.ray on a real two-node Ray cluster on 127.0.0.1 (issue: scale-out).

One child process (tests/ray/ray_scenario.py) starts the cluster, scores 1,000
inputs locally and on the cluster with ``edgepipe score``, runs ``edgepipe bench
--ray --resources``, and kills a Ray Data actor mid-job. It runs in its own
network namespace (``unshare -n``, loopback only) where that is permitted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import edgepipe
import numpy as np
import pytest

SCENARIO = Path(__file__).resolve().parent / "ray" / "ray_scenario.py"


def _loopback_only_prefix() -> list[str]:
    unshare = shutil.which("unshare")
    if unshare and os.geteuid() == 0:
        probe = subprocess.run([unshare, "-n", "true"], capture_output=True)
        if probe.returncode == 0:
            return [unshare, "-n", "sh", "-c", 'ip link set lo up 2>/dev/null; exec "$@"', "sh"]
    return []


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> tuple[dict, Path]:
    pytest.importorskip("ray", reason="edgepipe[ray] is part of the test extra")
    work = tmp_path_factory.mktemp("ray")
    env = dict(os.environ, RAY_DISABLE_USAGE_STATS="1", PYTHONUNBUFFERED="1")
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [*_loopback_only_prefix(), sys.executable, str(SCENARIO), str(work)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("REPORT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len("REPORT ") :]), work


def test_score_on_two_nodes_matches_a_local_run(scenario):
    report, work = scenario
    for mode in ("local", "ray"):
        assert report[f"score_{mode}"]["rc"] == 0, report[f"score_{mode}"]
        summary = json.loads(report[f"score_{mode}"]["stdout"].strip().splitlines()[-1])
        assert summary["mode"] == mode
        assert summary["inputs"] == summary["written"] == 1000
        if mode == "ray":  # both nodes scored, every input exactly once
            assert len(summary["nodes"]) == 2, summary
            assert sum(summary["nodes"].values()) == 1000
    local = sorted((work / "local").glob("*.npz"))
    remote = sorted((work / "ray").glob("*.npz"))
    assert [p.name for p in local] == [p.name for p in remote]
    assert len(local) == 1000
    for a, b in zip(local, remote):
        with np.load(a) as x, np.load(b) as y:
            assert x.files == y.files
            for k in x.files:
                assert np.array_equal(x[k], y[k]), (a.name, k)


def test_score_output_equals_session_run(scenario):
    _, work = scenario
    model = edgepipe.Model.load(edgepipe.default_model_path())
    session = model.compile("cpu")
    name = model.inputs[0].name
    for stem in ("x0000", "x0500", "x0999"):
        with np.load(work / "inputs" / f"{stem}.npz") as f:
            x = f[name][None]
        want = session.run({name: x})
        with np.load(work / "ray" / f"{stem}.npz") as got:
            for k, v in want.items():
                assert np.array_equal(got[k], v)


def test_fleet_bench_returns_one_row_per_node_with_its_resource(scenario):
    report, _ = scenario
    bench = report["bench"]
    assert bench["rc"] == 0, bench
    rows = json.loads(bench["stdout"])["fleet"]
    assert [r["resource"] for r in rows] == ["device:rpi5", "device:x86"]
    assert all(r["ok"] for r in rows), rows
    assert len({r["node_id"] for r in rows}) == 2
    holders = report["nodes_by_resource"]
    for r in rows:
        # planned on the node advertising the resource, and it really ran there
        assert holders[r["resource"]] == [r["node_id"]]
        assert r["ran_on"] == r["node_id"]
        assert r["latency_ms"]["p50"] > 0
        assert r["device"]["litert"] == edgepipe.runtime_version()


def _assert_outputs_equal_session_run(folder: Path, inputs: Path, count: int) -> None:
    model = edgepipe.Model.load(edgepipe.default_model_path())
    name = model.inputs[0].name
    got = sorted(folder.glob("*.npz"))
    assert len(got) == count
    with model.compile("cpu") as session:
        for path in got:
            with np.load(inputs / path.name) as f:
                want = session.run({name: f[name][None]})
            with np.load(path) as out:
                assert sorted(out.files) == sorted(want)
                for k, v in want.items():
                    assert out[k].dtype == v.dtype and out[k].shape == v.shape, (path.name, k)
                    assert np.array_equal(out[k], v), (path.name, k)


def test_pool_predictor_pandas_batches_equal_session_run(scenario):
    report, work = scenario
    pandas = report["pandas"]
    assert pandas["rows"] == 48
    assert pandas["direct_is_dataframe"]
    model = edgepipe.Model.load(edgepipe.default_model_path())
    assert pandas["direct_columns"] == sorted(["id", *(t.name for t in model.outputs)])
    _assert_outputs_equal_session_run(work / "pandas", work / "inputs", 48)
    _assert_outputs_equal_session_run(work / "pandas_direct", work / "inputs", 48)


def test_model_damaged_in_transit_is_a_model_error_on_the_node(scenario):
    report, _ = scenario
    d = report["damaged"]
    assert d["damaged"] != "loaded"
    assert d["damaged"]["is_model_error"], d
    assert "arrived damaged" in d["damaged"]["message"]
    assert not d["cached_after_damaged"]  # nothing unverified is kept on the node
    assert d["intact"] == ["sum", "product"]
    assert d["cached_after_intact"]
    # garbage in the node's cache under the model's hash is refetched, not loaded
    assert d["after_poison"] == ["sum", "product"]
    assert d["cache_repaired"]


def test_evaluate_models_reports_a_model_the_nodes_refuse(scenario):
    report, _ = scenario
    r = report["refused"]
    assert r["good_ok"] and r["good_outputs"] == 4
    assert r["refused_ok"] is False
    assert r["refused_error"].startswith("CompileError (custom_op.tflite on node "), r
    assert "EdgepipeUnknownOp" in r["refused_error"], r


_COMPARED = ("size", "errors", "max_abs", "mean_rel", "min_cosine", "min_top1", "accuracy")


def test_optimize_eval_on_ray_matches_a_local_eval(scenario):
    report, work = scenario
    runs = report["optimize"]
    for mode in ("local", "ray"):
        assert runs[mode]["rc"] == 0, runs[mode]
    local = json.loads((work / "opt_local.json").read_text())
    remote = json.loads((work / "opt_ray.json").read_text())
    assert local["settings"]["evaluator"] is None
    assert remote["settings"]["evaluator"].startswith("ray cluster ")
    assert local["data"] == remote["data"]
    assert local["data"]["labels"] and local["data"]["eval_samples"] == 12
    entries = [(local["original"], remote["original"])]
    entries += list(zip(local["variants"], remote["variants"]))
    assert [r["name"] for _, r in entries] == ["original", "dynamic_int8", "fp16"]
    nodes: set[str] = set()
    for a, b in entries:
        assert a["name"] == b["name"]
        for key in _COMPARED:
            assert a[key] == b[key], (a["name"], key)
        assert a["accuracy"] is not None
        assert "evaluated_on" not in a
        on = b["evaluated_on"]["nodes"]
        assert sum(n["samples"] for n in on.values()) == 12
        nodes.update(on)
    assert len(nodes) == 2  # the evaluation was spread over both nodes
    assert "eval outputs computed by ray cluster" in runs["ray"]["stdout"]


_NO_RAY = """
import sys
sys.modules["ray"] = None  # as if edgepipe[ray] were not installed
import edgepipe.ray as er  # importing the package needs no Ray
try:
    er.score(sys.argv[1], sys.argv[2], sys.argv[3], use_ray=True)
except er.RayUnavailableError as exc:
    assert isinstance(exc, ImportError) and isinstance(exc, er.RayUnavailableError)
    print("RAISED", exc)
from edgepipe.cli.main import main
sys.exit(main(["bench", sys.argv[1], "--ray", "auto", "--runs", "1"]))
"""


def test_without_ray_the_error_names_the_extra(tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    model = edgepipe.Model.load(edgepipe.default_model_path())
    t = model.inputs[0]
    np.savez(data / "a.npz", **{t.name: np.zeros(t.shape, t.dtype)})
    proc = subprocess.run(
        [sys.executable, "-c", _NO_RAY, str(model.path), str(data), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "RAISED this needs Ray" in proc.stdout, proc.stdout + proc.stderr
    assert "pip install 'edgepipe[ray]'" in proc.stdout
    # the command line: one error line naming the extra, exit status 1
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: this needs Ray, which is an optional extra: pip install 'edgepipe[ray]'"
    )
    assert not (tmp_path / "out").exists()


def test_killing_a_worker_mid_job_loses_and_duplicates_nothing(scenario):
    report, _ = scenario
    kill = report["kill"]
    assert kill["killed"], "no Ray Data actor was found to kill"
    if kill["outcome"] == "finished":
        assert kill["count"] == 400
        assert kill["identical"]
    else:
        assert kill["outcome"] == "failed_cleanly"
        assert "nothing written" in kill["error"] or "no result" in kill["error"]


def test_score_refuses_bad_inputs_with_typed_errors(tmp_path):
    from edgepipe.ray import ScoreDataError, score

    model = edgepipe.default_model_path()
    data = tmp_path / "in"
    data.mkdir()
    with pytest.raises(ScoreDataError, match=r"no \.npz input files"):
        score(model, data, tmp_path / "out")
    np.savez(data / "a.npz", wrong=np.zeros((2, 2), np.float32), other=np.zeros(1))
    with pytest.raises(ScoreDataError, match=r"has arrays \['other', 'wrong'\].*missing"):
        score(model, data, tmp_path / "out")
    (data / "a.npz").unlink()
    np.savez(data / "a.npz", np.zeros((5, 5), np.float32))
    with pytest.raises(ScoreDataError, match=r"shape \[5, 5\]"):
        score(model, data, tmp_path / "out")
    (data / "a.npz").unlink()
    os.mkfifo(data / "f.npz")
    with pytest.raises(ScoreDataError, match="not a regular file"):
        score(model, data, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_evaluate_models_refuses_no_samples_before_starting_ray():
    ray = pytest.importorskip("ray")
    from edgepipe.errors import InputError
    from edgepipe.ray import evaluate_models

    with pytest.raises(InputError, match="no samples"):
        evaluate_models([edgepipe.default_model_path()], [])
    assert not ray.is_initialized()


def test_score_cli_reports_an_error_line(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgepipe",
            "score",
            str(edgepipe.default_model_path()),
            str(tmp_path / "missing"),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and "not a folder" in out.stderr
