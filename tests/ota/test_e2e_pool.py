"""End to end with the real core: publish in a TUF repository, serve over HTTP, hot-swap a
pool under load.

v1 and v2 are published in a real TUF repository served on 127.0.0.1; a pool under
constant load moves from v1 to v2 with zero failed requests. A bad v3 (``sum`` computed as a - b)
fails the health check and is refused; v4 (``sum`` clipped by a fused ReLU)
passes the golden inputs, which are all positive, but the application's own
output checks fail on live traffic, so it is rolled back automatically. Both
end up marked bad in the store, which serves v2 again.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("edgepipe._core")

import edgepipe
from edgepipe.ota.errors import RollbackError
from edgepipe.ota.hotswap import HotSwapper
from ota_helpers import device, publish

N = 4


def _add_mul(generator, description: str, *, sum_op: str = "add", relu: bool = False) -> bytes:
    """The generator's add_mul graph, with a chosen (possibly wrong) ``sum``."""
    try:
        g = generator._GraphBuilder(description)
        schema, ops, opts, act = generator.schema, generator._OP, generator._OPTS, generator._ACT
    except AttributeError as e:
        pytest.skip(f"generator internals changed: {e}")
    a = g.tensor("a", [1, N], np.float32)
    b = g.tensor("b", [1, N], np.float32)
    s = g.tensor("sum", [1, N], np.float32)
    p = g.tensor("product", [1, N], np.float32)
    if sum_op == "add":
        o = schema.AddOptionsT()
        o.fusedActivationFunction = act.RELU if relu else act.NONE
        g.op(ops.ADD, [a, b], [s], opts.AddOptions, o)
    else:
        o = schema.SubOptionsT()
        o.fusedActivationFunction = act.NONE
        g.op(ops.SUB, [a, b], [s], opts.SubOptions, o)
    m = schema.MulOptionsT()
    m.fusedActivationFunction = act.NONE
    g.op(ops.MUL, [a, b], [p], opts.MulOptions, m)
    return g.finish({"a": a, "b": b}, {"sum": s, "product": p})


class Load:
    """Threads sending requests and checking every answer, as an application would."""

    def __init__(self, pool, threads: int = 4) -> None:
        self.pool = pool
        self.lock = threading.Lock()
        self.ok = 0
        self.wrong = 0
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        while not self.stop.is_set():
            a = rng.uniform(-2, 2, (1, N)).astype(np.float32)
            b = rng.uniform(-2, 2, (1, N)).astype(np.float32)
            try:
                out = self.pool.submit({"a": a, "b": b}).result(timeout=10)
            except Exception as e:  # any failure is what this test counts
                with self.lock:
                    self.errors.append(e)
                continue
            good = np.allclose(out["sum"], a + b, atol=1e-5) and np.allclose(
                out["product"], a * b, atol=1e-5
            )
            with self.lock:
                if good:
                    self.ok += 1
                else:
                    self.wrong += 1

    def counters(self) -> tuple[int, int]:
        with self.lock:
            return self.ok, self.wrong + len(self.errors)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)


def test_pool_swaps_under_load_and_refuses_bad_models(
    tmp_path, repo, server, root_bytes, generator
):
    v1 = _add_mul(generator, "ota e2e v1")
    v2 = _add_mul(generator, "ota e2e v2")
    v3 = _add_mul(generator, "ota e2e v3 wrong sum", sum_op="sub")
    v4 = _add_mul(generator, "ota e2e v4 relu sum", relu=True)

    store = device(tmp_path / "store", root_bytes)
    publish(repo, "1", v1)
    assert store.update(server.url).status == "installed"
    golden = {
        "a": np.array([[1, 2, 3, 4]], np.float32),
        "b": np.array([[0.5, 0.25, 2, 1]], np.float32),
    }
    expected = {"sum": golden["a"] + golden["b"], "product": golden["a"] * golden["b"]}

    with edgepipe.Pool(store.load(), workers=2, queue_size=64) as pool, Load(pool) as load:
        swapper = HotSwapper(
            pool,
            golden_inputs=golden,
            expected_outputs=expected,
            store=store,
            current_version="1",
            watch_requests=300,
            watch_seconds=20,
            counters=load.counters,
        )
        while load.counters()[0] < 200:  # let traffic build up on v1
            threading.Event().wait(0.01)

        # v1 -> v2 under load: no failed request, no wrong answer.
        publish(repo, "2", v2)
        assert store.update(server.url).status == "installed"
        r2 = swapper.swap_to_store()
        assert r2 is not None and r2.ok, r2
        assert r2.observed_requests >= 300
        assert pool.model.sha256 == store.serving().sha256
        assert load.counters()[1] == 0 and not load.errors
        assert store.serving().healthy  # an accepted swap marks the version healthy

        # v3 computes a wrong sum: refused by the health check, never serves.
        publish(repo, "3", v3)
        assert store.update(server.url).status == "installed"
        r3 = swapper.swap_to_store()
        assert r3 is not None and r3.refused and not r3.ok
        assert "differs from expected" in r3.reason
        assert str(store.current_version) == "2" and "3" in store.bad_versions
        assert load.counters()[1] == 0

        # v4 passes the golden inputs but is wrong on live traffic: rolled back.
        publish(repo, "4", v4)
        assert store.update(server.url).status == "installed"
        r4 = swapper.swap_to_store()
        assert r4 is not None and r4.rolled_back, r4
        assert "error rate" in r4.reason
        assert [e.event for e in r4.history] == ["swapped", "rolled_back"]
        assert str(store.current_version) == "2" and "4" in store.bad_versions
        assert pool.model.sha256 == store.serving().sha256
        wrong_after_rollback = load.counters()[1]
        ok_mark = load.counters()[0]
        while load.counters()[0] < ok_mark + 200:
            threading.Event().wait(0.01)
        assert load.counters()[1] == wrong_after_rollback  # v2 serves correctly again

    assert not load.errors  # not a single request failed in the pool
    assert pool.stats()["failed"] == 0
    with pytest.raises(RollbackError):
        store.update(server.url)  # v4 is still the newest offer: never installed again
    assert [e.event for e in swapper.history] == [
        "swapped",
        "accepted",
        "health_check_failed",
        "swapped",
        "rolled_back",
    ]


def test_contract_change_and_non_finite_outputs_are_refused(generator):
    golden = {"a": np.ones((1, N), np.float32), "b": np.ones((1, N), np.float32)}
    with edgepipe.Pool(edgepipe.Model.from_bytes(_add_mul(generator, "base")), workers=1) as pool:
        swapper = HotSwapper(pool, golden_inputs=golden, current_version="1")
        wider = edgepipe.Model.from_bytes(generator.build_add_mul(n=8))
        r = swapper.swap_to(wider, version="2")
        assert r.refused and "inputs differ" in r.reason
        # 1e38 * 1e38 overflows float32: the product is inf, so the model is unhealthy.
        big = {"a": np.full((1, N), 1e38, np.float32), "b": np.full((1, N), 1e38, np.float32)}
        swapper.golden_inputs = [big]
        r = swapper.swap_to(edgepipe.Model.from_bytes(_add_mul(generator, "v3")), version="3")
        assert r.refused and "not finite" in r.reason
        assert swapper.current_version == "1"
        assert pool.run(golden)["sum"].tolist() == [[2.0] * N]
