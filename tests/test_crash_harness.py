"""Tests for the batched subprocess crash harness in tests/crash_harness.py."""

from __future__ import annotations

import signal

from corrupt import corruptions
from crash_harness import make_worker, run_cases_in_subprocess, summarize

_ABORTING_WORKER = make_worker("""
import os, time

def run_case(data):
    if data == b"ABORT":
        os.abort()
    if data == b"EXIT3":
        os._exit(3)
    if data == b"SLEEP":
        time.sleep(60)
    if data == b"RAISE":
        raise ValueError("bad case")
    return "len=%d" % len(data)
""")


def test_abort_is_pinned_to_its_case_and_batch_resumes():
    cases = [(f"case {i}", b"x" * i) for i in range(30)]
    cases[7] = ("the aborting one", b"ABORT")
    cases[8] = ("raises", b"RAISE")
    cases[21] = ("exits with 3", b"EXIT3")
    results = run_cases_in_subprocess(cases, _ABORTING_WORKER, timeout=30, batch_size=12)
    assert [r.index for r in results] == list(range(30))
    assert results[7].outcome == "crash"
    assert results[7].signal_name == "SIGABRT"
    assert results[7].returncode == -signal.SIGABRT
    assert results[7].description == "the aborting one"
    assert results[8].outcome == "error" and "ValueError: bad case" in results[8].detail
    assert results[21].outcome == "crash" and results[21].returncode == 3
    for i in set(range(30)) - {7, 8, 21}:
        assert results[i].outcome == "ok", results[i]
        assert results[i].detail == f"len={i}"
    assert summarize(results) == {"ok": 27, "error": 1, "crash": 2, "timeout": 0, "lost": 0}


def test_timeout_is_pinned_to_its_case():
    cases = [("a", b"a"), ("sleeper", b"SLEEP"), ("b", b"b")]
    results = run_cases_in_subprocess(cases, _ABORTING_WORKER, timeout=3)
    assert [r.outcome for r in results] == ["ok", "timeout", "ok"]
    # Just before giving up, the worker dumped where it waited.
    assert "in run_case" in results[1].detail, results[1].detail


def test_broken_worker_reports_every_case_once():
    results = run_cases_in_subprocess(
        [("a", b"a"), ("b", b"b")], "import nonexistent_module_xyz", timeout=30
    )
    assert [r.outcome for r in results] == ["crash", "crash"]
    assert "nonexistent_module_xyz" in results[0].detail


def test_worker_that_skips_cases_marks_them_lost():
    worker = "print('START 0', flush=True)\nprint('RESULT 0 ok fine', flush=True)\n"
    results = run_cases_in_subprocess([("a", b"a"), ("b", b"b")], worker, timeout=30)
    assert [r.outcome for r in results] == ["ok", "lost"]


def test_demo_litert_interpreter_on_corrupt_models(generator):
    """Corrupted default models through ai_edge_litert's Interpreter: every case accounted.

    The reference runtime is allowed to crash on garbage (that is what the harness is
    for); what this checks is that the harness attributes every case to an outcome.
    """
    worker = make_worker("""
import numpy as np
from ai_edge_litert.interpreter import Interpreter

def run_case(data):
    interp = Interpreter(model_content=data)
    interp.allocate_tensors()
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    interp.invoke()
    return "ran"
""")
    data = generator.build_convnet()
    cases = list(corruptions(data, seed=0, count=120))
    cases.append(("pristine control", data))
    results = run_cases_in_subprocess(cases, worker, timeout=60, batch_size=60)
    assert len(results) == len(cases)
    counts = summarize(results)
    assert counts["lost"] == 0
    assert sum(counts.values()) == len(cases)
    assert results[-1].outcome == "ok", results[-1]
    # Most corruptions are rejected with an exception rather than running.
    assert counts["error"] > 0
