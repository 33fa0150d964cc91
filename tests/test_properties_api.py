"""Property tests of the public API's argument handling (Hypothesis).

For arbitrary Python values given to each argument of ``Model.load``,
``Model.from_bytes``, ``Model.compile``, ``Session.run``, ``Pool(...)`` and
``pool.run`` / ``pool.submit`` / ``pool.map``, the call either works or raises
an edgepipe typed error (:class:`edgepipe.errors.EdgepipeError`): never a bare
``TypeError``/``ValueError``/``RuntimeError``, never a crash or a hang. The
calls run in a child process (tests/api_probe.py), so a crash fails the example
instead of killing pytest.

Profiles: ``edgepipe-ci`` (the default: derandomized, a fixed number of
examples, no example database, about a minute for the file) and
``edgepipe-dev`` (random, 10x the examples): ``EDGEPIPE_HYPOTHESIS=edgepipe-dev``.
"""

from __future__ import annotations

import math
import os
import pathlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from api_probe import GOOD_INPUTS, ApiProbe
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

settings.register_profile(
    "edgepipe-ci",
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
    # No shrinking in CI: a crashing example restarts the child (seconds), and
    # the first failing example is reported as found.
    phases=(Phase.explicit, Phase.generate),
    print_blob=True,
)
settings.register_profile(
    "edgepipe-dev",
    parent=settings.get_profile("edgepipe-ci"),
    max_examples=250,
    derandomize=False,
    phases=tuple(Phase),
)
PROFILE = settings.get_profile(os.environ.get("EDGEPIPE_HYPOTHESIS", "edgepipe-ci"))


# -- values ----------------------------------------------------------------------
_DTYPES = [
    np.float32,
    np.float64,
    np.float16,
    np.int8,
    np.uint8,
    np.int32,
    np.int64,
    np.bool_,
    np.complex64,
]

arrays = hnp.arrays(
    dtype=st.sampled_from(_DTYPES),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
)

scalars = st.one_of(
    # Counts the API accepts stay <= 8 (workers, threads: the shared machine has
    # a process/thread limit); the rest cross every documented limit.
    st.none(),
    st.booleans(),
    st.integers().filter(lambda i: i <= 8 or i > 4096),
    st.integers(-3, 8),
    st.sampled_from([257, 4097, 10**6, 2**31, 2**63, -(2**63), 2**64]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.just(math.inf),
    st.just(math.nan),
    st.complex_numbers(),
    st.text(max_size=12),
    st.binary(max_size=32),
    st.just(object()),
    st.fractions(),
)

anything = st.recursive(
    st.one_of(scalars, arrays),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=6), inner, max_size=3),
    ),
    max_leaves=6,
)


def _safe_path_text(text: str) -> str:
    # Paths that edgepipe may create files at stay inside the probe's folder.
    return "wc-" + text.replace("/", "_").replace("\0", "_nul_")


#: Values for arguments that take a path edgepipe may write to (weight caches).
write_paths = st.one_of(
    st.text(max_size=12).map(_safe_path_text),
    st.text(max_size=12).map(lambda t: pathlib.Path(_safe_path_text(t))),
    st.text(max_size=6).map(lambda t: _safe_path_text(t) + "\0x"),
)


def anything_but_strings() -> st.SearchStrategy[Any]:
    """Arbitrary values whose strings are made safe to use as write paths."""
    return anything.filter(lambda v: not isinstance(v, (str, bytes))) | write_paths


# -- the child -------------------------------------------------------------------
@pytest.fixture(scope="module")
def probe(
    generated_models: dict[str, pathlib.Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProbe]:
    p = ApiProbe(generated_models["add_mul"], tmp_path_factory.mktemp("api_probe"))
    try:
        yield p
    finally:
        p.close()


def check(probe: ApiProbe, op: str, args: Any) -> None:
    outcome, detail = probe.call(op, args)
    assert outcome in ("ok", "typed"), f"{op}{args!r:.300}: {outcome}: {detail}"


# -- properties --------------------------------------------------------------------
@PROFILE
@given(
    path=st.one_of(
        st.text(max_size=40),
        st.text(max_size=8).map(lambda t: t + "\0junk"),
        st.sampled_from(
            [
                "",
                ".",
                "/",
                "/dev/zero",
                "/dev/null",
                "/proc/self/mem",
                "/dev/stdin",
                "probe-stderr.txt",
                "x" * 5000,
            ]
        ),
    )
)
def test_model_load_any_text_path(probe: ApiProbe, path: str) -> None:
    check(probe, "load", (path, {}))


@PROFILE
@given(value=anything, verify=st.one_of(st.booleans(), anything))
def test_model_load_any_value(probe: ApiProbe, value: Any, verify: Any) -> None:
    check(probe, "load", (value, {"verify": verify}))


@PROFILE
@given(data=st.one_of(anything, st.binary(max_size=256), st.binary(max_size=64).map(bytearray)))
def test_model_from_bytes_any_value(probe: ApiProbe, data: Any) -> None:
    check(probe, "from_bytes", data)


@PROFILE
@given(data=st.binary(min_size=0, max_size=512))
def test_model_from_bytes_any_bytes(probe: ApiProbe, data: bytes) -> None:
    check(probe, "from_bytes", data)


_COMPILE_ARGS = ["accelerator", "threads", "weight_cache", "signature", "allow_cpu_fallback"]


@PROFILE
@given(name=st.sampled_from(_COMPILE_ARGS), value=anything_but_strings())
def test_compile_any_argument(probe: ApiProbe, name: str, value: Any) -> None:
    check(probe, "compile", {name: value})


@PROFILE
@given(
    inputs=st.one_of(
        anything,
        st.lists(arrays, max_size=3),
        st.dictionaries(st.sampled_from(["a", "b", "c"]), arrays, max_size=3),
    )
)
def test_session_run_any_inputs(probe: ApiProbe, inputs: Any) -> None:
    check(probe, "session_run", inputs)


_POOL_ARGS = [
    "workers",
    "queue_size",
    "policy",
    "accelerator",
    "threads",
    "threads_per_worker",
    "weight_cache",
    "signature",
    "block_timeout",
    "retire_after_failures",
    "plugin_options",
]


@PROFILE
@given(name=st.sampled_from(_POOL_ARGS), value=anything_but_strings())
def test_pool_any_argument(probe: ApiProbe, name: str, value: Any) -> None:
    check(probe, "pool", {name: value})


@PROFILE
@given(
    inputs=st.one_of(st.just(GOOD_INPUTS), anything),
    kwargs=st.dictionaries(st.sampled_from(["timeout"]), anything, max_size=1),
)
def test_pool_run_any_argument(probe: ApiProbe, inputs: Any, kwargs: dict[str, Any]) -> None:
    check(probe, "pool_run", (inputs, kwargs))


@PROFILE
@given(
    inputs=st.one_of(st.just(GOOD_INPUTS), anything),
    kwargs=st.dictionaries(
        st.sampled_from(["timeout", "block_timeout", "callback"]), anything, max_size=2
    ),
)
def test_pool_submit_any_argument(probe: ApiProbe, inputs: Any, kwargs: dict[str, Any]) -> None:
    check(probe, "pool_submit", (inputs, kwargs))


@PROFILE
@given(kwargs=st.dictionaries(st.sampled_from(["window", "timeout"]), anything, max_size=2))
def test_pool_map_any_argument(probe: ApiProbe, kwargs: dict[str, Any]) -> None:
    check(probe, "pool_map", kwargs)
