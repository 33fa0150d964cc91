"""The accelerator layer on the real runtime, on this GPU-less machine.

Delegate plugins are real shared libraries built from tests/plugins/test_delegate.c
with the system C compiler: one that executes ADD/MUL itself, and one each that
fails in create, in Prepare and in Invoke.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading

import edgepipe
import numpy as np
import pytest
from edgepipe import accelerators as acc
from edgepipe.accelerators import crash
from edgepipe.accelerators.policy import Policy
from edgepipe.cli import accelerators as cli_accelerators
from edgepipe.profiling.bench import bench_fields


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    # Crash marks, the denylist and auto decisions are per test.
    monkeypatch.setenv("EDGEPIPE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("EDGEPIPE_ACCELERATOR_POLICY", raising=False)


@pytest.fixture(scope="module")
def model(generated_models) -> edgepipe.Model:
    return edgepipe.Model.load(generated_models["add_mul"])


def _inputs(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "a": rng.standard_normal((1, 4)).astype(np.float32),
        "b": rng.standard_normal((1, 4)).astype(np.float32),
    }


def _cpu(model, inputs):
    return edgepipe.Session(model, accelerator="cpu").run(inputs)


# -- detection --------------------------------------------------------------------


def test_accelerators_table_is_honest_here(plugins):
    rows = {r.name: r for r in acc.detect(plugins=[plugins["good"], "/nonexistent.so"])}
    assert rows["cpu"].usable
    assert not rows["gpu"].usable and rows["gpu"].reason  # no GPU adapter on this machine
    assert not rows["npu"].usable and "dispatch" in rows["npu"].reason
    for classic in ("nnapi", "hexagon", "edgetpu", "gpu-delegate"):
        assert classic in rows and not rows[classic].usable and rows[classic].reason
    good = rows["plugin:" + plugins["good"]]
    assert good.usable and good.kind == "plugin"
    missing = rows["plugin:/nonexistent.so"]
    assert not missing.usable and "cannot load" in missing.reason


def test_cli_accelerators_json(capsys):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    cli_accelerators.register(sub)
    args = parser.parse_args(["accelerators", "--json"])
    assert args.func(args) == 0
    doc = json.loads(capsys.readouterr().out)
    names = {r["name"]: r for r in doc["accelerators"]}
    assert names["cpu"]["usable"] and not names["gpu"]["usable"]


# -- GPU fallback on a GPU-less machine ----------------------------------------------


def test_gpu_falls_back_to_cpu_at_compile(model):
    inputs = _inputs()
    session = edgepipe.Session(model, accelerator="gpu")
    assert session.accelerator == "cpu"
    (event,) = session.events
    assert (event["from"], event["to"], event["stage"]) == ("gpu", "cpu", "compile")
    assert "LiteRT status" in event["error"]
    for k, v in _cpu(model, inputs).items():
        np.testing.assert_array_equal(session.run(inputs)[k], v)
    fields = bench_fields(session)
    assert fields["accelerator"] == "cpu" and fields["fallbacks"][0]["from"] == "gpu"


def test_gpu_without_fallback_raises(model):
    with pytest.raises(edgepipe.AcceleratorError, match="gpu"):
        edgepipe.Session(model, accelerator="gpu", allow_cpu_fallback=False)


def test_npu_that_takes_no_ops_is_a_fallback_not_a_lie(model):
    session = edgepipe.Session(model, accelerator="npu")
    assert session.accelerator == "cpu"
    assert session.events[0]["from"] == "npu" and session.events[0]["error"]


# -- delegate plugins -----------------------------------------------------------------


def test_good_plugin_executes_and_equals_cpu(model, plugins):
    inputs = _inputs(1)
    session = edgepipe.Session(model, accelerator=plugins["good"])
    assert session.accelerator == "plugin:" + plugins["good"]
    assert session.events == []
    report = acc.delegation_report(model, plugins["good"])
    assert report["plugin_ops"] == ["ADD", "MUL"] and report["cpu_ops"] == []
    assert report["non_cpu_fully_accelerated"]
    out = session.run(inputs)
    for k, v in _cpu(model, inputs).items():
        np.testing.assert_array_equal(out[k], v)


def test_partial_delegation_names_the_ops_left_on_cpu(model, plugins):
    report = acc.delegation_report(
        model, "plugin:" + plugins["good"], plugin_options={"ops": "add"}
    )
    assert report["plugin_ops"] == ["ADD"]
    assert report["cpu_ops"] == ["MUL"]
    assert not report["non_cpu_fully_accelerated"]
    assert "left on the CPU: MUL" in acc.format_delegation(report)


@pytest.mark.parametrize(
    ("variant", "stage", "text"),
    [
        ("fail_create", "compile", "injected create failure"),
        ("fail_prepare", "compile", "injected prepare failure"),
        ("fail_invoke", "first_run", "injected invoke failure"),
    ],
)
def test_failing_plugin_falls_back_with_its_error_text(model, plugins, variant, stage, text):
    inputs = _inputs(2)
    session = edgepipe.Session(model, accelerator=plugins[variant])
    assert session.accelerator == "cpu"
    (event,) = session.events
    assert event["stage"] == stage and event["to"] == "cpu"
    assert text in event["error"]
    for k, v in _cpu(model, inputs).items():
        np.testing.assert_array_equal(session.run(inputs)[k], v)


@pytest.mark.parametrize(
    ("variant", "options", "stages"),
    [
        ("fail_create", None, {"compile"}),
        ("fail_prepare", None, {"compile"}),
        ("fail_invoke", None, {"first_run"}),
        # The first invoke (the first-run check) succeeds, later ones fail: runs
        # are retried on the CPU and the plugin is retired after 3 failures.
        ("fail_invoke", {"fail_after": "1"}, {"run", "retired"}),
        ("good", None, set()),
    ],
)
def test_pool_under_load_loses_no_request(model, plugins, variant, options, stages):
    n_threads, per_thread = 4, 60
    expected = {}
    cpu = edgepipe.Session(model, accelerator="cpu")
    for i in range(n_threads * per_thread):
        expected[i] = cpu.run(_inputs(i))
    results: dict[int, dict[str, np.ndarray]] = {}
    errors: list[BaseException] = []
    with edgepipe.Pool(
        model, workers=3, accelerator=plugins[variant], plugin_options=options
    ) as pool:

        def client(t: int) -> None:
            futures = [
                (i, pool.submit(_inputs(i))) for i in range(t * per_thread, (t + 1) * per_thread)
            ]
            for i, f in futures:
                try:
                    results[i] = f.result(timeout=60)
                except BaseException as exc:  # collected and asserted below
                    errors.append(exc)

        threads = [threading.Thread(target=client, args=(t,)) for t in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = pool.stats()
    assert errors == []
    assert len(results) == n_threads * per_thread
    assert stats["completed"] == n_threads * per_thread and stats["failed"] == 0
    for i, out in results.items():
        for k, v in expected[i].items():
            np.testing.assert_array_equal(out[k], v)
    seen = {e["stage"] for e in stats["fallback_events"]}
    assert stages <= seen and (stages or not seen)
    if "retired" in stages:
        # Which workers get enough requests to reach the retirement count
        # depends on scheduling; at least one must have, and every retirement
        # leaves its worker on the CPU.
        retired = [e for e in stats["fallback_events"] if e["stage"] == "retired"]
        assert 1 <= len(retired) <= 3
        assert stats["worker_accelerators"].count("cpu") >= len(retired)
        assert stats["fallback_runs"] >= 3
    if variant == "good":
        assert stats["worker_accelerators"] == ["plugin:" + plugins["good"]] * 3


# -- crash safety -------------------------------------------------------------------------


def _crash_child(model_path: str, plugin: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import edgepipe, sys\n"
        f"edgepipe.Session({model_path!r}, accelerator={plugin!r},"
        " plugin_options={'fail_at': 'crash'})\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_accelerator_that_kills_the_process_is_denied_next_start(model, plugins):
    proc = _crash_child(str(model.path), plugins["good"])
    assert proc.returncode < 0  # killed by SIGABRT inside the plugin's create
    marks = list(crash.marks_dir().glob("*.mark"))
    assert len(marks) == 1  # left behind by the dead process
    # "Next start": a new session sweeps the stale mark into the denylist and
    # does not try the plugin again.
    session = edgepipe.Session(model, accelerator=plugins["good"])
    assert session.accelerator == "cpu"
    (event,) = session.events
    assert event["stage"] == "policy" and "denied after a crash" in event["error"]
    assert not list(crash.marks_dir().glob("*.mark"))
    row = {r.name: r for r in edgepipe.accelerators.detect(plugins=[plugins["good"]])}
    assert not row["plugin:" + plugins["good"]].usable
    assert acc.clear_denylist() == 1
    assert edgepipe.Session(model, accelerator=plugins["good"]).accelerator != "cpu"


def test_live_process_marks_are_not_stale(model, plugins):
    (crash.marks_dir() / "plugin_x.1.0.mark").write_text(
        json.dumps({"accelerator": "plugin:/x.so", "pid": os.getpid(), "model": "m"})
    )
    assert crash.sweep(force=True) == []
    assert crash.denied() == {}


def test_subprocess_probe_survives_a_crash(model, plugins, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(sys.path))
    bad = acc.probe_in_subprocess(model.path, plugins["good"], plugin_options={"fail_at": "crash"})
    assert not bad["ok"] and bad["returncode"] < 0
    assert "plugin:" + plugins["good"] in crash.denied()
    ok = acc.probe_in_subprocess(model.path, plugins["fail_invoke"])
    assert not ok["ok"] and "injected invoke failure" in ok["error"]


# -- policy ---------------------------------------------------------------------------------


def test_policy_rules_match_device_runtime_and_model(model, tmp_path, monkeypatch, plugins):
    doc = {
        "preference": ["gpu", "cpu"],
        "rules": [
            {"allow": plugins["good"], "when": {"model": model.sha256[:8] + "*"}},
            {
                "deny": "*",
                "when": {"runtime": edgepipe.runtime_version()},
                "reason": "fleet says no",
            },
        ],
    }
    policy = Policy.from_dict(doc)
    facts = {"runtime": edgepipe.runtime_version(), "model_sha256": model.sha256}
    assert policy.decide("plugin:" + plugins["good"], facts)[0]
    assert policy.decide("gpu", facts) == (False, "fleet says no")
    assert policy.decide("gpu", {"runtime": "9.9.9"})[0]
    assert policy.decide("cpu", facts)[0]
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(doc))
    monkeypatch.setenv("EDGEPIPE_ACCELERATOR_POLICY", str(path))
    session = edgepipe.Session(model, accelerator=["gpu", plugins["good"]])
    assert session.accelerator == "plugin:" + plugins["good"]
    (event,) = session.events
    assert event["stage"] == "policy" and "fleet says no" in event["error"]
    rows = {r.name: r for r in edgepipe.accelerators.detect()}
    assert "denied by policy" in rows["gpu"].reason


def test_policy_rejects_bad_rules():
    with pytest.raises(edgepipe.InputError):
        Policy.from_dict({"rules": [{"deny": "gpu", "when": {"colour": "red"}}]})
    with pytest.raises(edgepipe.InputError):
        Policy.from_dict({"rules": [{"allow": "gpu", "deny": "gpu"}]})


# -- auto ---------------------------------------------------------------------------------------


def test_auto_picks_cpu_here_and_caches_the_figures(model):
    first = acc.resolve_accelerator(model, "auto")
    assert first.accelerator == ["cpu"]
    decision = first.decision
    assert decision is not None and not decision["cached"]
    assert decision["choice"] == "cpu"
    assert decision["figures"]["cpu"]["ok"] and decision["figures"]["cpu"]["median_ms"] > 0
    assert not decision["figures"]["gpu"]["ok"] and decision["figures"]["gpu"]["error"]
    assert decision["key"]["model_sha256"] == model.sha256
    second = acc.resolve_accelerator(model, "auto")
    assert second.decision is not None and second.decision["cached"]
    assert second.decision["figures"] == json.loads(json.dumps(decision["figures"]))


def test_auto_trial_includes_plugins_and_checks_outputs(model, plugins):
    decision = acc.auto_select(model, candidates=[plugins["good"], plugins["fail_invoke"], "cpu"])
    figs = decision["figures"]
    assert figs["plugin:" + plugins["good"]]["ok"]
    assert figs["plugin:" + plugins["good"]]["max_abs_diff"] == 0.0
    assert not figs["plugin:" + plugins["fail_invoke"]]["ok"]
    assert decision["choice"] in ("cpu", "plugin:" + plugins["good"])


def test_resolve_accelerator_shapes(model, plugins):
    assert acc.resolve_accelerator(model, "gpu").accelerator == ["gpu", "cpu"]
    assert acc.resolve_accelerator(model, "cpu").kwargs() == {
        "accelerator": ["cpu"],
        "plugin_options": {},
    }
    choice = acc.resolve_accelerator(model, plugins["good"], plugin_options={"ops": "add"})
    assert choice.accelerator == ["plugin:" + plugins["good"], "cpu"]
    assert edgepipe.Session(model, **choice.kwargs()).delegation["cpu_ops"] == [18]
    with pytest.raises(edgepipe.InputError):
        acc.resolve_accelerator(model, "tpu")


# -- specs: one parser, ONNX Runtime style; auto from Python ---------------------------


def test_compile_auto_and_pool_auto_work_from_python(model):
    session = model.compile("auto")
    assert session.accelerator == "cpu"  # no GPU here: the trial picks the CPU
    assert session.auto_decision is not None and session.auto_decision["choice"] == "cpu"
    with edgepipe.Pool(model, accelerator="auto", workers=1) as pool:
        assert pool.auto_decision is not None and pool.auto_decision["cached"]
        inputs = _inputs()
        np.testing.assert_array_equal(pool.run(inputs)["sum"], inputs["a"] + inputs["b"])


def test_spec_forms_normalise_to_one_list(plugins):
    lib = plugins["good"]
    same = [
        acc.parse(["npu", "gpu"]),
        acc.parse("npu, gpu"),
        acc.parse("NPU,GPU"),
        acc.parse(("npu", "gpu")),
    ]
    assert {p.names for p in same} == {("npu", "gpu")}
    parsed = acc.parse(["npu", (lib, {"ops": "add"}), "cpu"])
    assert parsed.names == ("npu", "plugin:" + lib, "cpu")
    assert parsed.options == {"plugin:" + lib: {"ops": "add"}}
    assert acc.parse((lib, {"ops": "add"})).names == ("plugin:" + lib,)
    # Options in the spec win over plugin_options=; flat plugin_options reach every plugin.
    assert acc.parse([(lib, {"ops": "add"})], {"ops": "mul"}).options["plugin:" + lib] == {
        "ops": "add"
    }
    assert acc.parse(lib, {"ops": "mul"}).options["plugin:" + lib] == {"ops": "mul"}
    assert acc.parse("auto").auto and acc.parse(" Auto ").auto


def test_plan_adds_the_cpu_tail_once(model):
    assert acc.plan(model, "gpu").accelerator == ["gpu", "cpu"]
    assert acc.plan(model, ["cpu", "gpu"]).accelerator == ["cpu", "gpu"]
    assert acc.plan(model, "gpu", allow_cpu_fallback=False).accelerator == ["gpu"]
    assert acc.plan(model, "gpu,gpu,cpu").accelerator == ["gpu", "cpu"]


def test_name_options_pairs_reach_the_plugin(model, plugins):
    # The test delegate takes only the ops named in its `ops` option; MUL stays on the CPU.
    session = edgepipe.Session(model, accelerator=[(plugins["good"], {"ops": "add"}), "cpu"])
    assert session.accelerator == "plugin:" + plugins["good"]
    assert session.delegation["cpu_ops"] == [18]
    inputs = _inputs()
    np.testing.assert_array_equal(session.run(inputs)["product"], inputs["a"] * inputs["b"])
