"""Logging policy: the library stays quiet unless asked; a fallback is one warning line."""

from __future__ import annotations

import logging
import os
import pathlib
import subprocess
import sys

import edgepipe
import numpy as np
import pytest


def _stderr_of(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgepipe", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
        check=False,
    )


@pytest.fixture
def inputs_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "in.npz"
    np.savez(path, a=np.ones((1, 4), np.float32), b=np.ones((1, 4), np.float32))
    return path


def test_the_library_logger_has_a_null_handler():
    handlers = logging.getLogger("edgepipe").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


def test_a_gpu_fallback_is_one_warning_with_the_runtime_text_at_debug(generated_models, caplog):
    model = edgepipe.Model.load(generated_models["add_mul"])
    with caplog.at_level(logging.DEBUG, logger="edgepipe"):
        session = model.compile("gpu")
    assert session.accelerator == "cpu"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "gpu" in warnings[0].getMessage() and "cpu" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()
    (event,) = session.events
    assert any(
        r.levelno == logging.DEBUG and event["error"] in r.getMessage() for r in caplog.records
    )


def test_a_pool_of_workers_falling_back_alike_warns_once(generated_models, caplog):
    model = edgepipe.Model.load(generated_models["add_mul"])
    with (
        caplog.at_level(logging.WARNING, logger="edgepipe"),
        edgepipe.Pool(model, workers=3, accelerator="gpu") as pool,
    ):
        assert set(pool.stats()["worker_accelerators"]) == {"cpu"}
    # One fallback line (the scheduler may add its own about oversubscribed cores).
    fallbacks = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and r.getMessage().startswith("accelerator gpu")
    ]
    assert len(fallbacks) == 1


def _run_add_mul(
    models: dict[str, pathlib.Path], inputs: pathlib.Path, out: pathlib.Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """``edgepipe run add_mul --inputs INPUTS --outputs OUT --quiet ARGS`` with ``env``."""
    return _stderr_of(
        "run",
        str(models["add_mul"]),
        "--inputs",
        str(inputs),
        "--outputs",
        str(out / "o.npz"),
        "--quiet",
        *args,
        **env,
    )


def test_cli_gpu_fallback_prints_only_one_edgepipe_line(generated_models, inputs_file, tmp_path):
    proc = _run_add_mul(generated_models, inputs_file, tmp_path, "--accelerator", "gpu")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning:") and "gpu" in lines[0], proc.stderr


def test_cli_silent_level_prints_no_edgepipe_warning(generated_models, inputs_file, tmp_path):
    proc = _run_add_mul(
        generated_models, inputs_file, tmp_path, "--accelerator", "gpu", EDGEPIPE_LOG_LEVEL="silent"
    )
    assert proc.returncode == 0, proc.stderr
    assert not [ln for ln in proc.stderr.splitlines() if ln.startswith("warning:")]


def test_cpu_run_prints_nothing_on_stderr(generated_models, inputs_file, tmp_path):
    proc = _run_add_mul(generated_models, inputs_file, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
