"""Accelerators: what this runtime can use, which one to pick, and why.

- :func:`accelerators` (also ``edgepipe.accelerators()``): every accelerator
  the runtime knows (cpu, gpu, npu, delegate plugins, the classic TFLite
  delegates) with whether it is usable here and why not.
- :func:`resolve_accelerator`: turns ``--accelerator gpu|npu|cpu|auto|PLUGIN.so``
  into the arguments of :class:`edgepipe.Session` / :class:`edgepipe.Pool`.
- :func:`auto_select`: a short measured trial on the actual model; the
  fastest accelerator whose outputs match the CPU wins, cached per model,
  runtime version and device.
- :func:`delegation_report`: which ops a compile left on the CPU.
- :func:`add_accelerators_parser`: the ``edgepipe accelerators [--json]`` command.

See docs/accelerators.md for the design.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
import types
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import _core
from ._runtime import load_runtime, runtime_version
from .accel import crash, names
from .accel.device import device_facts, slug
from .accel.policy import Policy, active_policy, facts_for
from .errors import EdgepipeError, InputError
from .model import Model

# Classic TFLite delegates edgepipe knows by name. They run as external
# delegate plugins (tflite_plugin_create_delegate) through the delegate
# dispatcher; these are the library names searched for each.
CLASSIC_DELEGATES: dict[str, tuple[str, ...]] = {
    "edgetpu": ("libedgetpu.so.1",),
    "nnapi": ("libedgepipe_nnapi_delegate.so", "libnnapi_delegate_plugin.so"),
    "hexagon": ("libedgepipe_hexagon_delegate.so", "libhexagon_delegate_plugin.so"),
    "gpu-delegate": (
        "libtensorflowlite_gpu_delegate_plugin.so", "libtensorflowlite_gpu_delegate.so",
    ),
}
_CLASSIC_NOTES = {
    "edgetpu": "Coral Edge TPU runtime (ships as a delegate plugin)",
    "nnapi": "Android NNAPI; needs a plugin build of the NNAPI delegate (docs/accelerators.md)",
    "hexagon": "Qualcomm Hexagon DSP (deprecated by TFLite); needs a plugin build",
    "gpu-delegate": "classic TFLite GPU delegate (OpenCL/OpenGL) as a plugin",
}


@dataclass
class AcceleratorInfo:
    """One row of :func:`accelerators`."""

    name: str  # "cpu", "gpu", "npu", "plugin:/path", or a classic delegate's name
    kind: str  # "builtin", "plugin" or "classic"
    usable: bool
    reason: str = ""  # why not usable ("" when usable)
    detail: str = ""  # what was found (accelerator/library names)
    spec: str = ""  # what to pass as accelerator= to use it

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _probe_model() -> Model:
    from .models.generator import build_add_mul

    return Model.from_bytes(build_add_mul())


@functools.cache
def _probe(accelerator: str) -> tuple[str, str]:
    # A GPU-only compile of a 2-op model: the only reliable "is there a GPU"
    # signal (LiteRtGpuEnvironmentCreate succeeds with no GPU at all).
    # Cached per process; ("", "") means it compiled.
    stage, error = _core.probe_compile(_probe_model()._core, accelerator, exact_bits=True)
    return str(stage), str(error)


def _short(text: str) -> str:
    for needle in ("No adapters found", "no vendor dispatch", "not found", "cannot open"):
        for line in text.splitlines():
            if needle in line:
                return line.strip()
    return text.splitlines()[0].strip() if text else ""


def _plugin_row(spec: str, kind: str = "plugin", label: str | None = None) -> AcceleratorInfo:
    path = names.plugin_path(spec)
    why = str(_core.check_plugin(path))
    return AcceleratorInfo(
        label or spec, kind, not why, _short(why) if why else "", f"delegate plugin {path}", spec
    )


def accelerators(
    plugins: Sequence[str] = (), *, policy: Policy | None = None
) -> list[AcceleratorInfo]:
    """Every accelerator this runtime knows, whether it is usable here, and why not.

    Args:
        plugins: extra delegate plugin libraries to check (``EDGEPIPE_DELEGATE_PLUGINS``,
            a ``os.pathsep`` list, and the policy's ``plugins`` are always checked).
        policy: allow/deny rules (default: ``EDGEPIPE_ACCELERATOR_POLICY`` or none).
    """
    rt = load_runtime()
    pol = policy if policy is not None else active_policy()
    registered = list(rt.registered_accelerators())
    by_bit = {bit: [a["name"] for a in registered if a["hardware"] & bit] for bit in (1, 2, 4)}
    rows = [AcceleratorInfo("cpu", "builtin", True, "", ", ".join(by_bit[1]) or "XNNPACK", "cpu")]

    if not by_bit[2]:
        rows.append(AcceleratorInfo(
            "gpu", "builtin", False,
            f"no GPU accelerator library could be loaded from {rt.library_dir}", "", "gpu"))
    else:
        stage, error = _probe("gpu")
        reason = ""
        if error:
            reason = "no GPU adapter" if "No adapters found" in error else f"GPU {stage} failed"
            reason += f": {_short(error)}"
        rows.append(AcceleratorInfo("gpu", "builtin", not error, reason,
                                    ", ".join(by_bit[2]), "gpu"))

    dispatch_dir = Path(rt.dispatch_library_dir)
    dispatch_libs = sorted(p.name for p in dispatch_dir.glob("libLiteRtDispatch_*.so"))
    if not by_bit[4]:
        rows.append(AcceleratorInfo("npu", "builtin", False,
                                    "no NPU accelerator registered by the runtime", "", "npu"))
    elif not dispatch_libs:
        rows.append(AcceleratorInfo(
            "npu", "builtin", False,
            f"no vendor dispatch library (libLiteRtDispatch_*.so) in {dispatch_dir}",
            ", ".join(by_bit[4]), "npu"))
    else:
        rows.append(AcceleratorInfo(
            "npu", "builtin", True, "", f"{', '.join(by_bit[4])} with {', '.join(dispatch_libs)}; "
            "runs only models compiled for the NPU (DISPATCH_OP)", "npu"))

    supported = bool(rt.delegate_plugins_supported())
    for label, libs in CLASSIC_DELEGATES.items():
        found = None
        last = ""
        for lib in libs:
            last = str(_core.check_plugin(lib))
            if not last:
                found = lib
                break
        if found:
            rows.append(AcceleratorInfo(label, "classic", supported,
                                        "" if supported else "runtime cannot host plugins",
                                        f"{_CLASSIC_NOTES[label]}: {found}",
                                        names.PLUGIN_PREFIX + found))
        else:
            rows.append(AcceleratorInfo(label, "classic", False,
                                        f"library not found ({', '.join(libs)})",
                                        _CLASSIC_NOTES[label], ""))

    extra = [p for p in os.environ.get("EDGEPIPE_DELEGATE_PLUGINS", "").split(os.pathsep) if p]
    specs = [names.normalize(p if names.is_plugin_spec(p) else names.PLUGIN_PREFIX + p)
             for p in [*extra, *plugins]]
    specs += [s for s, _ in pol.plugins]
    for spec in dict.fromkeys(specs):
        row = _plugin_row(spec)
        if row.usable and not supported:
            row.usable, row.reason = False, "this runtime cannot host delegate plugins"
        rows.append(row)

    denied = crash.denied()
    facts = facts_for()
    for row in rows:
        key = row.spec or row.name
        if row.name == "cpu":
            continue
        if key in denied:
            row.usable, row.reason = False, f"denied after a crash: {denied[key]}"
            continue
        ok, why = pol.decide(key, facts)
        if not ok:
            row.usable, row.reason = False, f"denied by policy: {why}"
    return rows


def format_table(rows: Sequence[AcceleratorInfo]) -> str:
    """A plain-text table of :func:`accelerators` rows."""
    lines = [f"{'ACCELERATOR':<28} {'KIND':<8} {'USABLE':<6} DETAIL / WHY NOT"]
    for r in rows:
        text = r.reason if not r.usable else r.detail
        if not r.usable and r.detail:
            text = f"{r.reason} [{r.detail}]"
        lines.append(f"{r.name:<28} {r.kind:<8} {'yes' if r.usable else 'no':<6} {text}")
    return "\n".join(lines)


# -- choosing ----------------------------------------------------------------


@dataclass
class AcceleratorChoice:
    """What ``--accelerator`` resolved to: splat :meth:`kwargs` into Session/Pool.

    ``accelerator`` is the preference list (ends on ``"cpu"``),
    ``plugin_options`` the plugin options, ``decision`` the auto trial's
    record (None unless ``spec`` was ``"auto"``).
    """

    spec: str
    accelerator: list[str]
    plugin_options: dict[str, str] = field(default_factory=dict)
    decision: dict[str, Any] | None = None

    def kwargs(self) -> dict[str, Any]:
        """``accelerator=`` and ``plugin_options=`` for Session, Pool or Model.compile."""
        return {"accelerator": list(self.accelerator), "plugin_options": dict(self.plugin_options)}


def resolve_accelerator(
    model: Model | str | os.PathLike[str],
    spec: str,
    *,
    plugin_options: Mapping[str, str] | None = None,
    policy: Policy | None = None,
) -> AcceleratorChoice:
    """Resolve a ``--accelerator`` value.

    Args:
        model: the model (used by ``auto``; a path is loaded).
        spec: ``cpu``, ``gpu``, ``npu``, ``auto``, ``plugin:/path/lib.so``, a
            path ending in ``.so``, or a comma-separated preference list of
            those (``"npu,gpu"``).
        plugin_options: options for plugins (``--plugin-option key=value``).
        policy: policy (default: ``EDGEPIPE_ACCELERATOR_POLICY`` or none).

    Returns:
        An :class:`AcceleratorChoice`; use ``Session(model, **choice.kwargs())``.
        Non-CPU lists always end on ``"cpu"``, so a failure falls back.
    """
    spec = spec.strip()
    if not spec:
        raise InputError("empty --accelerator")
    if spec.lower() == "auto":
        decision = auto_select(model, policy=policy)
        chosen = decision["choice"]
        opts = dict(decision.get("plugin_options", {})) if chosen.startswith("plugin:") else {}
        return AcceleratorChoice(spec, list(dict.fromkeys([chosen, "cpu"])), opts, decision)
    parts = [spec] if names.is_plugin_spec(spec) else [p for p in spec.split(",") if p.strip()]
    listed = [names.normalize(p) for p in parts]
    if "cpu" not in listed:
        listed.append("cpu")
    return AcceleratorChoice(spec, listed, dict(plugin_options or {}))


def parse_plugin_options(items: Sequence[str]) -> dict[str, str]:
    """``["k=v", ...]`` (repeated ``--plugin-option``) to a dict."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"plugin option {item!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def _auto_cache_path(model: Model) -> Path:
    folder = crash.accel_dir() / "auto"
    folder.mkdir(parents=True, exist_ok=True)
    facts = device_facts()
    return folder / (f"{model.sha256[:32]}-litert{slug(runtime_version())}-"
                     f"{slug(facts['device'])}-{slug(facts['machine'])}.json")


def _trial_inputs(session: Any, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for t in session.inputs:
        shape = tuple(max(d, 1) for d in t.shape)
        dt = np.dtype(t.dtype)
        if dt.kind == "f":
            out.append(rng.standard_normal(shape).astype(dt))
        elif dt.kind in "iu":
            lo, hi = (0, 16) if dt.kind == "u" else (-8, 8)
            out.append(rng.integers(lo, hi, size=shape).astype(dt))
        elif dt.kind == "b":
            out.append(rng.integers(0, 2, size=shape).astype(dt))
        else:
            out.append(np.zeros(shape, dt))
    return out


def _measure(session: Any, runs: int, budget: float) -> float:
    session.benchmark_loop(1)  # warm-up: first-run allocations, caches
    n, total = 0, 0.0
    per = []
    while n < runs and total < budget:
        t = session.benchmark_loop(1)
        per.append(t)
        total += t
        n += 1
    return float(np.median(per) * 1000.0)


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
    seeded random inputs, compared with the CPU (``rtol``/``atol`` from the
    policy's ``auto`` section, default 1e-3/1e-4) and timed. The record
    ``{"choice", "figures", "key", "created", "cached"}`` is stored under
    ``<cache>/accel/auto`` keyed by model sha256, runtime version and
    device, so the next start reads it instead of measuring again.
    """
    from .session import Session

    m = model if isinstance(model, Model) else Model.load(model)
    pol = policy if policy is not None else active_policy()
    path = _auto_cache_path(m)
    if not refresh and path.is_file():
        try:
            record = json.loads(path.read_text())
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
    usable = {r.spec or r.name: r for r in accelerators(policy=pol)}

    cpu = Session(m, accelerator="cpu")
    inputs = _trial_inputs(cpu)
    reference = cpu.run(inputs)
    figures: dict[str, dict[str, Any]] = {}
    for cand in dict.fromkeys(cands):
        row = usable.get(cand)
        if cand != "cpu" and row is not None and not row.usable:
            figures[cand] = {"ok": False, "stage": "detection", "error": row.reason}
            continue
        if cand == "cpu":
            session = cpu
        else:
            try:
                session = Session(m, accelerator=[cand], allow_cpu_fallback=False,
                                  plugin_options=plugin_opts.get(cand))
            except EdgepipeError as exc:
                figures[cand] = {"ok": False, "stage": "compile", "error": str(exc)}
                continue
        try:
            out = session.run(inputs)
            worst = max(
                (float(np.max(np.abs(out[k].astype(np.float64) - reference[k].astype(np.float64))))
                 if out[k].size else 0.0) for k in reference
            ) if reference else 0.0
            match = all(np.allclose(out[k], reference[k], rtol=rtol, atol=atol) for k in reference)
            median_ms = _measure(session, runs, budget)
        except EdgepipeError as exc:
            figures[cand] = {"ok": False, "stage": "run", "error": str(exc)}
            continue
        figures[cand] = {"ok": match, "median_ms": median_ms, "max_abs_diff": worst,
                         "events": session.events}
        if not match:
            figures[cand]["error"] = f"outputs differ from the CPU (max |diff| {worst:g})"
    good = [(f["median_ms"], c) for c, f in figures.items() if f.get("ok")]
    choice = min(good)[1] if good else "cpu"
    record = {
        "choice": choice,
        "figures": figures,
        "plugin_options": plugin_opts.get(choice, {}),
        "key": {"model_sha256": m.sha256, "runtime": runtime_version(), **device_facts()},
        "tolerance": {"rtol": rtol, "atol": atol},
        "created": time.time(),
    }
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=2, default=str))
    os.replace(tmp, path)
    record["cached"] = False
    return record


# -- partial delegation ------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _op_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as schema

    return {v: k for k, v in vars(schema.BuiltinOperator).items() if isinstance(v, int)}


def delegation_report(
    model: Model | str | os.PathLike[str],
    spec: str = "gpu",
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
    from .session import Session

    m = model if isinstance(model, Model) else Model.load(model)
    choice = resolve_accelerator(m, spec, plugin_options=plugin_options)
    session = Session(m, **choice.kwargs())
    raw = session.delegation
    on = session.accelerator
    ops = _op_names()

    def named(codes: Sequence[int]) -> list[str]:
        return [ops.get(int(c), f"op{c}") for c in codes]

    observed = bool(raw.get("observed")) and on != "cpu"
    return {
        "requested": spec,
        "accelerator": on,
        "fully_accelerated": bool(raw.get("fully_accelerated")),
        "non_cpu_fully_accelerated": bool(raw.get("non_cpu_fully_accelerated")),
        "plugin_ops": named(raw.get("plugin_ops", [])) if observed else [],
        "accelerator_kernels": list(raw.get("accelerator_kernels", [])) if observed else [],
        "cpu_ops": (named(raw.get("cpu_ops", [])) + list(raw.get("cpu_custom_ops", [])))
        if observed else None,
        "fallbacks": session.events,
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
    for e in report["fallbacks"]:
        lines.append(f"fallback: {e['from']} -> {e['to'] or '(none)'} at {e['stage']}: "
                     f"{e['error'].splitlines()[0] if e['error'] else ''}")
    return "\n".join(lines)


def bench_fields(runner: Any) -> dict[str, Any]:
    """``{"accelerator", "fallbacks"}`` of a Session or Pool for ``bench --json``.

    For a pool, ``accelerator`` is the accelerator of most workers and
    ``worker_accelerators`` lists each one.
    """
    if hasattr(runner, "stats") and hasattr(runner, "workers"):
        per_worker = list(runner.stats()["worker_accelerators"])
        acc = max(set(per_worker), key=per_worker.count) if per_worker else "cpu"
        return {"accelerator": acc, "worker_accelerators": per_worker,
                "fallbacks": runner.events()}
    return {"accelerator": runner.accelerator, "fallbacks": runner.events}


# -- crash safety: opt-in subprocess probe ------------------------------------


def probe_in_subprocess(
    model: str | os.PathLike[str],
    accelerator: str,
    *,
    plugin_options: Mapping[str, str] | None = None,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Compile and first-run ``accelerator`` on ``model`` in a child process.

    Opt-in isolation for accelerators not trusted to stay alive: a child
    killed by a signal (or timing out) puts the accelerator on the denylist
    and this process carries on. Returns ``{"ok", "accelerator", "error",
    "returncode"}``.
    """
    spec = names.normalize(accelerator)
    cmd = [sys.executable, "-m", "edgepipe.accel.probe", str(model), spec,
           json.dumps(dict(plugin_options or {}))]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        crash.deny(spec, f"subprocess probe timed out after {timeout} s")
        return {"ok": False, "accelerator": spec, "error": "timeout", "returncode": None}
    if proc.returncode < 0:
        crash.deny(spec, f"subprocess probe killed by signal {-proc.returncode}: "
                         f"{proc.stderr.strip()[-500:]}")
        crash.sweep(force=True)
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        result = {"ok": False, "accelerator": spec,
                  "error": proc.stderr.strip()[-2000:] or f"exit {proc.returncode}"}
    result["returncode"] = proc.returncode
    return result


def clear_denylist(accelerator: str | None = None) -> int:
    """Forget crash-denied accelerators (all, or one); returns how many entries went."""
    return crash.clear(names.normalize(accelerator) if accelerator else None)


# -- CLI -------------------------------------------------------------------------


def _cmd_accelerators(args: argparse.Namespace) -> int:
    rows = accelerators(plugins=args.plugin or ())
    if args.json:
        doc = {"runtime": runtime_version(), "device": device_facts(),
               "accelerators": [r.as_dict() for r in rows]}
        print(json.dumps(doc, indent=2))
    else:
        print(format_table(rows))
    return 0


def add_accelerators_parser(subparsers: Any) -> None:
    """Register ``edgepipe accelerators [--json] [--plugin LIB.so]...``.

    The parser's ``func`` takes the parsed namespace and returns the exit code.
    """
    p = subparsers.add_parser(
        "accelerators", help="list accelerators and whether they are usable here",
        description="Every accelerator the runtime knows, whether it is usable on this "
                    "machine, and why not.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--plugin", action="append", metavar="LIB.so",
                   help="also check this delegate plugin (repeatable)")
    p.set_defaults(func=_cmd_accelerators)


class _CallableModule(types.ModuleType):
    # `edgepipe.accelerators()` must work whether the attribute resolves to
    # this module (after any `import edgepipe.accelerators`) or not.
    def __call__(
        self, plugins: Sequence[str] = (), *, policy: Policy | None = None
    ) -> list[AcceleratorInfo]:
        return accelerators(plugins, policy=policy)


sys.modules[__name__].__class__ = _CallableModule
