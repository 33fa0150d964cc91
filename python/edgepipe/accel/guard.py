"""What a Session or Pool applies before it compiles on an accelerator.

Denied accelerators (a stale crash mark, or a policy rule) are left out
before the core sees them, each with a ``"policy"`` fallback event, and the
core gets the crash-marks folder so that a crash during the next attempt is
remembered too.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import AcceleratorError
from . import crash, names
from .policy import Policy, active_policy, facts_for


def prepare(
    model: Any,
    accelerators: Sequence[str],
    *,
    allow_cpu_fallback: bool = True,
    plugin_options: Mapping[str, object] | None = None,
    policy: Policy | None = None,
) -> tuple[list[str], list[dict[str, Any]], dict[str, Any]]:
    """Filter a preference list and build the core's extra arguments.

    Returns ``(names, events, core_kwargs)``: the accelerators to try in
    order, the ``"policy"`` events of those left out, and
    ``{"plugin_options", "crash_mark_dir"}`` for ``_core.Session``/``Pool``.

    Raises:
        AcceleratorError: every requested accelerator is denied and CPU
            fallback is not allowed.
        InputError: an unknown accelerator name.
    """
    wanted = [names.normalize(a) for a in accelerators]
    if all(n == "cpu" for n in wanted):
        return wanted or ["cpu"], [], {}
    denied = crash.denied()
    pol = policy if policy is not None else active_policy()
    facts = facts_for(model)
    kept: list[str] = []
    blocked: list[tuple[int, str, str]] = []
    for i, n in enumerate(wanted):
        if n == "cpu":
            kept.append(n)
            continue
        if n in denied:
            blocked.append((i, n, f"denied after a crash: {denied[n]}"))
            continue
        ok, why = pol.decide(n, facts)
        if not ok:
            blocked.append((i, n, f"denied by policy: {why}"))
            continue
        kept.append(n)
    events = []
    for i, n, why in blocked:
        later = [m for m in wanted[i + 1:] if m in kept]
        to = later[0] if later else ("cpu" if allow_cpu_fallback else "")
        events.append({"from": n, "to": to, "stage": "policy", "error": why, "time": time.time()})
    if not kept:
        if not allow_cpu_fallback:
            raise AcceleratorError("; ".join(f"{n}: {why}" for _, n, why in blocked))
        kept = ["cpu"]
    core_kwargs = {
        "plugin_options": names.core_plugin_options(kept, plugin_options),
        "crash_mark_dir": str(crash.marks_dir()),
    }
    return kept, events, core_kwargs
