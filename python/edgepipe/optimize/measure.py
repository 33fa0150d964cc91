"""Measure model variants against the original in one run: size, load, latency,
memory and output error.

Latency runs are interleaved (round-robin over every variant and accelerator,
one run each per round) so that noise on a shared machine hits all variants
alike; only ratios from the same run mean anything. Every session uses the
same ``threads`` setting as the original.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgepipe import Model, Session
from edgepipe.errors import EdgepipeError

from .data import Dataset
from .quantized_io import dequantize_outputs, has_quantized_io, quantize_inputs

_CLASSIFIER_NAME = re.compile(r"logit|prob|class|score|softmax|label", re.IGNORECASE)


def rss_bytes() -> int | None:
    """Resident set size of this process (Linux ``/proc``), or None elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Candidate:
    """A model file to measure, and what the measurement found."""

    name: str
    path: Path
    recipe: str | None = None
    model: Model | None = None
    sessions: dict[str, Session] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    outputs: list[dict[str, np.ndarray]] = field(default_factory=list)
    #: why the candidate could not be loaded, compiled or run in edgepipe (None: it ran)
    error: str | None = None


def _run(session: Session, sample: dict[str, np.ndarray], quantized: bool) -> dict[str, Any]:
    if quantized:
        return dequantize_outputs(session, session.run(quantize_inputs(session, sample)))
    return session.run(sample)


def run_float(session: Session, sample: dict[str, np.ndarray]) -> dict[str, Any]:
    """Float outputs of one float ``sample``, quantizing and dequantizing where the
    model has integer I/O: how every candidate runs the eval samples."""
    return _run(session, sample, has_quantized_io(session))


class Evaluator(Protocol):
    """Computes the eval outputs of several model files somewhere else.

    ``edgepipe optimize --ray`` passes an :class:`edgepipe.ray.ClusterEvaluator`
    (:func:`edgepipe.ray.evaluate_models` bound to a cluster; its ``name``, if any,
    is the report's ``settings.evaluator``). It runs every sample through every model with
    ``run(session, sample)`` (a CPU :class:`~edgepipe.Session` with ``threads``) and
    returns one dict per model, in order: ``{"ok": True, "outputs": [one per
    sample, in order]}`` or ``{"ok": False, "error": why}``; any other keys
    (``nodes``) go into the report as ``evaluated_on``.
    """

    def __call__(
        self,
        models: Sequence[Path],
        samples: Sequence[dict[str, np.ndarray]],
        *,
        run: Callable[[Session, dict[str, np.ndarray]], Mapping[str, Any]],
        threads: int | None,
    ) -> Sequence[Mapping[str, Any]]:
        """One result per model."""
        ...


def is_classifier_like(name: str, shape: Sequence[int], ref: np.ndarray) -> bool:
    """Rank-2 ``(batch, classes)`` output that is named like one or sums to 1 per row."""
    if len(shape) != 2 or shape[-1] < 2:
        return False
    if _CLASSIFIER_NAME.search(name):
        return True
    r = np.asarray(ref, np.float64)
    return bool(r.min() >= 0 and np.allclose(r.sum(axis=-1), 1.0, atol=1e-3))


def output_errors(
    ref: Sequence[dict[str, np.ndarray]], got: Sequence[dict[str, np.ndarray]]
) -> dict[str, dict[str, Any]]:
    """Per-output error of ``got`` against ``ref`` over every sample.

    ``max_abs``: largest absolute difference; ``mean_rel``: mean absolute
    difference over the mean absolute reference value; ``cosine``: cosine
    similarity of all values flattened; ``top1``: for classifier-like outputs,
    the share of (sample, row) argmax agreements, else None.
    """
    out: dict[str, dict[str, Any]] = {}
    for name in ref[0]:
        a = np.concatenate([np.asarray(r[name], np.float64).reshape(-1) for r in ref])
        b = np.concatenate([np.asarray(g[name], np.float64).reshape(-1) for g in got])
        diff = np.abs(a - b)
        na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
        cosine = (
            1.0
            if na == 0 and nb == 0
            else (float(np.dot(a, b) / (na * nb)) if na > 0 and nb > 0 else 0.0)
        )
        shape = np.shape(ref[0][name])
        top1 = None
        if is_classifier_like(name, shape, ref[0][name]):
            agree = [
                np.argmax(r[name], axis=-1) == np.argmax(g[name], axis=-1) for r, g in zip(ref, got)
            ]
            top1 = float(np.mean(np.concatenate([np.ravel(x) for x in agree])))
        out[name] = {
            "max_abs": float(diff.max()) if diff.size else 0.0,
            "mean_rel": float(diff.mean() / max(float(np.abs(a).mean()), 1e-12))
            if diff.size
            else 0.0,
            "cosine": cosine,
            "top1": top1,
        }
    return out


