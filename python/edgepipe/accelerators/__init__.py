"""Accelerators: names, the one spec parser, detection, policy, crash marks,
the ``auto`` trial, the delegation report and the subprocess probe.

Layer: above the model and its weight cache, below :class:`edgepipe.Session`
and :class:`edgepipe.Pool`, which call :func:`plan` to turn an
``accelerator=`` spec into the final list the core compiles with. Every
module here compiles through the core directly, never through a Session.

- :mod:`.names`: one accelerator name (``cpu``, ``gpu``, ``npu``, ``plugin:<path>``).
- :mod:`.spec`: the one parser of a spec (a name, a list, ``(name, options)`` pairs, ``auto``).
- :mod:`.device`: the facts policy rules and caches are keyed on.
- :mod:`.policy`: allow/deny rules from a remote-config style JSON document.
- :mod:`.crash`: crash marks and the denylist they feed.
- :mod:`.detect`: every accelerator the runtime knows, usable here or why not.
- :mod:`.auto`: the measured ``auto`` trial, cached per model, runtime and device.
- :mod:`.plan`: spec -> auto -> policy/crash filter -> CPU tail -> the core's list.
- :mod:`.report`: how a compile split the graph (op names).
- :mod:`.probe`: both sides of the opt-in subprocess probe.

See docs/accelerators.md for the design.
"""

from __future__ import annotations

from . import crash, names
from .auto import auto_select
from .crash import accel_dir
from .detect import CLASSIC_DELEGATES, AcceleratorInfo, detect, format_table
from .device import device_facts
from .plan import AcceleratorPlan, parse_plugin_options, plan, resolve_accelerator
from .policy import Policy, Rule, active_policy
from .probe import probe_in_subprocess
from .report import delegation_report, format_delegation
from .spec import AcceleratorSpec, ParsedSpec, parse


def clear_denylist(accelerator: str | None = None) -> int:
    """Forget crash-denied accelerators (all, or one); returns how many entries went."""
    return crash.clear(names.normalize(accelerator) if accelerator else None)


__all__ = [
    "CLASSIC_DELEGATES",
    "AcceleratorInfo",
    "AcceleratorPlan",
    "AcceleratorSpec",
    "ParsedSpec",
    "Policy",
    "Rule",
    "accel_dir",
    "active_policy",
    "auto_select",
    "clear_denylist",
    "delegation_report",
    "detect",
    "device_facts",
    "format_delegation",
    "format_table",
    "parse",
    "parse_plugin_options",
    "plan",
    "probe_in_subprocess",
    "resolve_accelerator",
]
