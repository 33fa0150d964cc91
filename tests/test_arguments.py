"""Every public argument is checked: a wrong one is an InputError (a ValueError)
that names the argument, never a bare TypeError/RuntimeError or a crash (#10.4)."""

from __future__ import annotations

import math
import pathlib
import threading
from typing import Any

import edgepipe
import numpy as np
import pytest
from edgepipe import InputError, Model, Pool, Session

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def add_mul(generated_models: dict[str, pathlib.Path]) -> Model:
    return Model.load(generated_models["add_mul"])


def pair() -> dict[str, np.ndarray]:
    return {"a": np.ones((1, 4), np.float32), "b": np.full((1, 4), 2.0, np.float32)}


POOL_CASES: list[tuple[dict[str, Any], str]] = [
    ({"workers": 1.5}, "workers must be an integer"),
    ({"workers": "2"}, "workers must be an integer"),
    ({"workers": True}, "workers must be an integer"),
    ({"workers": 0}, "workers must be from 1 to 256"),
    ({"workers": 3000}, "workers must be from 1 to 256"),
    ({"threads": "2"}, "threads must be an integer"),
    ({"threads": 10**6}, "threads must be from 1 to 256"),
    ({"queue_size": -1}, "queue_size must be from 1 to"),
    ({"queue_size": 2.0}, "queue_size must be an integer"),
    ({"policy": "newest"}, "policy must be one of block, reject, keep_latest"),
    ({"policy": None}, "policy must be one of"),
    ({"block_timeout": math.nan}, "block_timeout must be a number of seconds or None, not NaN"),
    ({"block_timeout": -1}, "block_timeout must be >= 0"),
    ({"block_timeout": "1"}, "block_timeout must be a number of seconds"),
    ({"retire_after_failures": 0}, "retire_after_failures must be at least 1"),
    ({"weight_cache": 3}, "weight_cache must be True, False or a file path"),
    ({"signature": 0}, "signature must be a string or None"),
    ({"accelerator": 5}, "accelerator must be"),
    ({"accelerator": []}, "empty accelerator spec"),
    ({"accelerator": ["gpu", 7]}, "accelerator entry 1 is 7"),
    ({"accelerator": ("gpu", {"x": "1"})}, "options are for delegate plugins; 'gpu' takes none"),
    ({"plugin_options": "k=v"}, "plugin_options must be a dict"),
    ({"caller_runs": "yes"}, "caller_runs must be True or False"),
    ({"caller_runs": 1}, "caller_runs must be True or False"),
    ({"caller_runs": None}, "caller_runs must be True or False"),
]


@pytest.mark.parametrize(("kwargs", "message"), POOL_CASES)
def test_pool_arguments(add_mul: Model, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message) as err:
        Pool(add_mul, **kwargs)
    assert isinstance(err.value, ValueError)


SESSION_CASES: list[tuple[dict[str, Any], str]] = [
    ({"threads": "2"}, "threads must be an integer"),
    ({"threads": 0}, "threads must be from 1 to 256"),
    ({"threads": 10**6}, "threads must be from 1 to 256"),
    ({"allow_cpu_fallback": "no"}, "allow_cpu_fallback must be True or False"),
    ({"weight_cache": 1.0}, "weight_cache must be True, False or a file path"),
    ({"signature": 1}, "signature must be a string or None"),
    ({"accelerator": None}, "accelerator must be"),
    ({"accelerator": "auto,gpu"}, "'auto' picks the accelerator itself"),
]


