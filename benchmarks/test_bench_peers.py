"""Peers on the same models: ai_edge_litert Interpreter and CompiledModel (1 thread)."""

from __future__ import annotations

import threading
from typing import Any

import benchlib


def test_interpreter_invoke(
    benchmark: Any, model: Any, interpreter_peer: benchlib.InterpreterPeer
) -> None:
    """set_tensor + Interpreter.invoke + get_tensor."""
    benchmark.group = f"{model.path.stem}: single call"
    out = benchmark(interpreter_peer.run)
    assert len(out) == len(model.outputs)


def test_compiled_model_run_by_index(
    benchmark: Any, model: Any, compiled_model_peer: benchlib.CompiledModelPeer
) -> None:
    """TensorBuffer.write + CompiledModel.run_by_index + TensorBuffer.read."""
    benchmark.group = f"{model.path.stem}: single call"
    out = benchmark(compiled_model_peer.run)
    assert len(out) == len(model.outputs)


def _two_threads_50_each(peers: list[Any]) -> None:
    threads = [threading.Thread(target=lambda p=p: [p.run() for _ in range(50)]) for p in peers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_interpreter_2_threads_100(benchmark: Any, model: Any, model_path: Any) -> None:
    """100 calls over 2 threads, one Interpreter each (compare with pool.map, 2 workers)."""
    peers = [benchlib.InterpreterPeer(model_path) for _ in range(2)]
    benchmark.group = f"{model.path.stem}: 100 calls"
    benchmark(_two_threads_50_each, peers)


def test_compiled_model_2_threads_100(benchmark: Any, model: Any, model_path: Any) -> None:
    """100 calls over 2 threads, one CompiledModel each (run_by_index holds the GIL)."""
    peers = [benchlib.CompiledModelPeer(model_path) for _ in range(2)]
    benchmark.group = f"{model.path.stem}: 100 calls"
    benchmark(_two_threads_50_each, peers)
