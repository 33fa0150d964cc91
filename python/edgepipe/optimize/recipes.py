"""The quantization recipes of ``edgepipe optimize``, run by ai-edge-quantizer.

=================  =====================================================  ============
recipe             what ai-edge-quantizer does                            calibration
=================  =====================================================  ============
``fp16``           weight-only 16-bit ``FLOAT_CASTING`` (float16 weights)  no
``weight_int8``    weight-only int8, weights dequantized before each op    no
``dynamic_int8``   ``dynamic_wi8_afp32``: int8 weights, activations         no
                   quantized on the fly by the kernels
``int8``           ``static_wi8_ai8``: int8 weights and activations         yes
=================  =====================================================  ============
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from edgepipe.errors import EdgepipeError

RECIPES: tuple[str, ...] = ("fp16", "weight_int8", "dynamic_int8", "int8")
NEEDS_CALIBRATION = frozenset({"int8"})

EXTRA_HINT = "pip install 'edgepipe[optimize]'"


class MissingExtraError(EdgepipeError, ImportError):
    """An optional dependency of ``edgepipe.optimize`` is not installed.

    The message names the extra to install (``edgepipe[optimize]`` or
    ``edgepipe[plot]``).
    """


class QuantizationError(EdgepipeError):
    """ai-edge-quantizer failed on this model and recipe (its message is kept)."""


def require_quantizer() -> Any:
    """Import and return ``ai_edge_quantizer.quantizer``, or raise :class:`MissingExtraError`."""
    try:
        from ai_edge_quantizer import quantizer
    except ImportError as exc:
        raise MissingExtraError(
            f"edgepipe optimize needs ai-edge-quantizer, which is not installed ({exc}); "
            f"install the optional extra: {EXTRA_HINT}"
        ) from exc
    return quantizer


def _recipe(name: str) -> Any:
    from ai_edge_quantizer import qtyping, recipe, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    if name == "dynamic_int8":
        return recipe.dynamic_wi8_afp32()
    if name == "weight_int8":
        return recipe.weight_only_wi8_afp32()
    if name == "int8":
        return recipe.static_wi8_ai8()
    if name == "fp16":
        rm = recipe_manager.RecipeManager()
        rm.add_weight_only_config(
            regex=".*",
            operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
            num_bits=16,
            algorithm_key=AlgorithmName.FLOAT_CASTING,
        )
        return rm.get_quantization_recipe()
    raise ValueError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")


@contextlib.contextmanager
def _quiet() -> Iterator[list[warnings.WarningMessage]]:
    """Silence the quantizer's progress report and bars (Python-level stdout/stderr)
    and absl INFO lines; collect its warnings instead of showing (or, under
    ``-W error``, raising) them. Its warning about keeping every tensor while
    calibrating is dropped: that is what calibration asks for."""
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.WARNING)
    try:
        with (
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.simplefilter("always")
            warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
            yield caught
    finally:
        absl_logger.setLevel(level)


def quantize(
    model: bytes | bytearray | memoryview,
    recipe: str,
    *,
    calibration: Iterable[Mapping[str, np.ndarray]] | None = None,
    signature_key: str = "serving_default",
    threads: int = 1,
    warnings_out: list[str] | None = None,
) -> bytearray:
    """Run ai-edge-quantizer's ``recipe`` on a (normalised) model's bytes.

    Returns the quantizer's output exactly as it wrote it (see
    :func:`edgepipe.optimize.normalize.fix_metadata_buffer` for the one fix
    edgepipe applies to it). Warnings the quantizer emits (e.g. numpy's
    "invalid value encountered in cast" when a bias overflows int32) are
    appended to ``warnings_out`` as ``"Category: message"`` instead of shown.

    Raises:
        MissingExtraError: ai-edge-quantizer is not installed.
        QuantizationError: the quantizer failed, or ``int8`` got no calibration data.
    """
    quantizer = require_quantizer()
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose from {', '.join(RECIPES)}")
    samples = None
    if recipe in NEEDS_CALIBRATION:
        samples = [dict(s) for s in calibration or []]
        if not samples:
            raise QuantizationError(
                f"recipe {recipe!r} needs calibration data (--calibration DATA)"
            )
    try:
        with _quiet() as caught:
            try:
                q = quantizer.Quantizer(bytes(model), _recipe(recipe))
                result = None
                if q.need_calibration:
                    result = q.calibrate({signature_key: samples}, num_threads=threads)
                out = q.quantize(result, enable_progress_bar=False, enable_progress_report=False)
            finally:
                if warnings_out is not None:
                    seen = dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught)
                    warnings_out.extend(seen)
    except (ValueError, RuntimeError, KeyError, IndexError, TypeError) as exc:
        raise QuantizationError(f"ai-edge-quantizer failed on recipe {recipe!r}: {exc}") from exc
    return bytearray(out.quantized_model)
