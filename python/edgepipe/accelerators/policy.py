"""Accelerator policy: an ordered preference and allow/deny rules.

The document is JSON of the remote-config kind, so a fleet can ship it next
to the model::

    {
        "preference": ["npu", "gpu", "cpu"],
        "plugins": [{"path": "/vendor/lib64/libedgetpu.so.1", "options": {"device": "usb"}}],
        "rules": [
            {
                "deny": "gpu",
                "when": {"device": "Pixel 6*", "runtime": "2.3.*"},
                "reason": "wrong results on Mali G78 with this runtime",
            },
            {"allow": "npu", "when": {"model": "3fa2*"}},
            {"deny": "npu"},
        ],
        "auto": {"rtol": 1e-3, "atol": 1e-4, "runs": 20, "budget_seconds": 1.0},
    }

``when`` keys are matched with shell globs (``fnmatch``): ``device``,
``os``, ``machine``, ``runtime`` (the ai-edge-litert version) and ``model``
(matches the model's sha256 or its file name). Rules are read in order; for
each accelerator the first rule naming it (or ``"*"``) whose ``when`` all
match decides. No matching rule means allowed.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._runtime import runtime_version
from ..errors import InputError
from ..model import Model
from . import names
from .device import device_facts

DEFAULT_PREFERENCE = ("npu", "gpu", "cpu")
_WHEN_KEYS = {"device", "os", "machine", "runtime", "model"}


@dataclass(frozen=True)
class Rule:
    """One allow/deny rule."""

    action: str  # "allow" | "deny"
    accelerator: str  # a normalised name or "*"
    when: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""

    def matches(self, accelerator: str, facts: Mapping[str, str]) -> bool:
        """Whether this rule applies to ``accelerator`` under ``facts``."""
        if self.accelerator not in ("*", accelerator):
            return False
        for key, pattern in self.when.items():
            if key == "model":
                candidates = [facts.get("model_sha256", ""), facts.get("model_name", "")]
                if not any(c and fnmatch.fnmatchcase(c, pattern) for c in candidates):
                    return False
            elif not fnmatch.fnmatchcase(facts.get(key, ""), pattern):
                return False
        return True


@dataclass(frozen=True)
class Policy:
    """Preference order, plugins, allow/deny rules and the ``auto`` trial settings."""

    preference: tuple[str, ...] = DEFAULT_PREFERENCE
    rules: tuple[Rule, ...] = ()
    plugins: tuple[tuple[str, Mapping[str, str]], ...] = ()
    auto: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Policy:
        """Parse a policy document; raises InputError naming the bad field."""
        if not isinstance(doc, Mapping):
            raise InputError("an accelerator policy must be a JSON object")
        pref = tuple(names.normalize(str(p)) for p in doc.get("preference", DEFAULT_PREFERENCE))
        rules = []
        for i, raw in enumerate(doc.get("rules", [])):
            actions = [a for a in ("allow", "deny") if a in raw]
            if len(actions) != 1:
                raise InputError(f"policy rule {i} needs exactly one of 'allow' or 'deny': {raw}")
            target = str(raw[actions[0]])
            target = target if target == "*" else names.normalize(target)
            when = dict(raw.get("when", {}))
            unknown = set(when) - _WHEN_KEYS
            if unknown:
                raise InputError(
                    f"policy rule {i} matches on unknown key(s) {sorted(unknown)}; "
                    f"known: {sorted(_WHEN_KEYS)}"
                )
            rules.append(
                Rule(
                    actions[0],
                    target,
                    {k: str(v) for k, v in when.items()},
                    str(raw.get("reason", "")),
                )
            )
        plugins = []
        for p in doc.get("plugins", []):
            spec = p if isinstance(p, str) else p.get("path", "")
            options = {} if isinstance(p, str) else dict(p.get("options", {}))
            plugins.append(
                (
                    names.normalize(
                        spec if names.is_plugin_spec(spec) else names.PLUGIN_PREFIX + spec
                    ),
                    {str(k): str(v) for k, v in options.items()},
                )
            )
        auto = {str(k): float(v) for k, v in dict(doc.get("auto", {})).items()}
        return cls(pref, tuple(rules), tuple(plugins), auto)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Policy:
        """Read a policy JSON file."""
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read accelerator policy {path}: {exc}") from exc
        return cls.from_dict(doc)

    def decide(self, accelerator: str, facts: Mapping[str, str]) -> tuple[bool, str]:
        """``(allowed, reason)`` for one accelerator; the CPU is always allowed."""
        if accelerator == "cpu":
            return True, ""
        for rule in self.rules:
            if rule.matches(accelerator, facts):
                why = rule.reason or f"{rule.action} rule for {rule.accelerator} {dict(rule.when)}"
                return rule.action == "allow", why
        return True, ""


def active_policy() -> Policy:
    """The policy in ``EDGEPIPE_ACCELERATOR_POLICY`` (a JSON file), else the default."""
    path = os.environ.get("EDGEPIPE_ACCELERATOR_POLICY")
    return Policy.load(path) if path else Policy()


def facts_for(model: Model | None = None) -> dict[str, str]:
    """Device facts plus the runtime version and (optionally) the model's identity."""
    facts = dict(device_facts())
    facts["runtime"] = runtime_version()
    if model is not None:
        facts["model_sha256"] = model.sha256
        facts["model_name"] = model.path.name if model.path else ""
    return facts