def accuracy(
    outputs: Sequence[dict[str, np.ndarray]], labels: Sequence[int | None]
) -> float | None:
    """Share of samples whose classifier-like output's argmax equals the label."""
    if not outputs or any(label is None for label in labels):
        return None
    first = outputs[0]
    names = [n for n, v in first.items() if is_classifier_like(n, np.shape(v), v)]
    if not names:
        names = [n for n, v in first.items() if np.ndim(v) == 2]
    if not names:
        return None
    name = names[0]
    hits = [
        int(np.argmax(np.asarray(o[name]).reshape(-1))) == int(label)
        for o, label in zip(outputs, labels)
        if label is not None
    ]
    return float(np.mean(hits))


def _accel_why(session: Session, accelerator: str) -> str:
    for e in session.events:
        error = str(e.get("error") or "")
        if not error:
            continue
        head = f"fell back to {session.accelerator} at {e.get('stage')}"
        if "No adapters found" in error:
            return f"{head}: no GPU adapter (WebGPU: No adapters found)"
        first = error.splitlines()[0]
        return f"{head}: {first[:200]}{'...' if len(first) > 200 else ''}"
    return f"runs on {session.accelerator} instead of {accelerator}"


def _cpu_ops(model: Model, accelerator: str) -> list[str]:
    """Op names the accelerator left on the CPU (edgepipe's delegation report)."""
    from edgepipe import accelerators

    try:
        report = accelerators.delegation_report(model, accelerator)
    except EdgepipeError:
        return []
    return list(report.get("cpu_ops") or [])


