"""The compiled core (``edgepipe._core``) as the Python layer uses it: its fact tables,
output subsets, cancel, copies at submit, non-contiguous inputs, time limits that never
overflow, argument limits, a bounded close, and a quiet stderr.

These run against ``_core`` directly (the real runtime, real models, the test delegate
plugin to hold a worker busy), so they pin the binding's contract whatever the Python
layer above it does. Expected outputs are computed from the inputs with numpy.
"""

from __future__ import annotations

import gc
import math
import os
import pathlib
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import ai_edge_litert
import numpy as np
import pytest
from edgepipe import _core, errors

pytestmark = pytest.mark.timeout(60)

Done = tuple[bool, str, str]


def pair(i: int) -> list[np.ndarray]:
    a = np.array([[i, i + 0.5, -i, 1.0]], np.float32)
    b = np.array([[2.0, -0.25, i % 7, i * 0.125]], np.float32)
    return [a, b]


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(0.002)


@pytest.fixture(scope="module")
def runtime() -> Any:
    return _core.Runtime.load("", [os.path.dirname(ai_edge_litert.__file__)])


@pytest.fixture(scope="module")
def add_mul(runtime: Any, generated_models: dict[str, pathlib.Path]) -> Any:
    return _core.Model.from_file(runtime, str(generated_models["add_mul"]))


class Held:
    """A one-worker pool on the test delegate whose runs wait while a gate file exists."""

    def __init__(self, model: Any, plugin: str, gate: pathlib.Path, **kwargs: Any) -> None:
        self.gate = gate
        self.pool = _core.Pool(
            model, workers=1, accelerators=["plugin:" + plugin],
            plugin_options={plugin: [("gate", str(gate))]}, **kwargs,
        )
        self.done: dict[int, Done] = {}
        self.lock = threading.Lock()

    def submit(self, inputs: list[np.ndarray], **kwargs: Any) -> tuple[int, list[np.ndarray]]:
        outputs = [np.empty((1, 4), np.float32) for _ in range(2)]
        box: list[int] = []

        def done(ok: bool, kind: str, message: str, _q: float, _r: float) -> None:
            wait_for(lambda: bool(box))
            with self.lock:
                self.done[box[0]] = (ok, kind, message)

        ticket = self.pool.submit(inputs, outputs, done, **kwargs)
        box.append(ticket)
        return ticket, outputs

    def hold(self) -> tuple[int, list[np.ndarray]]:
        self.gate.touch()
        held = self.submit(pair(-1))
        wait_for(lambda: self.pool.stats()["busy_workers"] == 1
                 and self.pool.stats()["queue_depth"] == 0)
        return held

    def release(self) -> None:
        self.gate.unlink(missing_ok=True)

    def result(self, ticket: int) -> Done:
        wait_for(lambda: ticket in self.done)
        return self.done[ticket]


@pytest.fixture
def held(add_mul: Any, plugins: dict[str, str], tmp_path: pathlib.Path) -> Iterator[Held]:
    h = Held(add_mul, plugins["good"], tmp_path / "gate")
    yield h
    h.release()
    h.pool.close(drain=True)


# -- one source for the tables ---------------------------------------------------------
def test_error_kinds_name_existing_exception_classes() -> None:
    assert _core.error_kinds() == _core.ERROR_KINDS
    assert list(_core.ERROR_KINDS)[:2] == ["runtime", "model"]
    for kind, cls in _core.ERROR_KINDS.items():
        assert issubclass(getattr(errors, cls), errors.EdgepipeError), kind
        assert _core.error_class_name(kind) == cls
    assert _core.ERROR_KINDS["queue_full"] == "QueueFullError"


def test_element_types_map_to_numpy_dtypes() -> None:
    assert _core.element_types() == _core.DTYPES
    plain = {k: v for k, v in _core.DTYPES.items() if v is not None}
    assert {"float32", "int8", "uint8", "bool", "float16", "int64"} <= set(plain)
    for name in plain.values():
        assert np.dtype(name).name == name
    assert _core.DTYPES["bfloat16"] is None and _core.DTYPES["string"] is None


def test_op_names_come_from_the_generated_table() -> None:
    names = _core.op_names()
    assert tuple(names) == _core.OP_NAMES
    assert names[0] == "ADD" and names[3] == "CONV_2D"
    assert _core.builtin_op_name(3) == "CONV_2D"
    assert _core.builtin_op_name(-1) is None and _core.builtin_op_name(len(names)) is None


