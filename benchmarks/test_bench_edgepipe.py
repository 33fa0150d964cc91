"""edgepipe: Session.run and Pool.run (1 and 2 workers) per model."""

from __future__ import annotations

from typing import Any

import pytest


def test_session_run(benchmark: Any, model: Any, inputs: dict[str, Any]) -> None:
    """One Session.run (1 thread): copy in, run, copy out, GIL released while running."""
    session = model.compile("cpu", threads=1, weight_cache=True)
    benchmark.group = f"{model.path.stem}: single call"
    out = benchmark(session.run, inputs)
    assert set(out) == {t.name for t in model.outputs}


def test_session_bare_cpp_loop(benchmark: Any, model: Any) -> None:
    """The floor: 100 runs in Session.benchmark_loop (no Python in the loop), per call."""
    session = model.compile("cpu", threads=1, weight_cache=True)
    benchmark.group = f"{model.path.stem}: 100 calls"
    seconds = benchmark(session.benchmark_loop, 100)
    assert seconds > 0


@pytest.mark.parametrize("workers", [1, 2])
def test_pool_run(
    benchmark: Any, edgepipe: Any, model: Any, inputs: dict[str, Any], workers: int
) -> None:
    """One pool.run from one caller: the latency of a request, queue hop included."""
    with edgepipe.Pool(model, workers=workers, threads=1) as pool:
        pool.run(inputs)
        benchmark.group = f"{model.path.stem}: single call"
        benchmark.extra_info["workers"] = workers
        out = benchmark(pool.run, inputs)
    assert set(out) == {t.name for t in model.outputs}


@pytest.mark.parametrize("workers", [1, 2])
def test_pool_map_100(
    benchmark: Any, edgepipe: Any, model: Any, inputs: dict[str, Any], workers: int
) -> None:
    """100 requests through pool.map (2 x workers in flight): throughput of N workers."""
    with edgepipe.Pool(model, workers=workers, threads=1) as pool:
        pool.run(inputs)
        batch = [inputs] * 100
        benchmark.group = f"{model.path.stem}: 100 calls"
        benchmark.extra_info["workers"] = workers

        def run_batch() -> int:
            return sum(1 for _ in pool.map(batch))

        assert benchmark(run_batch) == 100
