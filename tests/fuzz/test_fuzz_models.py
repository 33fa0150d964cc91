"""CI slice of the fuzz campaign (tests/fuzz/campaign.py; the long run is
scripts/fuzz_models.py, results in docs/fuzzing.md).

3,000 seeded in-place mutants of the fixture and generated models, each loaded, compiled
and run in a child process: none may crash, hang or raise an exception that is not an
``edgepipe.errors.EdgepipeError``. A failure names the case; reproduce it with
``python scripts/fuzz_models.py --replay NAME SEED``.
"""

from __future__ import annotations

import collections

import campaign
import corpus
import fixtures
import mutator
import pytest

CASES = 3000
SEED = 7


@pytest.fixture(scope="module")
def models(generator) -> dict[str, bytes]:
    return corpus.corpus_models(fixtures, generator)


def test_corpus_covers_every_field_kind(models):
    kinds = collections.Counter(
        f.kind for data in models.values() for f in mutator.locate_fields(data)
    )
    assert set(mutator.FIELD_KINDS) <= set(kinds), set(mutator.FIELD_KINDS) - set(kinds)


def test_mutants_are_in_place_and_reproducible(models):
    for name, data in models.items():
        fields = mutator.locate_fields(data)
        a, desc = mutator.mutate(data, fields, 123)
        b, _ = mutator.mutate(data, fields, 123)
        assert a == b and len(a) == len(data), name
        assert desc
        # Only the mutated fields' bytes differ: at most 3 fields of <= 8 bytes (+ the
        # deprecated opcode byte kept consistent with a swapped builtin_code).
        assert sum(x != y for x, y in zip(a, data)) <= 4 * 8, name


def test_fuzz_campaign_ci_slice(models):
    result = campaign.run_campaign(sorted(models), CASES, SEED, workers=2, timeout=120)
    counts = result["counts"]
    assert sum(counts.values()) == CASES
    assert result["bad"] == [], result["bad"][:10]
    # The campaign must reach the runtime, not only the verifier.
    assert counts["ran"] > CASES // 20, counts
