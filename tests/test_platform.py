"""Platform support: ``import edgepipe`` never needs Linux-only modules; the
first call that does raises PlatformError, and runtime errors say where this
machine stands."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import edgepipe
import pytest
from edgepipe import _platform, _runtime
from edgepipe.errors import EdgepipeError, PlatformError, RuntimeLoadError

# Runs in a child whose import system pretends fcntl and resource do not exist
# (as on Windows), with a private cache folder for the weight cache.
_CHILD = textwrap.dedent("""
    import sys
    sys.modules["fcntl"] = None
    sys.modules["resource"] = None
    import numpy as np
    import edgepipe
    from edgepipe.profiling.bench import peak_rss_mb
    model = edgepipe.Model.load(edgepipe.default_model_path())
    session = model.compile("cpu")                       # no weight cache: fine
    x = np.zeros(model.inputs[0].shape, model.inputs[0].dtype)
    print("outputs", len(session.run({model.inputs[0].name: x})))
    print("rss", peak_rss_mb())
    try:
        model.compile("cpu", weight_cache=True)
    except edgepipe.PlatformError as exc:
        print("PlatformError", exc)
""")


def test_import_and_run_without_linux_only_modules(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "outputs 1"
    assert lines[1] == "rss nan"
    assert lines[2].startswith("PlatformError ")
    assert "'fcntl'" in lines[2] and "weight cache" in lines[2]


def test_platform_error_is_typed():
    assert issubclass(PlatformError, EdgepipeError)
    assert issubclass(PlatformError, NotImplementedError)
    assert edgepipe.PlatformError is PlatformError
    with pytest.raises(PlatformError, match="no_such_module"):
        _platform.need("no_such_module", "a feature")


@pytest.mark.parametrize(
    ("system", "machine", "status"),
    [
        ("Linux", "x86_64", "supported and tested"),
        ("Linux", "aarch64", "supported and tested"),
        ("Darwin", "arm64", "expected to work but untested"),
        ("Windows", "AMD64", "not supported"),
    ],
)
def test_support_note(monkeypatch, system, machine, status):
    monkeypatch.setattr(_platform, "here", lambda: (system, machine))
    note = _platform.support_note()
    assert f"({system} {machine}) is {status}" in note


def test_runtime_error_on_unsupported_platform_names_it(monkeypatch, tmp_path):
    monkeypatch.setattr(_platform, "here", lambda: ("Windows", "AMD64"))
    with pytest.raises(RuntimeLoadError) as info:
        _runtime.load_runtime(tmp_path / "missing" / "libLiteRt.so")
    assert "could not load" in str(info.value)
    assert "(Windows AMD64) is not supported" in str(info.value)


def test_runtime_error_on_supported_platform_is_unchanged(monkeypatch, tmp_path):
    monkeypatch.setattr(_platform, "here", lambda: ("Linux", "x86_64"))
    with pytest.raises(RuntimeLoadError) as info:
        _runtime.load_runtime(tmp_path / "missing" / "libLiteRt.so")
    assert "not supported" not in str(info.value)


def test_library_name_per_platform(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert _platform.runtime_library_name() == "libLiteRt.dylib"
    monkeypatch.setattr(sys, "platform", "linux")
    assert _platform.runtime_library_name() == "libLiteRt.so"
