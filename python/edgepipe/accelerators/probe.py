"""Both sides of the opt-in subprocess probe of an untrusted accelerator.

Parent: :func:`probe_in_subprocess` starts a child Python that calls
:func:`main` with ``MODEL ACCELERATOR [OPTIONS_JSON]``. Child: :func:`main`
compiles MODEL on ACCELERATOR without CPU fallback, runs it once, and prints
one JSON line ``{"ok", "accelerator", "error"}``. If the accelerator kills
the child, the parent sees the signal instead of dying itself and puts the
accelerator on the denylist.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from .. import _args
from ..errors import EdgepipeError, InputError
from ..model import Model
from ..tensors import TensorInfo, random_inputs
from . import crash, names
from .auto import compile_exact

_CHILD = "import sys; from edgepipe.accelerators.probe import main; sys.exit(main(sys.argv[1:]))"


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
    model_path = _args.path("model", model)
    seconds = _args.timeout("timeout", timeout)
    if not isinstance(accelerator, str):
        raise InputError(f"accelerator must be a name, not {type(accelerator).__name__}")
    spec = names.normalize(accelerator)
    cmd = [
        sys.executable,
        "-c",
        _CHILD,
        str(model_path),
        spec,
        json.dumps(dict(plugin_options or {})),
    ]
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            check=False,
            timeout=None if seconds < 0 else seconds,
        )
    except subprocess.TimeoutExpired:
        crash.deny(spec, f"subprocess probe timed out after {timeout} s")
        return {"ok": False, "accelerator": spec, "error": "timeout", "returncode": None}
    if proc.returncode < 0:
        crash.deny(
            spec,
            f"subprocess probe killed by signal {-proc.returncode}: {proc.stderr.strip()[-500:]}",
        )
        crash.sweep(force=True)
    try:
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        result = {
            "ok": False,
            "accelerator": spec,
            "error": proc.stderr.strip()[-2000:] or f"exit {proc.returncode}",
        }
    result["returncode"] = proc.returncode
    return result


def main(argv: list[str]) -> int:
    """Child side: probe once; exit 0 with a JSON verdict unless the process dies."""
    path, accelerator = argv[0], argv[1]
    options = json.loads(argv[2]) if len(argv) > 2 else {}
    try:
        session = compile_exact(Model.load(path), accelerator, options or None)
        infos = [TensorInfo.from_core(t) for t in session.inputs]
        inputs = random_inputs(infos)
        session.run([inputs[t.name] for t in infos], None)
        verdict = {"ok": True, "accelerator": str(session.accelerator), "error": ""}
    except EdgepipeError as exc:
        verdict = {"ok": False, "accelerator": accelerator, "error": str(exc)}
    print(json.dumps(verdict))
    return 0
