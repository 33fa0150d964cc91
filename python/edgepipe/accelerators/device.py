"""The facts about this machine that policy rules match and caches are keyed on."""

from __future__ import annotations

import functools
import platform
import re
import shutil
import subprocess
from pathlib import Path


def _android_model() -> str | None:
    getprop = shutil.which("getprop")
    if getprop is None:
        return None
    try:
        out = subprocess.run(
            [getprop, "ro.product.model"], capture_output=True, text=True, timeout=2, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


def _linux_model() -> str | None:
    for path in ("/sys/devices/virtual/dmi/id/product_name", "/proc/device-tree/model"):
        try:
            text = Path(path).read_text(errors="replace").strip("\x00\n ")
        except OSError:
            continue
        if text:
            return text
    return None


@functools.lru_cache(maxsize=1)
def device_facts() -> dict[str, str]:
    """``{"device", "os", "machine"}`` of this machine (the runtime version is added by callers).

    ``device`` is the Android product model, else the DMI product or the
    device-tree model, else the host name's architecture; ``os`` is
    ``<system>-<release>`` in lower case (``linux-6.1.0``, ``android-...``).
    """
    android = _android_model()
    system = "android" if android else platform.system().lower()
    device = android or _linux_model() or platform.machine()
    return {"device": device, "os": f"{system}-{platform.release()}", "machine": platform.machine()}


def slug(text: str) -> str:
    """A file-name-safe form of ``text``."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_")[:60] or "unknown"