# -- outputs subset, non-contiguous inputs -------------------------------------------
def test_session_returns_only_the_selected_outputs(add_mul: Any) -> None:
    s = _core.Session(add_mul)
    a, b = pair(3)
    product, total = s.run([a, b], output_indices=[1, 0])
    np.testing.assert_array_equal(product, a * b)
    np.testing.assert_array_equal(total, a + b)
    (only,) = s.run([a, b], output_indices=[1])
    np.testing.assert_array_equal(only, a * b)
    for bad in ([2], [0, 0], [], [True]):
        with pytest.raises(errors.InputError):
            s.run([a, b], output_indices=bad)


def test_pool_returns_only_the_selected_outputs(add_mul: Any) -> None:
    pool = _core.Pool(add_mul, workers=1)
    try:
        a, b = pair(4)
        (product,) = pool.run([a, b], output_indices=[1])
        np.testing.assert_array_equal(product, a * b)
        out = [np.empty((1, 4), np.float32)]
        got: list[Done] = []
        pool.submit([a, b], out, lambda ok, kind, msg, q, r: got.append((ok, kind, msg)),
                    output_indices=[0])
        wait_for(lambda: bool(got))
        assert got[0][0], got
        np.testing.assert_array_equal(out[0], a + b)
    finally:
        pool.close()


def test_non_contiguous_inputs_give_the_outputs_of_their_contiguous_copies(add_mul: Any) -> None:
    base = np.arange(32, dtype=np.float32).reshape(4, 8)
    a = base[1:2, ::2]          # strided crop
    b = base[2:3, 7::-2]        # reversed
    assert not a.flags.c_contiguous and not b.flags.c_contiguous
    want = [a + b, a * b]
    s = _core.Session(add_mul)
    for got, expected in zip(s.run([a, b]), want):
        np.testing.assert_array_equal(got, expected)
    pool = _core.Pool(add_mul, workers=1)
    try:
        for got, expected in zip(pool.run([a, b]), want):
            np.testing.assert_array_equal(got, expected)
    finally:
        pool.close()


# -- copy at submit, cancel -----------------------------------------------------------
def test_changing_an_input_after_submit_does_not_change_the_result(held: Held) -> None:
    held.hold()
    a, b = pair(5)
    want = [a + b, a * b]
    ticket, outputs = held.submit([a, b])
    a[...] = 100.0  # while the request waits in the queue
    b[...] = -1.0
    held.release()
    assert held.result(ticket)[0]
    for got, expected in zip(outputs, want):
        np.testing.assert_array_equal(got, expected)


def test_cancel_removes_a_queued_request_so_it_never_runs(held: Held) -> None:
    first, _ = held.hold()
    ticket, outputs = held.submit(pair(6))
    for o in outputs:
        o.fill(np.nan)
    assert held.pool.cancel(ticket) is True
    assert held.pool.cancel(ticket) is False  # already gone
    assert held.result(ticket)[:2] == (False, "cancelled")
    assert held.pool.stats()["queue_depth"] == 0
    held.release()
    assert held.result(first)[0]
    assert held.pool.cancel(first) is False  # ran: cannot be cancelled
    s = held.pool.stats()
    assert (s["completed"], s["cancelled"]) == (1, 1)
    assert all(np.isnan(o).all() for o in outputs)  # never written


# -- time limits --------------------------------------------------------------------------
@pytest.mark.parametrize("timeout", [math.inf, 1e300, 1e10, 1e9])
def test_huge_and_infinite_timeouts_wait_forever(held: Held, timeout: float) -> None:
    held.hold()
    threading.Timer(0.2, held.release).start()
    a, b = pair(7)
    total, product = held.pool.run([a, b], timeout)
    np.testing.assert_array_equal(total, a + b)
    np.testing.assert_array_equal(product, a * b)


def test_infinite_block_timeout_waits_for_room(add_mul: Any, plugins: dict[str, str],
                                               tmp_path: pathlib.Path) -> None:
    h = Held(add_mul, plugins["good"], tmp_path / "gate", queue_size=1)
    try:
        h.hold()
        h.submit(pair(8))  # fills the queue
        threading.Timer(0.2, h.release).start()
        ticket, _ = h.submit(pair(9), block_timeout=math.inf)  # no instant QueueFullError
        assert h.result(ticket)[0]
    finally:
        h.release()
        h.pool.close()


def test_nan_timeouts_are_refused(add_mul: Any) -> None:
    pool = _core.Pool(add_mul, workers=1)
    try:
        out = [np.empty((1, 4), np.float32) for _ in range(2)]
        with pytest.raises(errors.InputError, match="nan"):
            pool.run(pair(1), math.nan)
        with pytest.raises(errors.InputError, match="nan"):
            pool.submit(pair(1), out, lambda *a: None, block_timeout=math.nan)
        with pytest.raises(errors.InputError, match="nan"):
            pool.submit(pair(1), out, lambda *a: None, timeout=math.nan)
        assert pool.stats()["submitted"] == 0
    finally:
        pool.close()


