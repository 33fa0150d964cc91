"""edgepipe: fast, safe TensorFlow Lite / LiteRT inference pipelines.

Quick start::

    import edgepipe

    model = edgepipe.Model.load("model.tflite")  # mapped, verified
    session = model.compile("cpu")  # or "gpu", ["npu", "gpu"], "auto"
    outputs = session.run({"input": x})  # dict of numpy arrays

    with edgepipe.Pool(model, workers=2) as pool:  # GIL-free parallel runs
        outputs = pool.run({"input": x})

Layers, each importing only those below it (checked by tests/test_layers.py
and the import-linter contract in pyproject.toml)::

    cli                              the edgepipe command
    bench, telemetry, ota, ...       features built on the public API
    pool                             long-lived instances behind a queue
    session                          one compiled instance
    accelerators                     spec parsing, policy, crash marks, auto, reports
    weight_cache                     the shared XNNPACK weight cache
    model                            verified, mapped models
    _runtime, _files, models         runtime loader; paths and files; model builders
    tensors, events, _args           types and inputs; fallback events; argument checks
    errors                           the exception hierarchy
"""

from __future__ import annotations

import logging

from . import accelerators, errors
from ._runtime import load_runtime, runtime_info, runtime_version
from .errors import (
    AcceleratorError,
    CancelledError,
    CompileError,
    DroppedError,
    EdgepipeError,
    InferenceError,
    InputError,
    ModelError,
    PoolClosedError,
    PoolError,
    QueueFullError,
    RequestTimeoutError,
    RuntimeLoadError,
)
from .model import Model
from .models import default_model_path
from .pool import Pool, PoolMap
from .scheduler import Scheduler
from .session import Session
from .tensors import Quantization, Signature, TensorInfo

# A library leaves logging output to the application (no "No handlers" noise).
logging.getLogger("edgepipe").addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "AcceleratorError",
    "CancelledError",
    "CompileError",
    "DroppedError",
    "EdgepipeError",
    "InferenceError",
    "InputError",
    "Model",
    "ModelError",
    "Pool",
    "PoolClosedError",
    "PoolError",
    "PoolMap",
    "Quantization",
    "QueueFullError",
    "RequestTimeoutError",
    "RuntimeLoadError",
    "Scheduler",
    "Session",
    "Signature",
    "TensorInfo",
    "__version__",
    "accelerators",
    "default_model_path",
    "errors",
    "load_runtime",
    "runtime_info",
    "runtime_version",
]