@pytest.mark.parametrize(("kwargs", "message"), SESSION_CASES)
def test_session_arguments(add_mul: Model, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        Session(add_mul, **kwargs)
    with pytest.raises(InputError, match=message):
        add_mul.compile(**kwargs)


@pytest.mark.parametrize("model", [None, 3, b"model.tflite"])
def test_model_argument(model: Any) -> None:
    with pytest.raises(InputError, match=r"model must be an edgepipe\.Model or a path"):
        Session(model)
    with pytest.raises(InputError, match=r"model must be an edgepipe\.Model or a path"):
        Pool(model)


def test_request_arguments(add_mul: Model) -> None:
    with Pool(add_mul) as pool:
        for bad, message in (
            (math.nan, "timeout must be a number of seconds or None, not NaN"),
            (-0.5, "timeout must be >= 0"),
            ("1", "timeout must be a number of seconds"),
        ):
            with pytest.raises(InputError, match=message):
                pool.run(pair(), timeout=bad)
            with pytest.raises(InputError, match=message):
                pool.submit(pair(), timeout=bad)
        with pytest.raises(InputError, match="block_timeout must be a number of seconds"):
            pool.submit(pair(), block_timeout=math.nan)
        with pytest.raises(InputError, match="callback must be callable"):
            pool.submit(pair(), callback=3)  # type: ignore[arg-type]
        with pytest.raises(InputError, match="window must be at least 1"):
            list(pool.map([pair()], window=0))
        with pytest.raises(InputError, match=r"model must be an edgepipe\.Model or a path"):
            pool.swap(None)  # type: ignore[arg-type]
        with pytest.raises(InputError, match="drain must be True or False"):
            pool.close("yes")  # type: ignore[arg-type]
        assert pool.stats()["submitted"] == 0  # nothing bad reached the queue


def test_session_call_arguments(add_mul: Model) -> None:
    s = add_mul.compile()
    with pytest.raises(InputError, match="input must be a name or an index"):
        s.input_buffer(1.0)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="shape must be a sequence of integers"):
        s.resize("a", "14")
    with pytest.raises(InputError, match="runs must be an integer"):
        s.benchmark_loop(2.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("forever", [None, math.inf, 1e10, 1e300])
def test_huge_and_infinite_timeouts_wait_forever(add_mul: Model, forever: float | None) -> None:
    with Pool(add_mul, block_timeout=forever) as pool:
        out = pool.run(pair(), timeout=forever)
        np.testing.assert_array_equal(out["sum"], np.full((1, 4), 3.0, np.float32))
        out = pool.submit(pair(), timeout=forever, block_timeout=forever).result(10)
        np.testing.assert_array_equal(out["product"], np.full((1, 4), 2.0, np.float32))
        assert pool.stats()["expired"] == 0


def test_infinite_block_timeout_waits_for_room(
    add_mul: Model, plugins: dict[str, str], tmp_path: pathlib.Path
) -> None:
    gate = tmp_path / "gate"
    gate.touch()  # the test delegate holds every run while this file exists
    pool = Pool(
        add_mul,
        accelerator=plugins["good"],
        plugin_options={"gate": str(gate)},
        queue_size=1,
        policy="block",
    )
    try:
        held = pool.submit(pair())
        queued = pool.submit(pair())
        done = threading.Event()
        box: list[Any] = []

        def submit_forever() -> None:
            box.append(pool.submit(pair(), block_timeout=math.inf))
            done.set()

        t = threading.Thread(target=submit_forever)
        t.start()
        assert not done.wait(0.3)  # still waiting for room, not "full for inf s"
        gate.unlink()
        t.join(10)
        assert done.is_set()
        for fut in (held, queued, box[0]):
            np.testing.assert_array_equal(fut.result(10)["sum"], np.full((1, 4), 3.0))
    finally:
        gate.unlink(missing_ok=True)
        pool.close()


def test_refused_value_is_never_listed_as_valid() -> None:
    from edgepipe.accelerators import Policy

    # "auto" is a spec for Session/Pool, not an accelerator name in a policy.
    with pytest.raises(InputError, match="unknown accelerator 'auto'") as err:
        Policy.from_dict({"preference": ["auto", "gpu"]})
    valid = str(err.value).split("expected", 1)[1]
    assert "auto" not in valid
    for bad in ("tpu", "GPU2"):
        with pytest.raises(InputError) as err:
            edgepipe.accelerators.parse(bad)
        assert bad not in str(err.value).split("expected", 1)[1]


def test_model_and_runtime_arguments(generated_models: dict[str, pathlib.Path]) -> None:
    path = generated_models["add_mul"]
    cases = [
        (lambda: Model.load(123), "path must be a file path"),
        (lambda: Model.load(path, verify="no"), "verify must be True or False"),
        (lambda: Model.load(path, runtime=5), "runtime must be a file path"),
        (lambda: Model.from_bytes("abc"), "data must be bytes, bytearray, memoryview"),
        (lambda: Model.from_bytes(path.read_bytes(), verify=1), "verify must be True or False"),
        (lambda: edgepipe.load_runtime(5), "library must be a file path"),
    ]
    for call, message in cases:
        with pytest.raises(InputError, match=message):
            call()


def test_accelerator_helper_arguments(add_mul: Model) -> None:
    from edgepipe import accelerators as acc

    with pytest.raises(InputError, match="plugins must be a list of strings"):
        acc.detect(plugins="libfoo.so")  # would be read letter by letter
    with pytest.raises(InputError, match="candidates must be a list of strings"):
        acc.auto_select(add_mul, candidates="gpu")
    with pytest.raises(InputError, match="timeout must be a number of seconds or None, not NaN"):
        acc.probe_in_subprocess(add_mul.path, "gpu", timeout=math.nan)
    with pytest.raises(InputError, match="model must be a file path"):
        acc.probe_in_subprocess(add_mul, "gpu")  # type: ignore[arg-type]


def test_map_items_argument(add_mul: Model) -> None:
    with Pool(add_mul) as pool:
        for bad in (5, {"a": 1}, "ab"):
            with pytest.raises(InputError, match="items must be an iterable of inputs"):
                pool.map(bad)  # type: ignore[arg-type]
        frames = np.stack([pair()["a"]] * 3)  # an array of frames is a fine stream
        outs = list(pool.map({"a": f, "b": f} for f in frames))
        assert len(outs) == 3
