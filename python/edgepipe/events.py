"""Fallback events: what Sessions and Pools record when an accelerator or a
weight cache could not be used.

Each event is a dict ``{"from", "to", "stage", "error", "time"}``: ``stage``
is ``"policy"`` (left out before compiling), ``"init"``, ``"compile"``,
``"run"`` (the core fell back), ``"weight_cache"`` (ran without a cache) or
``"scheduler"`` (pools outside a scheduler ask for more CPU threads than exist).
"""

from __future__ import annotations

import logging
from typing import Any


class Events(list[dict[str, Any]]):
    """The ``events`` of a Session or Pool: a list of event dicts.

    Also callable (``pool.events()``), returning the same list, for code
    written when ``Pool.events`` was a method.
    """

    def __call__(self) -> list[dict[str, Any]]:
        return list(self)


log = logging.getLogger("edgepipe")


def log_fallbacks(events: list[dict[str, Any]]) -> None:
    """Log accelerator fallbacks as they happened when compiling: one warning line
    per distinct ``(from, to, stage)``, the runtime's full text at debug level.

    Weight-cache and scheduler events are logged where they happen
    (edgepipe.weight_cache, edgepipe.scheduler).
    """
    seen: set[tuple[str, str, str]] = set()
    for e in events:
        if e.get("stage") in ("weight_cache", "scheduler"):
            continue
        key = (str(e.get("from")), str(e.get("to") or "none"), str(e.get("stage")))
        error = str(e.get("error") or "")
        log.debug("accelerator %s failed at %s: %s", key[0], key[2], error)
        if key in seen:
            continue
        seen.add(key)
        first = error.strip().splitlines()[0] if error.strip() else "no reason given"
        log.warning("accelerator %s unavailable (%s), using %s: %s", key[0], key[2], key[1], first)
