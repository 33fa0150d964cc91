"""Deterministic rollout and A/B bucketing, and per-variant statistics.

A unit (a device or user id) lands in bucket ``sha256(experiment, id) mod 10000``.
The bucket depends only on those two strings, so the same id stays in the same
bucket across restarts and on every device, and different experiments bucket
independently. Variants own consecutive bucket ranges in the order given.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .download import Opener, default_opener
from .errors import StoreError
from .manifest import BASIS_POINTS, Manifest, VariantShare, check_name

VariantSpec = VariantShare | tuple[str, float]


def bucket(experiment: str, unit_id: str) -> int:
    """Return the bucket in ``[0, 10000)`` of ``unit_id`` in ``experiment``.

    A NUL separates the two strings so that ("ab", "c") and ("a", "bc") differ.
    The first 8 bytes of the digest are reduced modulo 10 000; the bias this
    introduces is below 1e-15 and irrelevant for rollouts.
    """
    digest = hashlib.sha256(
        experiment.encode("utf-8") + b"\x00" + unit_id.encode("utf-8")
    ).digest()
    return int.from_bytes(digest[:8], "big") % BASIS_POINTS


@dataclass(frozen=True)
class _Range:
    name: str
    start: int
    stop: int


class Experiment:
    """An experiment splitting units into variants by fixed percentages.

    Args:
        name: the experiment name (the bucketing salt).
        variants: ``(name, percent)`` pairs, a ``{name: percent}`` mapping, or
            :class:`VariantShare` objects (shares in basis points). Percentages
            may have at most two decimals and must add up to at most 100.
        remainder: the variant of units not covered by the shares; ``None``
            means "not in the experiment".
    """

    def __init__(
        self,
        name: str,
        variants: Sequence[VariantSpec] | Mapping[str, float],
        *,
        remainder: str | None = "control",
    ) -> None:
        self.name = name
        items = list(variants.items()) if isinstance(variants, Mapping) else list(variants)
        ranges: list[_Range] = []
        start = 0
        for v in items:
            if isinstance(v, VariantShare):
                vname, bp = v.name, v.percent_bp
            else:
                vname, pct = v
                bp = round(float(pct) * 100)
                if abs(bp - float(pct) * 100) > 1e-6 or bp < 0:
                    raise ValueError(f"percentage {pct!r} of {vname!r} needs at most 2 decimals")
            check_name(vname, "variant name")
            ranges.append(_Range(vname, start, start + bp))
            start += bp
        if start > BASIS_POINTS:
            raise ValueError(f"variant percentages add up to {start / 100}%, above 100%")
        names = [r.name for r in ranges]
        if len(set(names)) != len(names) or remainder in names:
            raise ValueError(f"variant names must be distinct: {names} / remainder {remainder!r}")
        self.remainder = remainder
        self._ranges = tuple(ranges)

    @property
    def variants(self) -> dict[str, float]:
        """Variant name -> percentage, including the remainder if it has a name."""
        out = {r.name: (r.stop - r.start) / 100 for r in self._ranges}
        covered = self._ranges[-1].stop if self._ranges else 0
        if self.remainder is not None and covered < BASIS_POINTS:
            out[self.remainder] = (BASIS_POINTS - covered) / 100
        return out

    def assign(self, unit_id: str) -> str | None:
        """Return the variant of ``unit_id`` (or ``remainder`` if it falls outside)."""
        b = bucket(self.name, unit_id)
        for r in self._ranges:
            if r.start <= b < r.stop:
                return r.name
        return self.remainder


def experiment_for(manifest: Manifest) -> Experiment:
    """The rollout of a manifest as an experiment; outside the rollout is ``None``."""
    return Experiment(manifest.rollout.experiment, manifest.rollout.variants, remainder=None)


class VariantStats:
    """Thread-safe per-variant counters: requests, errors and latency.

    Feed it from the serving path (``record(variant, ok=..., latency_s=...)``)
    and compare variants with :meth:`snapshot`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, float]] = {}

    def record(self, variant: str, *, ok: bool = True, latency_s: float | None = None) -> None:
        """Count one request of ``variant``."""
        with self._lock:
            d = self._data.setdefault(
                variant, {"requests": 0, "errors": 0, "latency_sum_s": 0.0, "timed": 0}
            )
            d["requests"] += 1
            if not ok:
                d["errors"] += 1
            if latency_s is not None:
                d["latency_sum_s"] += latency_s
                d["timed"] += 1

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Variant -> ``{"requests", "errors", "error_rate", "mean_latency_s"}``."""
        with self._lock:
            out = {}
            for name, d in self._data.items():
                out[name] = {
                    "requests": int(d["requests"]),
                    "errors": int(d["errors"]),
                    "error_rate": d["errors"] / d["requests"] if d["requests"] else 0.0,
                    "mean_latency_s": d["latency_sum_s"] / d["timed"] if d["timed"] else None,
                }
            return out

    def reset(self) -> None:
        """Forget all counts."""
        with self._lock:
            self._data.clear()


_ID_RE = re.compile(r"[0-9a-f]{32}")


def load_or_create_device_id(path: str | os.PathLike, *, opener: Opener = default_opener) -> str:
    """Return the random device id kept in ``path``, creating it atomically once.

    The id is random rather than derived from hardware so it carries no
    personal information; it only needs to be stable for bucketing.
    """
    path = Path(path)
    invalid = False
    try:
        text = path.read_text("ascii").strip()
        if _ID_RE.fullmatch(text):
            return text
        invalid = True
    except FileNotFoundError:
        pass
    except UnicodeDecodeError:
        invalid = True
    except OSError as e:
        raise StoreError(f"cannot read device id {path}: {e.strerror or e}") from e
    new = uuid.uuid4().hex
    tmp = path.with_name(f"{path.name}.{new[:8]}.tmp")
    try:
        f = opener(tmp, "wb")
        try:
            f.write(new.encode("ascii"))
            f.flush()
            os.fsync(f.fileno())
        finally:
            f.close()
        try:
            if invalid:
                os.replace(tmp, path)
            else:
                # link() fails if another process won the race; then use its id.
                os.link(tmp, path)
        except FileExistsError:
            return load_or_create_device_id(path, opener=opener)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create device id {path}: {e.strerror or e}") from e
    return new


__all__ = [
    "Experiment",
    "VariantStats",
    "bucket",
    "experiment_for",
    "load_or_create_device_id",
]
