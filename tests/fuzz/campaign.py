"""The fuzz campaign: seeded mutants of the corpus, each loaded, compiled and run in a
child process, with crashes, hangs and untyped exceptions pinned to their case.

A case is ``(model name, seed)``; the child rebuilds the mutant from it (the corpus and
``mutator.mutate`` are deterministic), so a case is reproduced anywhere with
``python scripts/fuzz_models.py --replay NAME SEED``. Children are a small pool of
batched worker processes (``tests/crash_harness.py``): a crash costs one interpreter
restart and is blamed on exactly one case.

Outcomes per case: ``rejected`` (typed error at load: the verifier or the runtime said
no), ``failed`` (typed error at compile or run), ``ran``, ``untyped`` (an exception that
is not an ``edgepipe.errors.EdgepipeError``), ``crash`` (the child died), ``hang`` (no
result within the per-case timeout).
"""

from __future__ import annotations

import collections
import concurrent.futures
import pathlib
import sys
import time

_TESTS = pathlib.Path(__file__).resolve().parents[1]
for _p in (str(_TESTS), str(_TESTS / "fuzz")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import crash_harness  # noqa: E402

__all__ = ["OUTCOMES", "case_list", "replay", "run_campaign"]

OUTCOMES = ("rejected", "failed", "ran", "untyped", "crash", "hang")

_WORKER_BODY = f"""
import os, resource, sys
sys.path[:0] = [{str(_TESTS)!r}, {str(_TESTS / "fuzz")!r}]
# A mutant may declare a huge tensor: fail its allocation instead of swapping.
_soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
_cap = 16 << 30
if _hard == resource.RLIM_INFINITY or _hard > _cap:
    resource.setrlimit(resource.RLIMIT_AS, (_cap, _hard))
import corpus, fixtures, mutator
import edgepipe
from edgepipe import errors
_models = corpus.corpus_models(fixtures, fixtures.load_generator())
_fields = {{}}

def run_case(data):
    name, seed = data.decode().split("\\t")
    base = _models[name]
    if name not in _fields:
        _fields[name] = mutator.locate_fields(base)
    mutant, _ = mutator.mutate(base, _fields[name], int(seed))
    try:
        model = edgepipe.Model.from_bytes(mutant)
    except errors.EdgepipeError as e:
        return "rejected " + type(e).__name__ + ": " + str(e)[:200]
    try:
        session = model.compile("cpu")
        session.run()
    except errors.EdgepipeError as e:
        return "failed " + type(e).__name__ + ": " + str(e)[:200]
    return "ran"
"""


def case_list(names: list[str], count: int, seed: int, skip: int = 0) -> list[tuple[str, bytes]]:
    """Cases ``skip..count-1`` cycling over ``names``; case i uses seed ``seed * 10**7 + i``."""
    out = []
    for i in range(skip, count):
        name = names[i % len(names)]
        s = seed * 10**7 + i
        out.append((f"{name} seed={s}", f"{name}\t{s}".encode()))
    return out


def _outcome(r: crash_harness.CaseResult) -> str:
    if r.outcome == "ok":
        return r.detail.split(" ", 1)[0]
    if r.outcome == "error":
        return "untyped"
    if r.outcome == "timeout":
        return "hang"
    return "crash"  # crash or lost


def run_campaign(
    names: list[str],
    count: int,
    seed: int,
    *,
    workers: int = 2,
    timeout: float = 60.0,
    batch_size: int = 1000,
    skip: int = 0,
) -> dict:
    """Run cases ``skip..count-1``; returns counts and every crash, hang or untyped case."""
    cases = case_list(names, count, seed, skip)
    worker = crash_harness.make_worker(_WORKER_BODY)
    shards = [cases[k::workers] for k in range(workers)]

    def run_shard(shard: list[tuple[str, bytes]]) -> list[crash_harness.CaseResult]:
        # fork() fails with EAGAIN when the machine's process table is full
        # (other jobs): wait and redo the shard rather than lose the campaign.
        for attempt in range(6):
            try:
                return crash_harness.run_cases_in_subprocess(
                    shard, worker, timeout, batch_size=batch_size
                )
            except BlockingIOError:
                if attempt == 5:
                    raise
                time.sleep(15)
        raise AssertionError("unreachable")

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(run_shard, shards))
    counts: collections.Counter[str] = collections.Counter()
    by_model: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    bad = []
    for shard, results in zip(shards, parts):
        for (desc, _), r in zip(shard, results):
            o = _outcome(r)
            counts[o] += 1
            by_model[desc.split(" ")[0]][o] += 1
            if o in ("untyped", "crash", "hang"):
                bad.append({"case": desc, "outcome": o, "detail": r.detail[:500]})
    return {
        "cases": len(cases),
        "seed": seed,
        "counts": {o: counts[o] for o in OUTCOMES},
        "by_model": {k: dict(v) for k, v in sorted(by_model.items())},
        "bad": bad,
    }


def replay(name: str, seed: int) -> tuple[bytes, str]:
    """The mutant bytes and mutation description of one case."""
    import corpus
    import fixtures
    import mutator

    base = corpus.corpus_models(fixtures, fixtures.load_generator())[name]
    return mutator.mutate(base, mutator.locate_fields(base), seed)
