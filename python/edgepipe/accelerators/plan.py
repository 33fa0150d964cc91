"""From an accelerator spec to what the core compiles: the one path every
Session, Pool, CLI command and report takes.

:func:`plan` parses the spec (:mod:`.spec`), runs the ``auto`` trial when
asked, leaves out accelerators denied by a crash mark or the policy (each
with a ``"policy"`` fallback event), adds the CPU tail when CPU fallback is
allowed, and returns the final list with the core's extra arguments. The core
only checks that list.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import AcceleratorError, InputError
from ..model import Model
from . import crash
from .auto import auto_select
from .policy import Policy, active_policy, facts_for
from .spec import AcceleratorSpec, ParsedSpec, parse


@dataclass
class AcceleratorPlan:
    """What an accelerator spec resolved to for one model.

    ``accelerator`` is the final preference list the core tries in order
    (ending on ``"cpu"`` unless CPU fallback is off), ``events`` the
    ``"policy"`` events of accelerators left out, ``decision`` the auto
    trial's record (None unless the spec was ``"auto"``).
    """

    spec: AcceleratorSpec
    accelerator: list[str]
    events: list[dict[str, Any]] = field(default_factory=list)
    plugin_options: dict[str, dict[str, str]] = field(default_factory=dict)
    decision: dict[str, Any] | None = None
    _parsed: ParsedSpec | None = None

    def kwargs(self) -> dict[str, Any]:
        """``accelerator=`` and ``plugin_options=`` for Session, Pool or Model.compile."""
        return {
            "accelerator": list(self.accelerator),
            "plugin_options": {k: dict(v) for k, v in self.plugin_options.items()},
        }

    def core_kwargs(self) -> dict[str, Any]:
        """``plugin_options`` and ``crash_mark_dir`` for ``_core.Session``/``_core.Pool``."""
        if all(n == "cpu" for n in self.accelerator):
            return {}
        parsed = self._parsed or ParsedSpec(tuple(self.accelerator), self.plugin_options)
        return {
            "plugin_options": parsed.core_plugin_options(self.accelerator),
            "crash_mark_dir": str(crash.marks_dir()),
        }


def plan(
    model: Model,
    spec: AcceleratorSpec = "cpu",
    *,
    plugin_options: Mapping[str, Any] | None = None,
    allow_cpu_fallback: bool = True,
    policy: Policy | None = None,
) -> AcceleratorPlan:
    """Resolve ``spec`` for ``model``; see the module docstring.

    Raises:
        InputError: a malformed spec (:func:`edgepipe.accelerators.spec.parse`).
        AcceleratorError: every requested accelerator is denied and CPU
            fallback is not allowed.
    """
    if not isinstance(allow_cpu_fallback, bool):
        raise InputError(f"allow_cpu_fallback must be True or False, not {allow_cpu_fallback!r}")
    parsed = parse(spec, plugin_options)
    decision = None
    if parsed.auto:
        decision = auto_select(model, policy=policy)
        chosen = str(decision["choice"])
        opts = dict(decision.get("plugin_options") or {})
        parsed = ParsedSpec((chosen,), {chosen: opts} if opts else {})
    wanted = list(parsed.names)
    events: list[dict[str, Any]] = []
    if any(n != "cpu" for n in wanted):
        wanted, events = _filter(model, wanted, allow_cpu_fallback, policy)
    if allow_cpu_fallback and "cpu" not in wanted:
        wanted.append("cpu")
    options = {n: dict(o) for n, o in parsed.options.items() if n in wanted}
    return AcceleratorPlan(spec, wanted, events, options, decision, parsed)


def _filter(
    model: Model, wanted: list[str], allow_cpu_fallback: bool, policy: Policy | None
) -> tuple[list[str], list[dict[str, Any]]]:
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
        later = [m for m in wanted[i + 1 :] if m in kept]
        to = later[0] if later else ("cpu" if allow_cpu_fallback else "")
        events.append({"from": n, "to": to, "stage": "policy", "error": why, "time": time.time()})
    if not kept and not allow_cpu_fallback:
        raise AcceleratorError("; ".join(f"{n}: {why}" for _, n, why in blocked))
    return kept, events


def resolve_accelerator(
    model: Model,
    spec: AcceleratorSpec,
    *,
    plugin_options: Mapping[str, Any] | None = None,
    policy: Policy | None = None,
) -> AcceleratorPlan:
    """:func:`plan` with CPU fallback: what ``--accelerator`` means on the command line."""
    return plan(model, spec, plugin_options=plugin_options, policy=policy)


def parse_plugin_options(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["k=v", ...]`` (repeated ``--plugin-option``) to a dict."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"plugin option {item!r} is not key=value")
        out[key.strip()] = value.strip()
    return out
