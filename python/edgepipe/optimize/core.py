"""``optimize()``: normalise, quantize with every recipe, measure, choose."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgepipe import Model
from edgepipe.errors import InputError

from . import measure as _measure
from .data import Dataset, DataSource, load_data, random_data
from .normalize import fix_metadata_buffer, normalize
from .recipes import NEEDS_CALIBRATION, RECIPES, QuantizationError, quantize
from .select import PICKS, choose, parse_select


@dataclass
class OptimizeReport:
    """What :func:`optimize` did and measured (``to_dict()`` is the JSON report).

    ``original`` and every entry of ``variants`` share one layout (see
    :func:`edgepipe.optimize.measure.measure`); ``skipped`` lists recipes that
    did not apply or failed, with why; ``selected`` is the ``--select`` /
    ``--pick`` choice or None.
    """

    model: str
    normalization: list[dict[str, Any]]
    original: dict[str, Any]
    variants: list[dict[str, Any]]
    skipped: list[dict[str, str]] = field(default_factory=list)
    selected: dict[str, Any] | None = None
    data: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-friendly report."""
        return {
            "model": self.model,
            "normalization": self.normalization,
            "original": self.original,
            "variants": self.variants,
            "skipped": self.skipped,
            "selected": self.selected,
            "data": self.data,
            "settings": self.settings,
        }

    def variant(self, name: str) -> dict[str, Any]:
        """The report entry of variant ``name`` (KeyError when there is none)."""
        for v in self.variants:
            if v["name"] == name:
                return v
        raise KeyError(name)

    def write_json(self, path: str | os.PathLike[str]) -> None:
        """Write the report as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, default=_json_default) + "\n")

    def table(self) -> str:
        """The plain-text table ``edgepipe optimize`` prints."""
        from .report import format_table

        return format_table(self)

    def plot(self, path: str | os.PathLike[str]) -> None:
        """Size vs latency vs error plot (needs matplotlib: ``edgepipe[plot]``)."""
        from .report import plot

        plot(self, path)


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(obj)


def _evaluator_name(evaluator: object) -> str:
    return str(getattr(evaluator, "name", None) or type(evaluator).__name__)


def _recipes(recipes: str | Sequence[str]) -> list[str]:
    names = [recipes] if isinstance(recipes, str) else list(recipes)
    out: list[str] = []
    for n in names:
        for part in n.split(","):
            part = part.strip()
            if part == "all":
                out.extend(RECIPES)
            elif part in RECIPES:
                out.append(part)
            elif part:
                raise InputError(
                    f"unknown recipe {part!r}; choose from {', '.join(RECIPES)} or all"
                )
    if not out:
        raise InputError("no recipe given")
    return list(dict.fromkeys(out))


def _write(path: Path, data: bytes | bytearray | memoryview) -> None:
    """Write-then-rename inside ``path``'s folder; never follows a link at ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def optimize(
    model: str | os.PathLike[str],
    recipes: str | Sequence[str] = "all",
    *,
    out_dir: str | os.PathLike[str],
    calibration: DataSource | None = None,
    eval_data: DataSource | None = None,
    accelerators: Sequence[str] = ("cpu", "gpu"),
    threads: int | None = None,
    runs: int = 20,
    warmup: int = 3,
    select: str | None = None,
    pick: str | None = None,
    resize: str = "stretch",
    scale: str = "0,1",
    limit: int | None = None,
    evaluator: _measure.Evaluator | None = None,
) -> OptimizeReport:
    """Quantize ``model`` with ``recipes``, measure every variant against it, choose one.

    Args:
        model: the float ``.tflite`` file.
        recipes: ``"all"`` or some of ``fp16``, ``weight_int8``, ``dynamic_int8``,
            ``int8`` (a list or a comma-separated string).
        out_dir: where variants are written, as ``<stem>.<recipe>.tflite``
            (plus ``<stem>.fp32.tflite``, the normalised float32 model, when
            normalisation folded float16 weights, and ``<stem>.selected.tflite``).
        calibration: data for the ``int8`` recipe (see :mod:`edgepipe.optimize.data`);
            without it ``int8`` is skipped, saying so.
        eval_data: inputs (and optional labels) the errors are measured on;
            default: the calibration data, else 4 random samples.
        accelerators: where latency is measured; those that fall back to the
            CPU are reported with why, not measured twice.
        threads: CPU threads of every session (None: the runtime's default).
        runs: interleaved latency runs per variant and accelerator.
        warmup: untimed runs per variant and accelerator before them.
        select: keep variants meeting this (see :mod:`edgepipe.optimize.select`);
            when ``select`` or ``pick`` is set the chosen variant is copied to
            ``<stem>.selected.tflite``.
        pick: ``smallest`` (default) or ``fastest`` of the variants kept.
        resize: image resize for folders: ``stretch`` or ``crop``.
        scale: image pixel range for folders: ``0,1``, ``-1,1`` or ``0,255``.
        limit: use at most this many samples of each folder.
        evaluator: computes the eval outputs elsewhere, e.g. on a Ray cluster
            (:class:`edgepipe.ray.ClusterEvaluator`, what ``--ray`` passes; see
            :class:`edgepipe.optimize.measure.Evaluator`); errors, latency and
            the choice are still computed here. None: the local CPU sessions.

    Raises:
        ModelError: the model cannot be loaded or parsed.
        InputError: bad recipes, data or ``select``.
        MissingExtraError: ai-edge-quantizer is not installed (``edgepipe[optimize]``).
    """
    from .recipes import require_quantizer

    require_quantizer()
    names = _recipes(recipes)
    if runs < 1 or warmup < 0:
        raise InputError(f"runs must be at least 1 and warmup at least 0, got {runs}, {warmup}")
    if select is not None:
        parse_select(select)  # a typo fails now, not after every variant was measured
    if pick is not None and pick not in PICKS:
        raise InputError(f"unknown pick {pick!r}; choose {' or '.join(PICKS)}")
    src = Path(model)
    original = Model.load(src)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot use {out} as the output folder: {exc}") from exc
    stem = src.stem

    def load(source: DataSource | None) -> Dataset | None:
        if source is None:
            return None
        return load_data(source, original.inputs, resize=resize, scale=scale, limit=limit)

    calib = load(calibration)
    evals = load(eval_data) or calib or random_data(original.inputs)

    normalized, steps = normalize(original.memoryview())
    candidates = [_measure.Candidate("original", src)]
    if any(s.name == "fold_fp16_weights" for s in steps):
        # The float32 model the quantizer starts from differs from the original in size
        # and speed: measure it too (it is also the base of size_ratio_fp32).
        path = out / f"{stem}.fp32.tflite"
        _write(path, normalized)
        candidates.append(_measure.Candidate("fp32", path, recipe="normalized"))

    skipped: list[dict[str, str]] = []
    fixes: dict[str, list[dict[str, Any]]] = {}
    quantizer_warnings: dict[str, list[str]] = {}
    for name in names:
        if name in NEEDS_CALIBRATION and calib is None:
            skipped.append({"recipe": name, "why": "needs calibration data (--calibration)"})
            continue
        warned: list[str] = []
        try:
            data = quantize(
                normalized,
                name,
                calibration=calib.samples if calib is not None else None,
                warnings_out=warned,
            )
        except QuantizationError as exc:
            skipped.append({"recipe": name, "why": str(exc)})
            continue
        quantizer_warnings[name] = warned
        fix = fix_metadata_buffer(data)
        fixes[name] = [fix.to_dict()] if fix else []
        path = out / f"{stem}.{name}.tflite"
        _write(path, data)
        candidates.append(_measure.Candidate(name, path, recipe=name))

    try:
        _measure.measure(
            candidates,
            evals,
            accelerators=accelerators,
            threads=threads,
            runs=runs,
            warmup=warmup,
            evaluator=evaluator,
        )
    finally:
        _measure.close(candidates)

    for c in [c for c in candidates if c.error is not None]:
        # Written by the quantizer but unusable here: say why and do not leave it in OUT.
        candidates.remove(c)
        c.path.unlink(missing_ok=True)
        why = f"the quantizer's output does not run in edgepipe: {c.error}"
        if quantizer_warnings.get(c.name):
            why += f" (the quantizer warned: {'; '.join(quantizer_warnings[c.name])})"
        skipped.append({"recipe": c.name, "why": why})

    def entry(c: _measure.Candidate) -> dict[str, Any]:
        return {
            "name": c.name,
            "recipe": c.recipe,
            "path": str(c.path),
            "output_fixes": fixes.get(c.name, []),
            "quantizer_warnings": quantizer_warnings.get(c.name, []),
            **c.result,
        }

    report = OptimizeReport(
        model=str(src),
        normalization=[s.to_dict() for s in steps],
        original=entry(candidates[0]),
        variants=[entry(c) for c in candidates[1:]],
        skipped=skipped,
        data={
            "eval": evals.source,
            "eval_samples": len(evals),
            "labels": evals.has_labels,
            "calibration": calib.source if calib else None,
            "calibration_samples": len(calib) if calib else 0,
        },
        settings={
            "threads": threads,
            "runs": runs,
            "warmup": warmup,
            "accelerators": list(accelerators),
            "resize": resize,
            "scale": scale,
            "evaluator": None if evaluator is None else _evaluator_name(evaluator),
        },
    )
    if select is not None or pick is not None:
        chosen, why = choose(report.variants, select, pick)
        if chosen is None:
            report.selected = {"name": None, "path": None, "why": why}
        else:
            dest = out / f"{stem}.selected.tflite"
            _write(dest, Path(chosen["path"]).read_bytes())
            report.selected = {"name": chosen["name"], "path": str(dest), "why": why}
    return report
