"""Tests for the corruption generator in tests/corrupt.py."""

from __future__ import annotations

import pytest
from corrupt import MUTATION_KINDS, corruptions, whole_file_cases


@pytest.fixture(scope="module")
def model_bytes(generator) -> bytes:
    return generator.build_convnet()


def test_deterministic(model_bytes):
    a = list(corruptions(model_bytes, seed=7, count=300))
    b = list(corruptions(model_bytes, seed=7, count=300))
    assert a == b


def test_seed_matters(model_bytes):
    a = [blob for _, blob in corruptions(model_bytes, seed=1, count=200)]
    b = [blob for _, blob in corruptions(model_bytes, seed=2, count=200)]
    assert a != b


@pytest.mark.parametrize("count", [0, 1, 5, 57, 400])
def test_count_and_all_differ(model_bytes, count):
    cases = list(corruptions(model_bytes, seed=3, count=count))
    assert len(cases) == count
    for desc, blob in cases:
        assert isinstance(desc, str) and desc
        assert isinstance(blob, bytes)
        assert blob != model_bytes, desc


def test_prefix_stable(model_bytes):
    # A longer run starts with the cases of a shorter one, so counts can grow in CI.
    short = list(corruptions(model_bytes, seed=4, count=50))
    long = list(corruptions(model_bytes, seed=4, count=120))
    assert long[:50] == short


def test_covers_every_kind_and_whole_file_case(model_bytes):
    n_whole = len(whole_file_cases(model_bytes, 0))
    cases = list(corruptions(model_bytes, seed=0, count=n_whole + 10 * len(MUTATION_KINDS)))
    descs = [d for d, _ in cases]
    for kind in MUTATION_KINDS:
        assert any(f" {kind}: " in d for d in descs), kind
    blobs = [b for _, b in cases]
    assert b"" in blobs
    assert any(b.startswith(b"PK\x03\x04") for b in blobs)
    assert any(len(b) >= 8 and b[4:8] != b"TFL3" and b[8:] == model_bytes[8:] for b in blobs)
    assert any(0 < len(b) < 8 for b in blobs), "no truncation inside the header"
    assert any(len(b) > len(model_bytes) for b in blobs)
    assert any("word at" in d for d in descs)


def test_tiny_and_empty_inputs():
    for data in (b"", b"\x00", b"abc", b"TFL3"):
        cases = list(corruptions(data, seed=9, count=60))
        assert len(cases) == 60
        assert all(blob != data for _, blob in cases)