def test_zero_timeout_runs_on_an_idle_worker(add_mul: Any) -> None:
    pool = _core.Pool(add_mul, workers=2)
    try:
        for i in range(50):
            a, b = pair(i)
            total, _ = pool.run([a, b], 0.0)
            np.testing.assert_array_equal(total, a + b)
        assert pool.stats()["expired"] == 0
    finally:
        pool.close()


def test_zero_timeout_expires_when_every_worker_is_busy(held: Held) -> None:
    held.hold()
    with pytest.raises(errors.RequestTimeoutError, match="deadline passed"):
        held.pool.run(pair(1), 0.0)
    ticket, _ = held.submit(pair(2), timeout=0.0)
    held.release()
    ok, kind, _ = held.result(ticket)
    assert (ok, kind) == (False, "timeout")


# -- argument limits -------------------------------------------------------------------
def test_absurd_worker_and_thread_counts_are_input_errors(add_mul: Any) -> None:
    with pytest.raises(errors.InputError, match="workers must be between 1 and 256"):
        _core.Pool(add_mul, workers=3000)
    with pytest.raises(errors.InputError, match="workers must be between"):
        _core.Pool(add_mul, workers=0)
    with pytest.raises(errors.InputError, match="threads must be between"):
        _core.Pool(add_mul, workers=1, threads=10**6)
    with pytest.raises(errors.InputError, match="threads must be between"):
        _core.Session(add_mul, threads=10**6)
    with pytest.raises(errors.InputError, match="workers x threads"):
        _core.Pool(add_mul, workers=200, threads=200)
    assert _core.Pool(add_mul, workers=2).stats()["workers"] == 2  # still usable


# -- close and destruction ------------------------------------------------------------
def test_close_returns_while_a_callback_blocks(add_mul: Any) -> None:
    pool = _core.Pool(add_mul, workers=1, callback_wait=0.2)
    release = threading.Event()
    entered = threading.Event()

    def blocking(*_: object) -> None:
        entered.set()
        release.wait(30)

    out = [np.empty((1, 4), np.float32) for _ in range(2)]
    pool.submit(pair(1), out, blocking)
    assert entered.wait(10)
    start = time.monotonic()
    pool.close()
    assert time.monotonic() - start < 5  # bounded by callback_wait, not by the callback
    assert pool.closed
    release.set()


def test_a_destroyed_pool_fails_its_queued_requests_with_closed(
        add_mul: Any, plugins: dict[str, str], tmp_path: pathlib.Path) -> None:
    h = Held(add_mul, plugins["good"], tmp_path / "gate")
    try:
        h.hold()
        tickets = [h.submit(pair(i))[0] for i in range(3)]
        threading.Timer(0.2, h.release).start()
        del h.pool  # the last reference: destruction joins the worker without the GIL
        gc.collect()
        for t in tickets:  # failed, never silently lost
            ok, kind, message = h.result(t)
            assert (ok, kind) == (False, "closed") and "destroyed" in message
    finally:
        h.release()


# -- a quiet stderr ---------------------------------------------------------------------
def _run_child(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
        timeout=120, env={**os.environ, **(env or {})},
    )


CHILD = """
    import os, sys, numpy as np, ai_edge_litert
    from edgepipe import _core
    rt = _core.Runtime.load("", [os.path.dirname(ai_edge_litert.__file__)], {severity})
    m = _core.Model.from_file(rt, sys.argv[1] if len(sys.argv) > 1 else {path!r})
    s = _core.Session(m, {accelerators!r})
    a = np.ones((1, 4), np.float32)
    print(s.accelerator, [e["stage"] for e in s.events], s.run([a, a])[0].sum())
    for e in s.events:
        print("EVENT", e["error"].replace(chr(10), " "))
"""


def test_a_cpu_run_prints_nothing_to_stderr_at_the_default_level(
        generated_models: dict[str, pathlib.Path]) -> None:
    path = str(generated_models["add_mul"])
    done = _run_child(CHILD.format(severity=3, path=path, accelerators=["cpu"]))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("cpu [] 8.0"), done.stdout
    assert done.stderr == ""
    loud = _run_child(CHILD.format(severity=1, path=path, accelerators=["cpu"]))
    assert "XNNPACK" in loud.stderr  # at info level the runtime's line is shown


def test_a_gpu_fallback_keeps_the_runtime_text_in_the_event(
        generated_models: dict[str, pathlib.Path]) -> None:
    path = str(generated_models["add_mul"])
    done = _run_child(CHILD.format(severity=3, path=path, accelerators=["gpu", "cpu"]))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("cpu ["), done.stdout
    assert "EVENT" in done.stdout  # why the GPU was left, in the event
    assert done.stderr == ""
