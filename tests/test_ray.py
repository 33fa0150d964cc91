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
        timeout=900,
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
    for r in rows:
        assert r["latency_ms"]["p50"] > 0
        assert r["device"]["litert"] == edgepipe.runtime_version()


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
