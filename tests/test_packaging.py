"""Packaging metadata: one version number, the license, the platforms claimed."""

from __future__ import annotations

import importlib.metadata
import pathlib
import re

import edgepipe

REPO = pathlib.Path(__file__).resolve().parent.parent


def _pyproject_version() -> str:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'^version = "([^"]+)"$', text, re.MULTILINE)
    assert match is not None
    return match.group(1)


def test_one_version_number():
    version = _pyproject_version()
    assert edgepipe.__version__ == version
    assert importlib.metadata.version("edgepipe") == version
    # CMake takes it from pyproject.toml too, never a copy of its own.
    cmake = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "SKBUILD_PROJECT_VERSION" in cmake
    assert not re.search(r"project\(edgepipe VERSION \d", cmake)


def test_installed_metadata():
    meta = importlib.metadata.metadata("edgepipe")
    assert meta["License-Expression"] == "Apache-2.0"
    classifiers = meta.get_all("Classifier") or []
    pythons = {
        c.rsplit(" ", 1)[-1]
        for c in classifiers
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    assert pythons == {"3.10", "3.11", "3.12", "3.13", "3.14"}
    assert "Operating System :: POSIX :: Linux" in classifiers
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert {"Documentation", "Source", "Changelog"} <= set(urls)
    assert "Apache License" in (REPO / "LICENSE").read_text(encoding="utf-8")


def test_cibuildwheel_covers_the_runtimes_pythons_and_runs_the_readme_tests():
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    section = text[text.index("[tool.cibuildwheel]") :]
    for tag in ("cp310", "cp311", "cp312", "cp313", "cp314"):
        assert f"{tag}-*" in section
    assert '"x86_64", "aarch64"' in section
    assert "python -m pytest tests" in section
