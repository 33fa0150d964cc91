"""Accelerator names: ``cpu``, ``gpu``, ``npu`` and ``plugin:<path>`` for delegate plugins.

One name at a time; whole specs (lists, ``auto``, options) are parsed in
:mod:`edgepipe.accelerators.spec`.
"""

from __future__ import annotations

import os

from ..errors import InputError

BUILTIN = ("cpu", "gpu", "npu")
PLUGIN_PREFIX = "plugin:"
#: What :func:`normalize` accepts, for error messages.
VALID_NAMES = "cpu, gpu, npu, plugin:/path/libdelegate.so or a path ending in .so"


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
        path = spec[len(PLUGIN_PREFIX) :] if spec.startswith(PLUGIN_PREFIX) else spec
        if not path:
            raise InputError("a plugin accelerator needs a library path: plugin:/path/libfoo.so")
        if "/" in path:
            path = os.path.abspath(os.path.expanduser(path))
        return PLUGIN_PREFIX + path
    name = spec.lower()
    if name not in BUILTIN:
        raise InputError(f"unknown accelerator {spec!r}; expected {VALID_NAMES}")
    return name


def plugin_path(name: str) -> str:
    """The library path of a ``plugin:`` name."""
    return name[len(PLUGIN_PREFIX) :]
