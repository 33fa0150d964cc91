"""Child side of :func:`edgepipe.accelerators.probe_in_subprocess`.

``python -m edgepipe.accel.probe MODEL ACCELERATOR [OPTIONS_JSON]`` compiles
MODEL on ACCELERATOR without CPU fallback, runs it once, and prints one JSON
line ``{"ok", "accelerator", "error"}``. If the accelerator kills this
process, the parent sees the signal instead of dying itself.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    """Probe once; exit 0 with a JSON verdict unless the process dies."""
    from ..errors import EdgepipeError
    from ..session import Session

    model, accelerator = argv[0], argv[1]
    options = json.loads(argv[2]) if len(argv) > 2 else {}
    try:
        session = Session(model, accelerator=[accelerator], allow_cpu_fallback=False,
                          plugin_options=options or None)
        session.run([session.input_buffer(i).copy() for i in range(len(session.inputs))])
        verdict = {"ok": True, "accelerator": session.accelerator, "error": ""}
    except EdgepipeError as exc:
        verdict = {"ok": False, "accelerator": accelerator, "error": str(exc)}
    print(json.dumps(verdict))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
