"""Structure-aware, in-place mutation of TFLite flatbuffers (the fuzz campaign's mutator).

``locate_fields(data)`` walks a model's flatbuffer with its own bounds-checked reader
and lists every present field of the kinds the runtime interprets: shapes, types,
quantization, operator codes, operator inputs/outputs, options, buffers, subgraph
indices, sparsity, signatures and metadata. ``mutate(data, fields, seed)`` then changes
one to three of them **in place** (same file size, same layout): re-encoding through the
flatbuffers object API would drop the buffers stored after the flatbuffer and change
every offset, so only the chosen bytes differ from the original. Vectors are shrunk by
rewriting their length word. The same ``(data, seed)`` always gives the same mutant.

Field kinds (``Field.kind``): ``shape``, ``shape_len``, ``shape_signature``, ``type``,
``quant_scale``, ``quant_zero_point``, ``quant_len``, ``quant_dim``, ``quant_details``,
``opcode``, ``opcode_index``, ``op_io``, ``op_io_len``, ``options_type``, ``option``,
``buffer_index``, ``buffer_len``, ``buffer_offset``, ``subgraph_io``, ``subgraph_index``,
``sparsity``, ``signature``, ``metadata``, ``version``.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import random
import re
import struct

__all__ = ["FIELD_KINDS", "Field", "locate_fields", "mutate", "option_layouts"]

FIELD_KINDS = (
    "shape",
    "shape_len",
    "shape_signature",
    "type",
    "quant_scale",
    "quant_zero_point",
    "quant_len",
    "quant_dim",
    "quant_details",
    "opcode",
    "opcode_index",
    "op_io",
    "op_io_len",
    "options_type",
    "option",
    "buffer_index",
    "buffer_len",
    "buffer_offset",
    "subgraph_io",
    "subgraph_index",
    "sparsity",
    "signature",
    "metadata",
    "version",
)

_FORMATS = {
    "u8": "<B",
    "i8": "<b",
    "u16": "<H",
    "i32": "<i",
    "u32": "<I",
    "i64": "<q",
    "u64": "<Q",
    "f32": "<f",
}
_INC = pathlib.Path(__file__).resolve().parents[2] / "cpp" / "model" / "op_names.inc"


@dataclasses.dataclass(frozen=True)
class Field:
    """One mutable scalar: where it is, how wide, what it means."""

    kind: str
    pos: int
    fmt: str  # key of _FORMATS
    where: str
    limit: int = 0  # size of what an index field indexes (0 if not an index)


_LAYOUTS: dict[int, str] | None = None


def option_layouts() -> dict[int, str]:
    """BuiltinOptions union type -> slot layout, from the generated op_names.inc."""
    global _LAYOUTS
    if _LAYOUTS is None:
        text = _INC.read_text()
        _LAYOUTS = {
            int(t): lay
            for t, lay in re.findall(
                r'^EDGEPIPE_BUILTIN_OPTIONS\((\d+), \w+, "([^"]*)"\)', text, re.M
            )
        }
    return _LAYOUTS


def builtin_codes() -> list[int]:
    text = _INC.read_text()
    return [int(c) for c in re.findall(r"^EDGEPIPE_BUILTIN_OP\((\d+), \w+\)", text, re.M)]


class _Reader:
    """Just enough flatbuffer reading to find fields; raises ValueError on nonsense."""

    def __init__(self, data: bytes) -> None:
        self.d = data

    def read(self, fmt: str, pos: int) -> int | float:
        f = _FORMATS[fmt]
        if pos < 0 or pos + struct.calcsize(f) > len(self.d):
            raise ValueError("out of bounds")
        return struct.unpack_from(f, self.d, pos)[0]

    def table(self, pos: int) -> tuple[int, int, int]:
        vt = pos - int(self.read("i32", pos))
        vsize = int(self.read("u16", vt))
        return pos, vt, vsize

    def field(self, t: tuple[int, int, int], slot: int) -> int:
        pos, vt, vsize = t
        vo = 4 + 2 * slot
        if vo + 2 > vsize:
            return 0
        off = int(self.read("u16", vt + vo))
        return pos + off if off else 0

    def deref(self, p: int) -> int:
        return p + int(self.read("u32", p))

    def sub(self, t: tuple[int, int, int], slot: int) -> tuple[int, int, int] | None:
        p = self.field(t, slot)
        return self.table(self.deref(p)) if p else None

    def vector(self, t: tuple[int, int, int], slot: int) -> tuple[int, int] | None:
        """(position of the length word, length) of a vector field."""
        p = self.field(t, slot)
        if not p:
            return None
        v = self.deref(p)
        return v, int(self.read("u32", v))

    def tables(self, t: tuple[int, int, int], slot: int) -> list[tuple[int, int, int]]:
        v = self.vector(t, slot)
        if not v:
            return []
        return [self.table(self.deref(v[0] + 4 + 4 * i)) for i in range(v[1])]


def locate_fields(data: bytes) -> list[Field]:
    """Every mutable field of a (valid) model, in file-walk order."""
    r = _Reader(data)
    out: list[Field] = []

    def scalar(
        kind: str, t: tuple[int, int, int], slot: int, fmt: str, where: str, limit: int = 0
    ) -> None:
        p = r.field(t, slot)
        if p:
            out.append(Field(kind, p, fmt, where, limit))

    def ints(
        kind: str,
        t: tuple[int, int, int],
        slot: int,
        fmt: str,
        where: str,
        limit: int = 0,
        len_kind: str | None = None,
    ) -> None:
        v = r.vector(t, slot)
        if not v:
            return
        size = struct.calcsize(_FORMATS[fmt])
        for i in range(min(v[1], 64)):
            out.append(Field(kind, v[0] + 4 + size * i, fmt, f"{where}[{i}]", limit))
        if len_kind and v[1] > 0:
            out.append(Field(len_kind, v[0], "u32", f"len({where})", v[1]))

    model = r.table(r.deref(0))
    scalar("version", model, 0, "u32", "version")
    buffers = r.tables(model, 4)
    subgraphs = r.tables(model, 2)
    codes = r.tables(model, 1)
    for i, oc in enumerate(codes):
        scalar("opcode", oc, 0, "i8", f"operator_codes[{i}].deprecated_builtin_code")
        scalar("opcode", oc, 3, "i32", f"operator_codes[{i}].builtin_code")
    for i, b in enumerate(buffers):
        v = r.vector(b, 0)
        if v and v[1] > 0:
            out.append(Field("buffer_len", v[0], "u32", f"buffers[{i}].data", v[1]))
        scalar("buffer_offset", b, 1, "u64", f"buffers[{i}].offset")
        scalar("buffer_offset", b, 2, "u64", f"buffers[{i}].size")
    layouts = option_layouts()
    for s, sg in enumerate(subgraphs):
        tensors = r.tables(sg, 0)
        n = len(tensors)
        ints("subgraph_io", sg, 1, "i32", f"subgraphs[{s}].inputs", n)
        ints("subgraph_io", sg, 2, "i32", f"subgraphs[{s}].outputs", n)
        for k, t in enumerate(tensors):
            w = f"subgraphs[{s}].tensors[{k}]"
            ints("shape", t, 0, "i32", w + ".shape", 0, "shape_len")
            ints("shape_signature", t, 7, "i32", w + ".shape_signature")
            scalar("type", t, 1, "i8", w + ".type")
            scalar("buffer_index", t, 2, "u32", w + ".buffer", len(buffers))
            q = r.sub(t, 4)
            if q:
                ints("quant_scale", q, 2, "f32", w + ".quantization.scale", 0, "quant_len")
                ints(
                    "quant_zero_point", q, 3, "i64", w + ".quantization.zero_point", 0, "quant_len"
                )
                ints("quant_scale", q, 0, "f32", w + ".quantization.min")
                scalar("quant_dim", q, 6, "i32", w + ".quantization.quantized_dimension")
                scalar("quant_details", q, 4, "u8", w + ".quantization.details_type")
            sp = r.sub(t, 6)
            if sp:
                ints("sparsity", sp, 0, "i32", w + ".sparsity.traversal_order", 0, "sparsity")
                ints("sparsity", sp, 1, "i32", w + ".sparsity.block_map", 0, "sparsity")
                for d, dm in enumerate(r.tables(sp, 2)):
                    dw = f"{w}.sparsity.dim_metadata[{d}]"
                    scalar("sparsity", dm, 0, "i8", dw + ".format")
                    scalar("sparsity", dm, 1, "i32", dw + ".dense_size")
                    for slot, name in ((3, "array_segments"), (5, "array_indices")):
                        iv = r.sub(dm, slot)
                        if iv:
                            ints("sparsity", iv, 0, "i32", f"{dw}.{name}", 0, "sparsity")
        for k, op in enumerate(r.tables(sg, 3)):
            w = f"subgraphs[{s}].operators[{k}]"
            scalar("opcode_index", op, 0, "u32", w + ".opcode_index", len(codes))
            ints("op_io", op, 1, "i32", w + ".inputs", n, "op_io_len")
            ints("op_io", op, 2, "i32", w + ".outputs", n, "op_io_len")
            scalar("options_type", op, 3, "u8", w + ".builtin_options_type")
            otype = r.field(op, 3)
            opts = r.sub(op, 4)
            if otype and opts:
                layout = layouts.get(int(r.read("u8", otype)), "")
                sizes = {"1": "i8", "2": "u16", "4": "i32", "8": "i64", "g": "i32"}
                for slot, c in enumerate(layout):
                    if c in sizes:
                        kind = "subgraph_index" if c == "g" else "option"
                        scalar(
                            kind,
                            opts,
                            slot,
                            sizes[c],
                            f"{w}.builtin_options.slot{slot}",
                            len(subgraphs) if c == "g" else 0,
                        )
    ints("metadata", model, 5, "i32", "metadata_buffer", len(buffers))
    for i, m in enumerate(r.tables(model, 6)):
        scalar("metadata", m, 1, "u32", f"metadata[{i}].buffer", len(buffers))
    for i, sig in enumerate(r.tables(model, 7)):
        scalar("signature", sig, 4, "u32", f"signature_defs[{i}].subgraph_index", len(subgraphs))
        for side, slot in (("inputs", 0), ("outputs", 1)):
            for j, tm in enumerate(r.tables(sig, slot)):
                scalar("signature", tm, 1, "u32", f"signature_defs[{i}].{side}[{j}].tensor_index")
    return out


_INT_LIMITS = {
    "u8": (0, 255),
    "i8": (-128, 127),
    "u16": (0, 65535),
    "i32": (-(2**31), 2**31 - 1),
    "u32": (0, 2**32 - 1),
    "i64": (-(2**63), 2**63 - 1),
    "u64": (0, 2**64 - 1),
}
_FLOATS = (0.0, -0.0, 1e-30, -1.0, 1e30, math.inf, -math.inf, math.nan, 1e-45, 3.4e38, 0.5)


def _new_value(rng: random.Random, f: Field, old: int | float, codes: list[int]) -> int | float:
    if f.fmt == "f32":
        return rng.choice(_FLOATS) if rng.random() < 0.8 else float(old) * rng.choice((2, -1, 1e-9))
    lo, hi = _INT_LIMITS[f.fmt]
    old = int(old)
    if f.kind == "opcode":
        # Another builtin, as an operator code swapped by a hostile writer.
        return rng.choice([c for c in codes if lo <= c <= hi])
    if (
        f.kind in ("shape_len", "op_io_len", "quant_len", "buffer_len", "sparsity")
        and f.fmt == "u32"
    ):
        return min(rng.choice((0, max(old - 1, 0), old + 1, old * 2, hi)), hi)
    choices = [0, 1, -1, 2, old + 1, old - 1, old * 2, lo, hi, hi // 2 + 1, 7, 255, 65536]
    if f.limit:
        choices += [f.limit, f.limit - 1, f.limit + 1, rng.randrange(f.limit)] * 2
    if f.kind == "type":
        choices += list(range(25))
    if f.kind == "options_type":
        choices += [rng.randrange(0, 130) for _ in range(4)]
    v = rng.choice(choices)
    return min(max(v, lo), hi)


def mutate(data: bytes, fields: list[Field], seed: int) -> tuple[bytes, str]:
    """One mutant of ``data``: 1-3 fields changed in place. Returns (bytes, description)."""
    rng = random.Random(seed)
    out = bytearray(data)
    codes = builtin_codes()
    # Pick a kind first so that rare kinds (signatures, sparsity) are hit as often
    # as the thousands of shape entries.
    by_kind: dict[str, list[Field]] = {}
    for f in fields:
        by_kind.setdefault(f.kind, []).append(f)
    kinds = sorted(by_kind)
    notes = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        kind = rng.choice(kinds)
        f = rng.choice(by_kind[kind])
        fmt = _FORMATS[f.fmt]
        old = struct.unpack_from(fmt, out, f.pos)[0]
        new = _new_value(rng, f, old, codes)
        if f.kind == "opcode" and f.fmt == "i32":
            # Keep deprecated_builtin_code consistent, as a writer would.
            dep = next(
                (
                    g
                    for g in by_kind["opcode"]
                    if g.fmt == "i8" and g.where.split(".")[0] == f.where.split(".")[0]
                ),
                None,
            )
            if dep is not None:
                struct.pack_into("<b", out, dep.pos, min(int(new), 127))
        struct.pack_into(fmt, out, f.pos, new)
        notes.append(f"{f.where}: {old!r} -> {new!r}")
    return bytes(out), "; ".join(notes)
