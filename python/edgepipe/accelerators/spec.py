"""The one parser of an accelerator spec, the way ONNX Runtime takes providers.

A spec is any of::

    "gpu"  # one name

    "npu,gpu"  # a comma-separated preference list
    ["npu", "gpu", "cpu"]  # a list
    ("plugin:/vendor/libfoo.so", {"k": "v"})  # a (name, options) pair
    ["npu", ("libfoo.so", {"k": "v"}), "cpu"]  # a list mixing both
    "auto"  # a measured trial (alone only)

Names are ``cpu``, ``gpu``, ``npu``, ``plugin:<path>`` or a path ending in
``.so``. Options go to delegate plugins only. :func:`parse` normalises a spec
once; what the core receives is the final list (see
:mod:`edgepipe.accelerators.plan`, which adds the CPU tail).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from ..errors import InputError
from . import names

#: One entry of a spec: a name, or a name with its options.
SpecEntry: TypeAlias = str | tuple[str, Mapping[str, Any]]
#: What ``accelerator=`` takes.
AcceleratorSpec: TypeAlias = str | SpecEntry | Sequence[SpecEntry]

AUTO = "auto"
_WHAT = (
    f"accelerator must be {names.VALID_NAMES}, a list of those, (name, options) pairs, "
    "or 'auto' alone"
)


@dataclass(frozen=True)
class ParsedSpec:
    """A normalised spec: names in order (no duplicates) and options by plugin name.

    ``auto`` is True for the spec ``"auto"`` (then ``names`` is empty).
    """

    names: tuple[str, ...]
    options: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    auto: bool = False

    def core_plugin_options(self, kept: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
        """Options for the core, ``{library path: [(key, value), ...]}``, of the ``kept`` names."""
        return {
            names.plugin_path(n): [(k, v) for k, v in self.options[n].items()]
            for n in kept
            if self.options.get(n)
        }


def _options(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise InputError(
            f"options of {where} must be a dict of key: value, not {type(value).__name__}"
        )
    return {str(k): str(v) for k, v in value.items()}


def _entries(spec: Any) -> list[tuple[str, dict[str, str] | None]]:
    if isinstance(spec, str):
        text = spec.strip()
        if text.startswith(names.PLUGIN_PREFIX):
            parts = [text]  # a path after plugin: may hold commas
        else:
            parts = [p.strip() for p in text.split(",") if p.strip()]
        return [(p, None) for p in parts]
    if (
        isinstance(spec, tuple)
        and len(spec) == 2
        and isinstance(spec[0], str)
        and isinstance(spec[1], Mapping)
    ):
        return [(spec[0], _options(spec[1], repr(spec[0])))]
    if isinstance(spec, Sequence) and not isinstance(spec, (bytes, bytearray)):
        out: list[tuple[str, dict[str, str] | None]] = []
        for i, item in enumerate(spec):
            if isinstance(item, str):
                out.append((item, None))
            elif isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str):
                out.append((item[0], _options(item[1], repr(item[0]))))
            else:
                raise InputError(
                    f"accelerator entry {i} is {item!r} ({type(item).__name__}); each entry "
                    "must be a name or a (name, options) pair"
                )
        return out
    raise InputError(f"{_WHAT}; got {spec!r} ({type(spec).__name__})")


def _flat_or_per_plugin(
    plugin_options: Mapping[str, Any] | None, plugin_names: Sequence[str]
) -> dict[str, dict[str, str]]:
    """``plugin_options=`` as options by normalised plugin name.

    Either flat (``{"key": "value"}``, for every plugin) or per plugin
    (``{"/path/lib.so": {"key": "value"}}``, matched by path or file name).
    """
    if not plugin_options:
        return {}
    if not isinstance(plugin_options, Mapping):
        raise InputError(f"plugin_options must be a dict, not {type(plugin_options).__name__}")
    per_plugin = all(isinstance(v, Mapping) for v in plugin_options.values())
    out: dict[str, dict[str, str]] = {}
    for n in plugin_names:
        path = names.plugin_path(n)
        if not per_plugin:
            out[n] = _options(plugin_options, "plugin_options")
            continue
        for key, value in plugin_options.items():
            k = names.normalize(key) if names.is_plugin_spec(str(key)) else str(key)
            if k in (n, path) or _basename(str(key)) == _basename(path):
                out[n] = _options(value, repr(key))
    return out


def _basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def parse(spec: AcceleratorSpec, plugin_options: Mapping[str, Any] | None = None) -> ParsedSpec:
    """Normalise an accelerator spec (see the module docstring).

    Args:
        spec: the ``accelerator=`` value.
        plugin_options: options for plugins not given in the spec itself,
            flat (every plugin) or by plugin path; options in the spec win.

    Raises:
        InputError: a wrong type, an unknown or empty name, ``auto`` mixed
            with other names, or options for a built-in accelerator.
    """
    entries = _entries(spec)
    if not entries:
        raise InputError(f"empty accelerator spec; {_WHAT}")
    if any(n.strip().lower() == AUTO for n, _ in entries):
        if len(entries) != 1 or entries[0][1] is not None:
            raise InputError(
                "'auto' picks the accelerator itself: pass it alone, without other names or options"
            )
        return ParsedSpec((), {}, auto=True)
    ordered: dict[str, dict[str, str] | None] = {}
    for name, opts in entries:
        n = names.normalize(name)
        if opts and not n.startswith(names.PLUGIN_PREFIX):
            raise InputError(f"options are for delegate plugins; {n!r} takes none")
        if n not in ordered or opts:
            ordered[n] = opts if opts else ordered.get(n)
    plugins = [n for n in ordered if n.startswith(names.PLUGIN_PREFIX)]
    options = _flat_or_per_plugin(plugin_options, plugins)
    for n, opts in ordered.items():
        if opts:
            options[n] = {**options.get(n, {}), **opts}
    return ParsedSpec(tuple(ordered), options)
