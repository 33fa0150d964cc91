"""Seeded corruption generator for model files (fuzz-style robustness tests).

``corruptions(data, seed, count)`` yields ``(description, corrupted_bytes)`` pairs. The
first cases are fixed whole-file cases (empty file, random bytes, a zip header, a wrong
file identifier, header truncations); the rest cycle through the mutation kinds in
``MUTATION_KINDS`` at seeded random positions. The same ``(data, seed, count)`` always
yields the same cases, and no case equals ``data``.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Iterator

__all__ = ["MUTATION_KINDS", "corruptions", "whole_file_cases"]

# Flatbuffer roots, vtables and the TFLite Model table live near the start of the file,
# so a share of positions is drawn from there to hit structure rather than weights.
_HEADER_REGION = 64
_HEADER_BIAS = 0.35


def _pos(rng: random.Random, size: int, *, align: int = 1) -> int:
    """A position in ``[0, size)`` (``size`` > 0), biased towards the header."""
    limit = min(size, _HEADER_REGION) if rng.random() < _HEADER_BIAS else size
    pos = rng.randrange(limit)
    return pos - pos % align


def _bit_flip(rng: random.Random, data: bytearray) -> str:
    pos, bit = _pos(rng, len(data)), rng.randrange(8)
    data[pos] ^= 1 << bit
    return f"bit flip at {pos} bit {bit}"


def _multi_bit_flip(rng: random.Random, data: bytearray) -> str:
    n = rng.randint(2, 32)
    flips = sorted({(_pos(rng, len(data)), rng.randrange(8)) for _ in range(n)})
    for pos, bit in flips:
        data[pos] ^= 1 << bit
    return f"{len(flips)} bit flips at {[p for p, _ in flips][:8]}..."


def _random_run(rng: random.Random, data: bytearray) -> str:
    pos = _pos(rng, len(data))
    length = min(rng.randint(1, 64), len(data) - pos)
    data[pos : pos + length] = rng.randbytes(length)
    return f"random bytes at {pos} len {length}"


def _extreme_word(rng: random.Random, data: bytearray) -> str:
    if len(data) < 4:
        data[0] ^= 0xFF
        return "short file: inverted byte 0"
    pos = min(_pos(rng, len(data), align=4), (len(data) - 4) & ~3)
    size = len(data)
    choices = [
        ("0", 0),
        ("0xFFFFFFFF", 0xFFFFFFFF),
        ("0x7FFFFFFF", 0x7FFFFFFF),
        ("0x80000000", 0x80000000),
        ("1", 1),
        ("4", 4),
    ]
    neg = rng.randint(1, 16)
    delta = rng.randint(-8, 8)
    choices += [
        (f"-{neg}", (-neg) & 0xFFFFFFFF),
        (f"size{delta:+d}", (size + delta) & 0xFFFFFFFF),
        ("size", size & 0xFFFFFFFF),
        (f"size*2{delta:+d}", (2 * size + delta) & 0xFFFFFFFF),
    ]
    label, value = rng.choice(choices)
    data[pos : pos + 4] = struct.pack("<I", value)
    return f"word at {pos} := {label}"


def _truncate(rng: random.Random, data: bytearray) -> str:
    # Never truncate to the full length (that would not be a corruption).
    cut = _pos(rng, len(data))
    del data[cut:]
    return f"truncated to {cut} bytes"


def _zero_range(rng: random.Random, data: bytearray) -> str:
    pos = _pos(rng, len(data))
    length = min(rng.choice([rng.randint(1, 16), rng.randint(16, 512)]), len(data) - pos)
    data[pos : pos + length] = bytes(length)
    return f"zeroed {length} bytes at {pos}"


def _duplicate_chunk(rng: random.Random, data: bytearray) -> str:
    """Overwrite a region with a copy of another region (same file size)."""
    length = rng.randint(1, max(1, min(256, len(data) // 2)))
    src = rng.randrange(len(data) - length + 1)
    dst = _pos(rng, len(data) - length + 1)
    data[dst : dst + length] = data[src : src + length]
    return f"copied {length} bytes from {src} over {dst}"


def _insert_chunk(rng: random.Random, data: bytearray) -> str:
    """Insert a copy of a chunk, shifting everything after it (offsets go stale)."""
    length = rng.randint(1, max(1, min(256, len(data))))
    src = rng.randrange(len(data) - length + 1)
    dst = _pos(rng, len(data))
    data[dst:dst] = data[src : src + length]
    return f"inserted copy of {length} bytes from {src} at {dst}"


def _delete_chunk(rng: random.Random, data: bytearray) -> str:
    """Remove a chunk, shifting the rest left."""
    pos = _pos(rng, len(data))
    length = min(rng.randint(1, 256), len(data) - pos)
    del data[pos : pos + length]
    return f"deleted {length} bytes at {pos}"


def _append_garbage(rng: random.Random, data: bytearray) -> str:
    length = rng.randint(1, 4096)
    data += rng.randbytes(length)
    return f"appended {length} random bytes"


MUTATION_KINDS: dict[str, Callable[[random.Random, bytearray], str]] = {
    "bitflip": _bit_flip,
    "multi_bitflip": _multi_bit_flip,
    "random_run": _random_run,
    "extreme_word": _extreme_word,
    "truncate": _truncate,
    "zero_range": _zero_range,
    "duplicate_chunk": _duplicate_chunk,
    "insert_chunk": _insert_chunk,
    "delete_chunk": _delete_chunk,
    "append_garbage": _append_garbage,
}


def whole_file_cases(data: bytes, seed: int) -> list[tuple[str, bytes]]:
    """Fixed cases that replace or cut the whole file (any that equal ``data`` dropped)."""
    rng = random.Random(f"whole-file:{seed}")
    cases: list[tuple[str, bytes]] = [("whole: empty file", b"")]
    for size in (1, 4, 8, 16, 64, 4096, len(data)):
        cases.append((f"whole: {size} random bytes", rng.randbytes(size)))
    cases.append(("whole: zip local header", b"PK\x03\x04" + bytes(26) + rng.randbytes(64)))
    cases.append(("whole: zip local header + model", b"PK\x03\x04" + bytes(26) + data))
    if len(data) >= 8:
        cases.append(("whole: wrong file identifier", data[:4] + b"XYZ0" + data[8:]))
        cases.append(("whole: zeroed file identifier", data[:4] + bytes(4) + data[8:]))
        cases.append(("whole: size-prefixed (shifted by 4)", struct.pack("<I", len(data)) + data))
    for cut in (1, 3, 4, 7, 8, 12, 16, 32):
        if cut < len(data):
            cases.append((f"whole: truncated inside header to {cut}", data[:cut]))
    if data:
        cases.append(("whole: truncated by 1", data[:-1]))
        cases.append(("whole: first half only", data[: len(data) // 2]))
        cases.append(("whole: all zeros, same size", bytes(len(data))))
        cases.append(("whole: all 0xFF, same size", b"\xff" * len(data)))
    return [(d, c) for d, c in cases if c != data]


def corruptions(data: bytes, seed: int, count: int) -> Iterator[tuple[str, bytes]]:
    """Yield ``count`` deterministic ``(description, corrupted bytes)`` cases of ``data``.

    Whole-file cases come first, then mutations cycling through ``MUTATION_KINDS``
    (shuffled per seed, so every kind appears once ``count`` exceeds the whole-file
    cases by ``len(MUTATION_KINDS)``). Every case differs from ``data``.
    """
    if count < 0:
        raise ValueError("count must be >= 0")
    emitted = 0
    for desc, blob in whole_file_cases(data, seed):
        if emitted >= count:
            return
        yield desc, blob
        emitted += 1

    if not data:
        # Nothing to mutate: random files stand in for mutations of an empty input.
        rng = random.Random(f"empty:{seed}")
        while emitted < count:
            size = rng.randint(1, 4096)
            yield f"random {size} bytes (empty input) #{emitted}", rng.randbytes(size)
            emitted += 1
        return

    rng = random.Random(f"mutations:{seed}")
    kinds = list(MUTATION_KINDS)
    rng.shuffle(kinds)
    i = 0
    while emitted < count:
        kind = kinds[i % len(kinds)]
        i += 1
        buf = bytearray(data)
        desc = MUTATION_KINDS[kind](rng, buf)
        if bytes(buf) == data:
            # e.g. a chunk copied onto identical bytes; a no-op is not a corruption.
            continue
        yield f"#{emitted} {kind}: {desc}", bytes(buf)
        emitted += 1
