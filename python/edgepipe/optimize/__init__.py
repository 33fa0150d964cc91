"""Prepare a model for the device: quantize, validate and compare variants.

``edgepipe optimize MODEL --recipe all --calibration DATA --out DIR`` (and
:func:`optimize` in Python) normalises the float model so ai-edge-quantizer
can work on it, writes one variant per recipe (``fp16``, ``weight_int8``,
``dynamic_int8``, ``int8``), measures size, load time, latency, memory and
output error of each against the original in one run, and optionally picks
one (``select="max_error<0.01"``, ``pick="smallest"``). See docs/optimize.md.

Needs the optional extra ``pip install 'edgepipe[optimize]'`` (ai-edge-quantizer);
without it :func:`optimize` raises :class:`MissingExtraError`. Normalisation and
the quantized-I/O helpers work without it.
"""

from __future__ import annotations

from .core import OptimizeReport, optimize
from .data import Dataset, load_data, load_image, random_data
from .normalize import NormalizeStep, fix_metadata_buffer, normalize
from .quantized_io import (
    FloatIOSession,
    dequantize_array,
    dequantize_outputs,
    has_quantized_io,
    quantize_array,
    quantize_inputs,
)
from .recipes import RECIPES, MissingExtraError, QuantizationError, quantize
from .select import METRICS, PICKS, choose, parse_select

__all__ = [
    "METRICS",
    "PICKS",
    "RECIPES",
    "Dataset",
    "FloatIOSession",
    "MissingExtraError",
    "NormalizeStep",
    "OptimizeReport",
    "QuantizationError",
    "choose",
    "dequantize_array",
    "dequantize_outputs",
    "fix_metadata_buffer",
    "has_quantized_io",
    "load_data",
    "load_image",
    "normalize",
    "optimize",
    "parse_select",
    "quantize",
    "quantize_array",
    "quantize_inputs",
    "random_data",
]
