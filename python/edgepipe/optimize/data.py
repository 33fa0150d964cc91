"""Calibration and evaluation data for ``edgepipe optimize``.

``DATA`` is one of:

- a folder of ``.npz`` files: each file is one sample, its arrays named by the
  model's input names (or ``arg0``, ``arg1``, ... by position; a single array
  of any name for a one-input model). An array named ``label`` (or ``labels``)
  is the sample's class label. A missing leading batch dimension of 1 is added.
- a folder of images (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``, ``.gif``,
  ``.webp``; needs Pillow) for a model with one image-like NHWC input: each is
  converted to RGB (or L for one channel), resized to the input's height and
  width (``resize="stretch"``, or ``"crop"`` for a center crop to the aspect
  ratio first) and scaled to ``scale`` (``"0,1"`` by default, ``"-1,1"`` or
  ``"0,255"``). An image inside a sub-folder named by an integer (``3/cat.png``)
  has that label.
- in the Python API also a callable returning (or an iterable of) samples, each
  a dict by input name, a list by position or one array; a sample dict may hold
  ``"label"``.

Files are read in sorted order; ``limit`` keeps the first N samples.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgepipe import TensorInfo
from edgepipe.errors import InputError

from .recipes import MissingExtraError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})
SCALES = {"0,1": (0.0, 1.0), "-1,1": (-1.0, 1.0), "0,255": (0.0, 255.0)}
LABEL_KEYS = ("label", "labels")

Sample = Mapping[str, Any] | Sequence[np.ndarray] | np.ndarray
DataSource = str | os.PathLike[str] | Callable[[], Iterable[Sample]] | Iterable[Sample]


@dataclass
class Dataset:
    """Samples by input name, their labels (None where unlabelled) and where they came from."""

    samples: list[dict[str, np.ndarray]]
    labels: list[int | None] = field(default_factory=list)
    source: str = ""

    @property
    def has_labels(self) -> bool:
        """True when every sample has a label."""
        return bool(self.labels) and all(label is not None for label in self.labels)

    def __len__(self) -> int:
        return len(self.samples)


def _fit(name: str, arr: np.ndarray, info: TensorInfo) -> np.ndarray:
    shape = tuple(info.shape)
    a = np.asarray(arr)
    if a.ndim == len(shape) - 1 and shape and shape[0] == 1:
        a = a[None, ...]
    fixed = all(d == s or d == -1 for d, s in zip(shape, a.shape))
    if a.ndim != len(shape) or not fixed:
        raise InputError(
            f"sample {name}: input {info.name!r} needs shape {list(shape)}, got {list(a.shape)}"
        )
    if info.dtype is not None and info.dtype.kind == "f" and a.dtype.kind in "iuf":
        a = a.astype(info.dtype)
    return a


def _label(value: Any) -> int | None:
    if value is None:
        return None
    arr = np.asarray(value).reshape(-1)
    if arr.size != 1:
        raise InputError(f"a label must be one integer, got shape {list(np.shape(value))}")
    return int(arr[0])


def _from_sample(
    name: str, sample: Sample, infos: Sequence[TensorInfo]
) -> tuple[dict[str, np.ndarray], int | None]:
    label = None
    if isinstance(sample, Mapping):
        items = dict(sample)
        for k in LABEL_KEYS:
            if k in items and k not in {i.name for i in infos}:
                label = _label(items.pop(k))
        if all(i.name in items for i in infos):
            arrays = [items[i.name] for i in infos]
        elif all(f"arg{n}" in items for n in range(len(infos))):
            arrays = [items[f"arg{n}"] for n in range(len(infos))]
        elif len(items) == 1 and len(infos) == 1:
            arrays = list(items.values())
        else:
            raise InputError(
                f"sample {name}: arrays {sorted(items)} do not name the model's inputs "
                f"{[i.name for i in infos]} (or arg0..arg{len(infos) - 1})"
            )
    elif isinstance(sample, np.ndarray):
        arrays = [sample]
    else:
        arrays = list(sample)
    if len(arrays) != len(infos):
        raise InputError(f"sample {name}: the model takes {len(infos)} input(s), got {len(arrays)}")
    return {i.name: _fit(name, a, i) for i, a in zip(infos, arrays)}, label


def _image_input(infos: Sequence[TensorInfo]) -> TensorInfo:
    if len(infos) != 1 or len(infos[0].shape) != 4 or infos[0].shape[-1] not in (1, 3):
        raise InputError(
            "image folders work for models with one NHWC image input (1 or 3 channels); "
            f"this one takes {[(i.name, list(i.shape)) for i in infos]}: use .npz files"
        )
    return infos[0]


def load_image(
    path: str | os.PathLike[str],
    info: TensorInfo,
    *,
    resize: str = "stretch",
    scale: str = "0,1",
) -> np.ndarray:
    """One image file as a batch of 1 for NHWC input ``info`` (see the module doc)."""
    try:
        from PIL import Image
    except ImportError as exc:
        raise MissingExtraError(
            "reading images needs Pillow; install the optional extra: "
            "pip install 'edgepipe[optimize]'"
        ) from exc
    if scale not in SCALES:
        raise InputError(f"unknown image scale {scale!r}; choose from {', '.join(SCALES)}")
    if resize not in ("stretch", "crop"):
        raise InputError(f"unknown resize mode {resize!r}; choose stretch or crop")
    _, h, w, c = info.shape
    try:
        with Image.open(path) as im:
            img = im.convert("L" if c == 1 else "RGB")
    except OSError as exc:
        raise InputError(f"cannot read image {path}: {exc}") from exc
    if resize == "crop":
        iw, ih = img.size
        target = w / h
        if iw / ih > target:
            nw = round(ih * target)
            img = img.crop(((iw - nw) // 2, 0, (iw - nw) // 2 + nw, ih))
        else:
            nh = round(iw / target)
            img = img.crop((0, (ih - nh) // 2, iw, (ih - nh) // 2 + nh))
    img = img.resize((w, h), Image.Resampling.BILINEAR)
    arr = np.asarray(img, np.float32).reshape(h, w, c) / 255.0
    lo, hi = SCALES[scale]
    arr = arr * (hi - lo) + lo
    dtype = info.dtype if info.dtype is not None and info.dtype.kind == "f" else np.float32
    return arr[None, ...].astype(dtype)


def _folder(
    path: Path, infos: Sequence[TensorInfo], resize: str, scale: str, limit: int | None
) -> Dataset:
    if not path.is_dir():
        raise InputError(f"data {path} is not a folder of .npz files or images")
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and (p.suffix.lower() == ".npz" or p.suffix.lower() in IMAGE_SUFFIXES)
    )
    if limit is not None:
        files = files[:limit]
    if not files:
        raise InputError(f"data folder {path} holds no .npz files or images")
    ds = Dataset([], [], str(path))
    for f in files:
        if f.suffix.lower() == ".npz":
            try:
                with np.load(f, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
            except (OSError, ValueError) as exc:
                raise InputError(f"cannot read {f}: {exc}") from exc
            sample, label = _from_sample(str(f), arrays, infos)
        else:
            info = _image_input(infos)
            sample = {info.name: load_image(f, info, resize=resize, scale=scale)}
            parent = f.parent.name
            label = int(parent) if f.parent != path and parent.lstrip("-").isdigit() else None
        ds.samples.append(sample)
        ds.labels.append(label)
    return ds


def load_data(
    source: DataSource,
    inputs: Sequence[TensorInfo],
    *,
    resize: str = "stretch",
    scale: str = "0,1",
    limit: int | None = None,
) -> Dataset:
    """Load ``source`` (see the module doc) as samples for a model with ``inputs``.

    Raises:
        InputError: nothing usable, unreadable files, arrays that do not fit.
        MissingExtraError: images without Pillow.
    """
    if isinstance(source, (str, os.PathLike)):
        return _folder(Path(source), inputs, resize, scale, limit)
    items = source() if callable(source) else source
    ds = Dataset([], [], getattr(source, "__name__", type(source).__name__))
    for n, sample in enumerate(items):
        if limit is not None and n >= limit:
            break
        s, label = _from_sample(f"#{n}", sample, inputs)
        ds.samples.append(s)
        ds.labels.append(label)
    if not ds.samples:
        raise InputError("the data source gave no samples")
    return ds


def random_data(inputs: Sequence[TensorInfo], count: int = 4, seed: int = 0) -> Dataset:
    """``count`` samples uniform in [0, 1) (floats) for when no data is given."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(count):
        sample = {}
        for i in inputs:
            shape = [1 if d < 0 else d for d in i.shape]
            dtype = i.dtype if i.dtype is not None else np.dtype(np.float32)
            if dtype.kind == "f":
                sample[i.name] = rng.random(shape).astype(dtype)
            else:
                sample[i.name] = rng.integers(0, 2, size=shape).astype(dtype)
        samples.append(sample)
    return Dataset(samples, [None] * count, f"random uniform [0,1), seed {seed}")
