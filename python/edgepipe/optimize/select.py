"""``--select "max_error<0.01"`` and ``--pick smallest|fastest``: choose a variant.

An expression is one or more conditions joined by ``and`` or ``,``; each is
``METRIC OP NUMBER`` with OP one of ``< <= > >= ==``. Metrics (see
:data:`METRICS`) read the report entry of a variant. A condition on a metric
a variant does not have (``top1`` without classifier-like outputs,
``accuracy`` without labels) is an error, not a silent pass.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgepipe.errors import InputError

PICKS = ("smallest", "fastest")

#: metric -> (description, getter on a variant's report entry)
METRICS: dict[str, tuple[str, Callable[[Mapping[str, Any]], float | None]]] = {
    "max_error": ("largest absolute output difference", lambda r: r["max_abs"]),
    "max_abs": ("same as max_error", lambda r: r["max_abs"]),
    "mean_rel": ("mean relative output error (worst output)", lambda r: r["mean_rel"]),
    "cosine": ("cosine similarity (worst output)", lambda r: r["min_cosine"]),
    "top1": ("top-1 agreement (worst classifier-like output)", lambda r: r["min_top1"]),
    "accuracy": ("accuracy on labelled eval data", lambda r: r["accuracy"]),
    "size": ("file size in bytes", lambda r: r["size"]),
    "size_ratio": ("file size over the original's", lambda r: r["size_ratio"]),
    "p50_ms": ("median CPU latency", lambda r: r["accelerators"]["cpu"]["p50_ms"]),
    "p99_ms": ("99th percentile CPU latency", lambda r: r["accelerators"]["cpu"]["p99_ms"]),
    "speedup": ("original's CPU p50 over the variant's", lambda r: r["speedup"]),
    "load_ms": ("load time", lambda r: r["load_ms"]),
}

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "<": operator.lt,
    ">": operator.gt,
}
_CONDITION = re.compile(r"^\s*([a-z_0-9]+)\s*(<=|>=|==|<|>)\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Condition:
    """``metric op value``."""

    metric: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"

    def holds(self, entry: Mapping[str, Any]) -> tuple[bool, float]:
        """Whether ``entry`` meets it, and the entry's value of the metric."""
        got = METRICS[self.metric][1](entry)
        if got is None:
            raise InputError(
                f"--select uses {self.metric!r}, which variant {entry.get('name')!r} does not "
                f"have ({METRICS[self.metric][0]})"
            )
        return _OPS[self.op](float(got), self.value), float(got)


def parse_select(text: str) -> list[Condition]:
    """Parse a ``--select`` expression (raises :class:`InputError` when malformed)."""
    parts = [p for p in re.split(r",|\band\b", text) if p.strip()]
    if not parts:
        raise InputError("empty --select expression")
    out = []
    for part in parts:
        m = _CONDITION.match(part)
        if not m:
            raise InputError(
                f"cannot read --select condition {part.strip()!r}; write METRIC<VALUE, e.g. "
                "max_error<0.01"
            )
        metric, op, value = m.groups()
        if metric not in METRICS:
            raise InputError(f"unknown --select metric {metric!r}; use one of {', '.join(METRICS)}")
        try:
            out.append(Condition(metric, op, float(value)))
        except ValueError as exc:
            raise InputError(f"--select value {value!r} is not a number") from exc
    return out


def choose(
    entries: Sequence[Mapping[str, Any]], select: str | None, pick: str | None
) -> tuple[Mapping[str, Any] | None, str]:
    """Pick one of ``entries`` (variant report entries): ``(chosen or None, why)``."""
    pick = pick or "smallest"
    if pick not in PICKS:
        raise InputError(f"unknown --pick {pick!r}; choose {' or '.join(PICKS)}")
    conditions = parse_select(select) if select else []
    passing = []
    rejected = []
    for e in entries:
        fails = []
        for cond in conditions:
            ok, got = cond.holds(e)
            if not ok:
                fails.append(f"{cond.metric}={got:.4g}")
        if fails:
            rejected.append(f"{e['name']} ({', '.join(fails)})")
        else:
            passing.append(e)
    if not passing:
        return None, (
            f"no variant meets {select}: " + "; ".join(rejected)
        ) if rejected else "no variant to choose from"

    def key(e: Mapping[str, Any]) -> float:
        return float(e["size"] if pick == "smallest" else e["accelerators"]["cpu"]["p50_ms"])

    best = min(passing, key=key)
    what = (
        f"{best['size']} bytes"
        if pick == "smallest"
        else f"CPU p50 {best['accelerators']['cpu']['p50_ms']:.3f} ms"
    )
    among = ", ".join(e["name"] for e in passing)
    why = f"{best['name']}: the {pick} ({what}) of {len(passing)} variant(s) "
    why += f"meeting {select} ({among})" if select else f"({among})"
    if rejected:
        why += f"; rejected: {'; '.join(rejected)}"
    return best, why
