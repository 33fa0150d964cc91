"""edgepipe: fast, safe TensorFlow Lite / LiteRT inference pipelines.

Quick start::

    import edgepipe
    model = edgepipe.Model.load("model.tflite")      # mapped, verified
    session = model.compile("cpu")                   # or "gpu", ["npu", "gpu"]
    outputs = session.run({"input": x})              # dict of numpy arrays

    with edgepipe.Pool(model, workers=2) as pool:    # GIL-free parallel runs
        outputs = pool.run({"input": x})
"""

from __future__ import annotations

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
from .model import Model, Quantization, Signature, TensorInfo
from .models import default_model_path
from .pool import Pool
from .session import Session

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
    "Quantization",
    "QueueFullError",
    "RequestTimeoutError",
    "RuntimeLoadError",
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
