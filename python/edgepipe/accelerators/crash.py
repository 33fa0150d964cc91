"""Crash safety: an accelerator that killed the process is not tried again.

The core writes a *crash mark* file before it initialises, compiles and
first-runs a non-CPU accelerator, and removes it when that attempt ends,
successfully or with an error (cpp/accel/plugin.h). Only a process that died
in between leaves a mark behind. At the next start :func:`sweep` finds marks
of processes that no longer exist and puts their accelerators on the
denylist, as TFLite's mini-benchmark does; the denylist is keyed on the
device and runtime version, so a runtime upgrade tries the accelerator again.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from .._files import atomic_write, cache_dir
from .._runtime import runtime_version
from .device import device_facts

_lock = threading.Lock()
_swept_dirs: set[str] = set()


def accel_dir() -> Path:
    """``<cache>/accel``: marks, the denylist and auto decisions live here."""
    path = cache_dir() / "accel"
    path.mkdir(parents=True, exist_ok=True)
    return path


def marks_dir() -> Path:
    """Where the core writes crash marks."""
    path = accel_dir() / "marks"
    path.mkdir(parents=True, exist_ok=True)
    return path


def denylist_path() -> Path:
    """The denylist file (JSON list of entries)."""
    return accel_dir() / "denylist.json"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    # A zombie has died already: its mark is stale even though the pid exists.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _read_denylist() -> list[dict[str, Any]]:
    try:
        data = json.loads(denylist_path().read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        # A damaged denylist must not stop inference; it is rebuilt from
        # the next stale mark. It is kept aside for inspection.
        broken = denylist_path().with_suffix(f".broken-{int(time.time())}")
        os.replace(denylist_path(), broken)
        return []
    return [e for e in data if isinstance(e, dict) and "accelerator" in e]


def _write_denylist(entries: list[dict[str, Any]]) -> None:
    atomic_write(denylist_path(), json.dumps(entries, indent=2))


def deny(accelerator: str, reason: str) -> None:
    """Put ``accelerator`` on the denylist for this device and runtime version."""
    facts = device_facts()
    entry = {
        "accelerator": accelerator,
        "reason": reason,
        "device": facts["device"],
        "os": facts["os"],
        "runtime": runtime_version(),
        "time": time.time(),
    }
    with _lock:
        entries = [
            e for e in _read_denylist() if not (e["accelerator"] == accelerator and _applies(e))
        ]
        entries.append(entry)
        _write_denylist(entries)


def _applies(entry: dict[str, Any]) -> bool:
    facts = device_facts()
    return entry.get("device") == facts["device"] and entry.get("runtime") == runtime_version()


def denied() -> dict[str, str]:
    """``{accelerator: reason}`` denied on this device and runtime (after a sweep)."""
    sweep()
    with _lock:
        return {e["accelerator"]: str(e.get("reason", "")) for e in _read_denylist() if _applies(e)}


def clear(accelerator: str | None = None) -> int:
    """Remove denylist entries (all, or those of one accelerator); returns how many."""
    with _lock:
        entries = _read_denylist()
        kept = [e for e in entries if accelerator is not None and e["accelerator"] != accelerator]
        _write_denylist(kept)
        return len(entries) - len(kept)


def sweep(force: bool = False) -> list[dict[str, Any]]:
    """Turn stale crash marks into denylist entries; returns the marks handled.

    Runs once per process and marks folder unless ``force``. Marks of live
    processes (including this one) are left alone: they are attempts in
    progress.
    """
    folder = marks_dir()
    key = str(folder)
    if key in _swept_dirs and not force:
        return []
    _swept_dirs.add(key)
    handled = []
    for mark in sorted(folder.glob("*.mark")):
        try:
            info = json.loads(mark.read_text())
        except FileNotFoundError:
            continue  # its attempt just ended
        except (OSError, ValueError):
            # Written by a process that died mid-write: the accelerator is
            # known from the file name, which is what matters.
            info = {"accelerator": mark.name.split(".")[0], "pid": -1, "model": "?"}
        pid = int(info.get("pid", -1))
        if pid == os.getpid() or _pid_alive(pid):
            continue
        acc = str(info.get("accelerator", "?"))
        deny(
            acc,
            f"process {pid} died while initialising, compiling or first running {acc} "
            f"for {info.get('model', '?')} (stale crash mark {mark.name})",
        )
        mark.unlink(missing_ok=True)
        handled.append(info)
    return handled
