"""Model generation helpers and the packaged default model.

Importable on its own: nothing here depends on edgepipe's compiled extension.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "MODEL_BUILDERS",
    "build_add_mul",
    "build_convnet",
    "build_custom_op",
    "build_dynamic_add",
    "build_multi_dtype",
    "build_quantized",
    "build_weight_heavy",
    "default_model_path",
    "write_all",
    "write_default_model",
]


def __getattr__(name: str) -> Any:
    # Lazy so that `python -m edgepipe.models.generator` does not find the module
    # already imported (runpy warns about that), and so that importing the package
    # does not pull in flatbuffers/ai_edge_litert until a builder is needed.
    if name in __all__:
        return getattr(importlib.import_module(".generator", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
