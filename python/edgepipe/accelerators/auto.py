"""The ``auto`` trial: the fastest accelerator whose outputs match the CPU.

Each candidate is compiled straight on the core (no fallback), run on seeded
random inputs, compared with the CPU and timed; the decision is cached per
model, runtime version and device under ``<cache>/accel/auto``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import _args, _core
from .._files import atomic_write
from .._runtime import runtime_version
from ..errors import EdgepipeError
from ..model import Model, as_model
from ..tensors import TensorInfo, random_inputs
from . import crash, names
from .detect import detect
from .device import device_facts, slug
from .policy import Policy, active_policy


def _cache_path(model: Model) -> Path:
    folder = crash.accel_dir() / "auto"
    folder.mkdir(parents=True, exist_ok=True)
    facts = device_facts()
    return folder / (
        f"{model.sha256[:32]}-litert{slug(runtime_version())}-"
        f"{slug(facts['device'])}-{slug(facts['machine'])}.json"
    )


def compile_exact(
    model: Model, accelerator: str, plugin_options: Mapping[str, str] | None = None
) -> _core.Session:
    """Compile ``model`` on exactly one normalised accelerator, without CPU fallback.

    Crash marks are written around the attempt, as for any Session.
    """
    opts: dict[str, Any] = {}
    if accelerator != "cpu":
        opts["crash_mark_dir"] = str(crash.marks_dir())
        if plugin_options and accelerator.startswith(names.PLUGIN_PREFIX):
            opts["plugin_options"] = {
                names.plugin_path(accelerator): [
                    (str(k), str(v)) for k, v in plugin_options.items()
                ]
            }
    return _core.Session(model._core, [accelerator], 0, "", 0, False, **opts)


def _measure(session: _core.Session, runs: int, budget: float) -> float:
    session.bench_loop(1, True)  # warm-up: first-run allocations, caches
    total = 0.0
    per: list[float] = []
    while len(per) < runs and total < budget:
        t = float(session.bench_loop(1, True))
        per.append(t)
        total += t
    return float(np.median(per) * 1000.0)


def _run(session: _core.Session, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    infos = [TensorInfo.from_core(t) for t in session.inputs]
    names_out = [t["name"] for t in session.outputs]
    return dict(zip(names_out, session.run([inputs[t.name] for t in infos], None)))


def auto_select(
    model: Model | str | os.PathLike[str],
    *,
    candidates: Sequence[str] | None = None,
    policy: Policy | None = None,
    refresh: bool = False,
) -> dict[str, Any]:
    """Pick the fastest accelerator whose outputs match the CPU, with a cached decision.

    Each allowed, usable candidate (default: the policy's preference, e.g.
    npu, gpu, cpu, plus its plugins) is compiled without CPU fallback, run on
    seeded random inputs (:func:`edgepipe.tensors.random_inputs`), compared
    with the CPU (``rtol``/``atol`` from the policy's ``auto`` section,
    default 1e-3/1e-4) and timed. The record ``{"choice", "figures", "key",
    "created", "cached"}`` is stored under ``<cache>/accel/auto`` keyed by
    model sha256, runtime version and device, so the next start reads it
    instead of measuring again.
    """
    model = as_model(model)
    if candidates is not None:
        candidates = _args.names("candidates", candidates)
    _args.boolean("refresh", refresh)
    pol = policy if policy is not None else active_policy()
    path = _cache_path(model)
    if not refresh and path.is_file():
        try:
            record: dict[str, Any] = json.loads(path.read_text())
            record["cached"] = True
            return record
        except ValueError:
            path.unlink(missing_ok=True)  # damaged: measure again
    rtol = float(pol.auto.get("rtol", 1e-3))
    atol = float(pol.auto.get("atol", 1e-4))
    runs = int(pol.auto.get("runs", 20))
    budget = float(pol.auto.get("budget_seconds", 0.5))
    plugin_opts = {s: dict(o) for s, o in pol.plugins}
    cands = [names.normalize(c) for c in (candidates or [*pol.preference, *plugin_opts])]
    if "cpu" not in cands:
        cands.append("cpu")
    usable = {r.spec or r.name: r for r in detect(policy=pol)}

    cpu = compile_exact(model, "cpu")
    inputs = random_inputs([TensorInfo.from_core(t) for t in cpu.inputs])
    reference = _run(cpu, inputs)
    figures: dict[str, dict[str, Any]] = {}
    for cand in dict.fromkeys(cands):
        row = usable.get(cand)
        if cand != "cpu" and row is not None and not row.usable:
            figures[cand] = {"ok": False, "stage": "detection", "error": row.reason}
            continue
        try:
            session = cpu if cand == "cpu" else compile_exact(model, cand, plugin_opts.get(cand))
        except EdgepipeError as exc:
            figures[cand] = {"ok": False, "stage": "compile", "error": str(exc)}
            continue
        try:
            out = _run(session, inputs)
            worst = (
                max(
                    (
                        float(
                            np.max(
                                np.abs(out[k].astype(np.float64) - reference[k].astype(np.float64))
                            )
                        )
                        if out[k].size
                        else 0.0
                    )
                    for k in reference
                )
                if reference
                else 0.0
            )
            match = all(np.allclose(out[k], reference[k], rtol=rtol, atol=atol) for k in reference)
            median_ms = _measure(session, runs, budget)
        except EdgepipeError as exc:
            figures[cand] = {"ok": False, "stage": "run", "error": str(exc)}
            continue
        figures[cand] = {
            "ok": match,
            "median_ms": median_ms,
            "max_abs_diff": worst,
            "events": list(session.events),
        }
        if not match:
            figures[cand]["error"] = f"outputs differ from the CPU (max |diff| {worst:g})"
    good = [(f["median_ms"], c) for c, f in figures.items() if f.get("ok")]
    choice = min(good)[1] if good else "cpu"
    record = {
        "choice": choice,
        "figures": figures,
        "plugin_options": plugin_opts.get(choice, {}),
        "key": {"model_sha256": model.sha256, "runtime": runtime_version(), **device_facts()},
        "tolerance": {"rtol": rtol, "atol": atol},
        "created": time.time(),
    }
    atomic_write(path, json.dumps(record, indent=2, default=str))
    record["cached"] = False
    return record


__all__ = ["auto_select", "compile_exact"]