def measure(
    candidates: Sequence[Candidate],
    data: Dataset,
    *,
    accelerators: Sequence[str] = ("cpu", "gpu"),
    threads: int | None = None,
    runs: int = 20,
    warmup: int = 3,
    evaluator: Evaluator | None = None,
) -> None:
    """Fill ``candidate.result`` for every candidate; the first is the reference.

    With an ``evaluator`` the eval outputs are computed by it (e.g. on a Ray
    cluster) instead of by the local CPU sessions; load, compile and latency are
    still measured here, and the errors are computed here from its outputs.

    A candidate other than the first that edgepipe cannot load, compile or run
    gets ``candidate.error`` instead (the first one's error is raised).

    Sets ``size``, ``load_ms``, ``compile_ms``, ``rss_delta_bytes``,
    ``quantized_io``, ``accelerators`` (per accelerator: ``p50_ms``/``p99_ms``
    and ``runs``, or ``available: False`` with ``why`` and the ``delegation``
    details), ``size_ratio`` (to the first candidate), ``size_ratio_fp32`` (to
    the candidate whose recipe is ``"normalized"``, else the first),
    ``errors`` (per output, see :func:`output_errors`), the summary
    ``max_abs``/``mean_rel``/``min_cosine``/``min_top1``, ``speedup`` and ``accuracy``.
    """
    failed: list[Candidate] = []
    for n, c in enumerate(candidates):
        c.result["size"] = c.path.stat().st_size
        before = rss_bytes()
        try:
            t0 = time.perf_counter()
            c.model = Model.load(c.path)
            t1 = time.perf_counter()
            cpu = Session(c.model, accelerator="cpu", threads=threads)
            t2 = time.perf_counter()
            quantized = has_quantized_io(cpu)
            if evaluator is None:
                c.outputs = [_run(cpu, s, quantized) for s in data.samples]
        except EdgepipeError as exc:
            if n == 0:
                raise  # the reference itself does not run: nothing to compare against
            c.error = f"{type(exc).__name__}: {exc}"
            failed.append(c)
            continue
        after = rss_bytes()
        c.sessions["cpu"] = cpu
        c.result.update(
            {
                "load_ms": (t1 - t0) * 1e3,
                "compile_ms": (t2 - t1) * 1e3,
                "rss_delta_bytes": after - before
                if before is not None and after is not None
                else None,
                "quantized_io": quantized,
                "accelerators": {"cpu": {"available": True, "ran_on": cpu.accelerator}},
            }
        )
        for accel in accelerators:
            if accel == "cpu":
                continue
            try:
                s = Session(c.model, accelerator=accel, threads=threads)
            except EdgepipeError as exc:
                c.result["accelerators"][accel] = {"available": False, "why": str(exc)}
                continue
            entry: dict[str, Any] = {
                "ran_on": s.accelerator,
                "events": s.events,
                "delegation": s.delegation,
            }
            if s.accelerator == "cpu":
                entry.update(available=False, why=_accel_why(s, accel))
                s.close()
            else:
                entry.update(available=True, fully_accelerated=s.fully_accelerated)
                if not s.fully_accelerated:
                    entry["cpu_ops"] = _cpu_ops(c.model, accel)
                    entry["why"] = "partial delegation: left on the CPU: " + (
                        ", ".join(sorted(set(entry["cpu_ops"])))
                        if entry["cpu_ops"]
                        else "ops the runtime did not name"
                    )
                c.sessions[accel] = s
            c.result["accelerators"][accel] = entry

    if evaluator is not None:
        _evaluate_elsewhere([c for c in candidates if c not in failed], data, evaluator, threads)
        failed.extend(c for c in candidates if c.error is not None and c not in failed)
    candidates = [c for c in candidates if c not in failed]
    # Interleaved latency: every (candidate, accelerator) runs once per round.
    sample = data.samples[0]
    timers: list[tuple[Candidate, str, Session, dict[str, np.ndarray], list[float]]] = []
    for c in candidates:
        for accel, s in c.sessions.items():
            feed = quantize_inputs(s, sample) if c.result["quantized_io"] else sample
            timers.append((c, accel, s, feed, []))
    for _ in range(warmup):
        for _, _, s, feed, _ in timers:
            s.run(feed)
    for _ in range(runs):
        for _, _, s, feed, times in timers:
            t = time.perf_counter()
            s.run(feed)
            times.append(time.perf_counter() - t)
    for c, accel, _, _, times in timers:
        ms = np.asarray(times) * 1e3
        c.result["accelerators"][accel].update(
            p50_ms=float(np.percentile(ms, 50)),
            p99_ms=float(np.percentile(ms, 99)),
            runs=len(times),
            threads=threads,
        )

    ref = candidates[0]
    float32_size = next(
        (c.result["size"] for c in candidates if c.recipe == "normalized"), ref.result["size"]
    )
    for c in candidates:
        errs = output_errors(ref.outputs, c.outputs)
        c.result["errors"] = errs
        c.result["max_abs"] = max(e["max_abs"] for e in errs.values())
        c.result["mean_rel"] = max(e["mean_rel"] for e in errs.values())
        c.result["min_cosine"] = min(e["cosine"] for e in errs.values())
        tops = [e["top1"] for e in errs.values() if e["top1"] is not None]
        c.result["min_top1"] = min(tops) if tops else None
        c.result["accuracy"] = accuracy(c.outputs, data.labels) if data.has_labels else None
        ref_p50 = ref.result["accelerators"]["cpu"]["p50_ms"]
        c.result["speedup"] = ref_p50 / c.result["accelerators"]["cpu"]["p50_ms"]
        c.result["size_ratio"] = c.result["size"] / ref.result["size"]
        c.result["size_ratio_fp32"] = c.result["size"] / float32_size


def _evaluate_elsewhere(
    candidates: Sequence[Candidate], data: Dataset, evaluator: Evaluator, threads: int | None
) -> None:
    """Fill ``c.outputs`` from ``evaluator``; a candidate it could not run gets ``c.error``."""
    results = list(
        evaluator([c.path for c in candidates], data.samples, run=run_float, threads=threads)
    )
    if len(results) != len(candidates):
        raise EdgepipeError(
            f"the evaluator returned {len(results)} results for {len(candidates)} models"
        )
    for n, (c, r) in enumerate(zip(candidates, results)):
        if not r.get("ok"):
            if n == 0:
                raise EdgepipeError(f"the original model does not run there: {r.get('error')}")
            c.error = str(r.get("error"))
            continue
        outputs = list(r["outputs"])
        if len(outputs) != len(data.samples):
            raise EdgepipeError(
                f"the evaluator returned {len(outputs)} outputs of {c.name} for "
                f"{len(data.samples)} samples"
            )
        c.outputs = [{k: np.asarray(v) for k, v in o.items()} for o in outputs]
        extra = {k: v for k, v in r.items() if k not in ("ok", "outputs", "error")}
        if extra:
            c.result["evaluated_on"] = extra


def close(candidates: Sequence[Candidate]) -> None:
    """Close every session the measurement opened."""
    for c in candidates:
        for s in c.sessions.values():
            s.close()
        c.sessions.clear()
