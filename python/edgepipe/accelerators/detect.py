"""Detection: every accelerator this runtime knows, whether it is usable here, and why not.

Used by ``edgepipe accelerators`` and by the auto trial, which skips what is
not usable.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import _args, _core, models
from .._runtime import load_runtime
from ..model import Model
from . import crash, names
from .policy import Policy, active_policy, facts_for

# Classic TFLite delegates edgepipe knows by name. They run as external
# delegate plugins (tflite_plugin_create_delegate) through the delegate
# dispatcher; these are the library names searched for each.
CLASSIC_DELEGATES: dict[str, tuple[str, ...]] = {
    "edgetpu": ("libedgetpu.so.1",),
    "nnapi": ("libedgepipe_nnapi_delegate.so", "libnnapi_delegate_plugin.so"),
    "hexagon": ("libedgepipe_hexagon_delegate.so", "libhexagon_delegate_plugin.so"),
    "gpu-delegate": (
        "libtensorflowlite_gpu_delegate_plugin.so",
        "libtensorflowlite_gpu_delegate.so",
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
    return Model.from_bytes(models.build_add_mul())


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


def detect(plugins: Sequence[str] = (), *, policy: Policy | None = None) -> list[AcceleratorInfo]:
    """Every accelerator this runtime knows, whether it is usable here, and why not.

    Args:
        plugins: extra delegate plugin libraries to check (``EDGEPIPE_DELEGATE_PLUGINS``,
            a ``os.pathsep`` list, and the policy's ``plugins`` are always checked).
        policy: allow/deny rules (default: ``EDGEPIPE_ACCELERATOR_POLICY`` or none).
    """
    plugins = _args.names("plugins", plugins)
    rt = load_runtime()
    pol = policy if policy is not None else active_policy()
    registered = list(rt.registered_accelerators())
    by_bit = {bit: [a["name"] for a in registered if a["hardware"] & bit] for bit in (1, 2, 4)}
    rows = [AcceleratorInfo("cpu", "builtin", True, "", ", ".join(by_bit[1]) or "XNNPACK", "cpu")]

    if not by_bit[2]:
        rows.append(
            AcceleratorInfo(
                "gpu",
                "builtin",
                False,
                f"no GPU accelerator library could be loaded from {rt.library_dir}",
                "",
                "gpu",
            )
        )
    else:
        stage, error = _probe("gpu")
        reason = ""
        if error:
            reason = "no GPU adapter" if "No adapters found" in error else f"GPU {stage} failed"
            reason += f": {_short(error)}"
        rows.append(
            AcceleratorInfo("gpu", "builtin", not error, reason, ", ".join(by_bit[2]), "gpu")
        )

    dispatch_dir = Path(rt.dispatch_library_dir)
    dispatch_libs = sorted(p.name for p in dispatch_dir.glob("libLiteRtDispatch_*.so"))
    if not by_bit[4]:
        rows.append(
            AcceleratorInfo(
                "npu", "builtin", False, "no NPU accelerator registered by the runtime", "", "npu"
            )
        )
    elif not dispatch_libs:
        rows.append(
            AcceleratorInfo(
                "npu",
                "builtin",
                False,
                f"no vendor dispatch library (libLiteRtDispatch_*.so) in {dispatch_dir}",
                ", ".join(by_bit[4]),
                "npu",
            )
        )
    else:
        rows.append(
            AcceleratorInfo(
                "npu",
                "builtin",
                True,
                "",
                f"{', '.join(by_bit[4])} with {', '.join(dispatch_libs)}; "
                "runs only models compiled for the NPU (DISPATCH_OP)",
                "npu",
            )
        )

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
            rows.append(
                AcceleratorInfo(
                    label,
                    "classic",
                    supported,
                    "" if supported else "runtime cannot host plugins",
                    f"{_CLASSIC_NOTES[label]}: {found}",
                    names.PLUGIN_PREFIX + found,
                )
            )
        else:
            rows.append(
                AcceleratorInfo(
                    label,
                    "classic",
                    False,
                    f"library not found ({', '.join(libs)})",
                    _CLASSIC_NOTES[label],
                    "",
                )
            )

    extra = [p for p in os.environ.get("EDGEPIPE_DELEGATE_PLUGINS", "").split(os.pathsep) if p]
    specs = [
        names.normalize(p if names.is_plugin_spec(p) else names.PLUGIN_PREFIX + p)
        for p in [*extra, *plugins]
    ]
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
