"""The delegation report: how a compile split the graph between accelerators."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from .. import _core
from ..model import Model, as_model
from .plan import plan
from .spec import AcceleratorSpec


def _op_name(code: int) -> str:
    # From the core's generated table of builtin operator names (one source).
    return _core.builtin_op_name(code) or f"op{code}"


def delegation_report(
    model: Model | str | os.PathLike[str],
    spec: AcceleratorSpec = "gpu",
    *,
    plugin_options: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Compile ``model`` for ``spec`` and describe how the graph was split.

    Returns ``{"requested", "accelerator", "fully_accelerated",
    "non_cpu_fully_accelerated", "plugin_ops", "accelerator_kernels",
    "cpu_ops", "fallbacks"}`` with op names. ``cpu_ops`` are the ops left for
    the CPU after the accelerator took its share (known when the compile
    went through the accelerator environment; after a fallback to the CPU
    everything is on the CPU and ``cpu_ops`` is ``None``).
    """
    model = as_model(model)
    chosen = plan(model, spec, plugin_options=plugin_options)
    session = _core.Session(model._core, chosen.accelerator, 0, "", 0, True, **chosen.core_kwargs())
    raw = dict(session.delegation)
    on = str(session.accelerator)
    events = chosen.events + list(session.events)

    def named(codes: Sequence[int]) -> list[str]:
        return [_op_name(int(c)) for c in codes]

    observed = bool(raw.get("observed")) and on != "cpu"
    return {
        "requested": spec if isinstance(spec, str) else repr(spec),
        "accelerator": on,
        "fully_accelerated": bool(raw.get("fully_accelerated")),
        "non_cpu_fully_accelerated": bool(raw.get("non_cpu_fully_accelerated")),
        "plugin_ops": named(raw.get("plugin_ops", [])) if observed else [],
        "accelerator_kernels": list(raw.get("accelerator_kernels", [])) if observed else [],
        "cpu_ops": (named(raw.get("cpu_ops", [])) + list(raw.get("cpu_custom_ops", [])))
        if observed
        else None,
        "fallbacks": events,
    }


def format_delegation(report: Mapping[str, Any]) -> str:
    """Human-readable lines for ``edgepipe info MODEL --accelerator X``."""
    lines = [f"accelerator: {report['accelerator']} (requested {report['requested']})"]
    if report["accelerator"] == "cpu":
        lines.append("delegation: everything runs on the CPU (XNNPACK)")
    else:
        full = report["non_cpu_fully_accelerated"]
        lines.append(f"delegation: {'full' if full else 'partial'}")
        if report["plugin_ops"]:
            lines.append(f"  on the plugin: {', '.join(report['plugin_ops'])}")
        if report["accelerator_kernels"]:
            lines.append(f"  accelerator kernels: {', '.join(report['accelerator_kernels'])}")
        cpu_ops = report["cpu_ops"]
        lines.append(f"  left on the CPU: {', '.join(cpu_ops) if cpu_ops else 'none'}")
    lines.extend(
        f"fallback: {e['from']} -> {e['to'] or '(none)'} at {e['stage']}: "
        f"{e['error'].splitlines()[0] if e['error'] else ''}"
        for e in report["fallbacks"]
    )
    return "\n".join(lines)
