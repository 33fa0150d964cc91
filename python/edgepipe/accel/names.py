"""Accelerator names: ``cpu``, ``gpu``, ``npu`` and ``plugin:<path>`` for delegate plugins."""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..errors import InputError

BUILTIN = ("cpu", "gpu", "npu")
PLUGIN_PREFIX = "plugin:"


def is_plugin_spec(spec: str) -> bool:
    """Whether ``spec`` names a delegate plugin (``plugin:...`` or a ``.so`` file)."""
    base = os.path.basename(spec)
    return spec.startswith(PLUGIN_PREFIX) or base.endswith(".so") or ".so." in base


def normalize(spec: str) -> str:
    """Normalise one name: ``"GPU"`` -> ``"gpu"``, ``"./libfoo.so"`` -> ``"plugin:/abs/libfoo.so"``.

    A bare library name without a slash (``libedgetpu.so.1``) is kept as is,
    so the system loader searches for it like ``dlopen`` would.
    """
    spec = spec.strip()
    if is_plugin_spec(spec):
        path = spec[len(PLUGIN_PREFIX):] if spec.startswith(PLUGIN_PREFIX) else spec
        if not path:
            raise InputError("a plugin accelerator needs a library path: plugin:/path/libfoo.so")
        if "/" in path:
            path = os.path.abspath(os.path.expanduser(path))
        return PLUGIN_PREFIX + path
    name = spec.lower()
    if name not in BUILTIN:
        raise InputError(
            f"unknown accelerator {spec!r}; expected cpu, gpu, npu, auto, "
            "plugin:/path/libdelegate.so or a path ending in .so"
        )
    return name


def plugin_path(name: str) -> str:
    """The library path of a ``plugin:`` name."""
    return name[len(PLUGIN_PREFIX):]


def core_plugin_options(
    names: list[str], plugin_options: Mapping[str, object] | None
) -> dict[str, list[tuple[str, str]]]:
    """Options for the core: ``{library path: [(key, value), ...]}``.

    ``plugin_options`` is either flat (``{"key": "value"}``, given to every
    plugin in ``names``) or per plugin (``{"/path/lib.so": {"key": "value"}}``).
    """
    if not plugin_options:
        return {}
    paths = [plugin_path(n) for n in names if n.startswith(PLUGIN_PREFIX)]
    per_plugin = all(isinstance(v, Mapping) for v in plugin_options.values())
    out: dict[str, list[tuple[str, str]]] = {}
    for path in paths:
        if per_plugin:
            chosen = None
            for key, value in plugin_options.items():
                k = normalize(key) if is_plugin_spec(key) else key
                same_file = os.path.basename(str(key)) == os.path.basename(path)
                if k in (PLUGIN_PREFIX + path, path) or same_file:
                    chosen = value
            if chosen is None:
                continue
            items = chosen
        else:
            items = plugin_options
        assert isinstance(items, Mapping)
        out[path] = [(str(k), str(v)) for k, v in items.items()]
    return out
