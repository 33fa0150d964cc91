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

import importlib.metadata

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
    PlatformError,
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

try:  # one version number: pyproject.toml's, as installed
    __version__ = importlib.metadata.version("edgepipe")
except importlib.metadata.PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"

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
    "PlatformError",
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
