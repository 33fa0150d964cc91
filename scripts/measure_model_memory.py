"""Memory a model costs per process: RSS and PSS of N processes holding it.

Measures what edgepipe's sealed copies of model bytes and weight caches cost
(see docs/models.md): each of ``--procs`` processes loads the model (and
hashes it, which touches every byte), then optionally starts a pool with a
weight cache and runs every worker once; the parent reads each child's
``/proc/PID/smaps_rollup`` while all of them are alive, so pages shared
between processes (a file mapping, the page cache) show in PSS as shared.

To compare two builds, give each one as ``LABEL=PYTHONPATH`` (a directory
holding an ``edgepipe`` package with its ``_core`` extension); the children
run with ``python -S`` and that path first, then this interpreter's
site-packages. Without ``--build``, the installed edgepipe is measured.

    python scripts/measure_model_memory.py --procs 2 --pool \\
        --build old=/tmp/old/python --build new=/tmp/new/python MODEL.tflite ...

Prints one JSON object: {label: {model: {stage: {field: kB summed over procs}}}}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

_FIELDS = ("Rss", "Pss", "Pss_Anon", "Pss_File", "Pss_Shmem")

_CHILD = r"""
import os, sys
import numpy as np
import edgepipe

def ready(stage):
    print(stage, flush=True)
    sys.stdin.readline()

path, pool_workers = sys.argv[1], int(sys.argv[2])
edgepipe.load_runtime()
ready("runtime")
model = edgepipe.Model.load(path)
model.sha256  # reads every byte: the mapping is fully resident
ready("model")
if pool_workers:
    rng = np.random.default_rng(0)
    x = [rng.standard_normal(t.shape).astype(t.dtype) if t.dtype.kind == "f"
         else np.zeros(t.shape, t.dtype) for t in model.inputs]
    with edgepipe.Pool(model, workers=pool_workers, weight_cache=True) as pool:
        for _ in range(50 * pool_workers):
            pool.run(x)
            if min(pool.stats().get("worker_runs", [1])) > 0:
                break
        ready("pool")
"""


def _rollup(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        if key in _FIELDS:
            out[key] = int(rest.split()[0])
    return out


def measure(model: Path, pythonpath: str | None, procs: int, workers: int,
            env: dict[str, str]) -> dict[str, dict[str, int]]:
    """Sum over ``procs`` live children of each smaps field, per stage."""
    child_env = dict(env)
    cmd = [sys.executable, "-c", _CHILD, str(model), str(workers)]
    if pythonpath:
        site = sysconfig.get_paths()["purelib"]
        child_env["PYTHONPATH"] = os.pathsep.join([pythonpath, site])
        cmd.insert(1, "-S")
    children = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True, env=child_env)
                for _ in range(procs)]
    stages: dict[str, dict[str, int]] = {}
    try:
        while True:
            names = [c.stdout.readline().strip() for c in children]  # type: ignore[union-attr]
            if not names[0]:
                break
            total = dict.fromkeys(_FIELDS, 0)
            for c in children:
                for key, kb in _rollup(c.pid).items():
                    total[key] += kb
            stages[names[0]] = total
            for c in children:
                c.stdin.write("\n")  # type: ignore[union-attr]
                c.stdin.flush()  # type: ignore[union-attr]
    finally:
        for c in children:
            c.stdin.close()  # type: ignore[union-attr]
            c.wait(timeout=60)
    return stages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--pool", type=int, default=0, metavar="WORKERS",
                        help="also start a pool with this many workers and a weight cache")
    parser.add_argument("--build", action="append", default=[], metavar="LABEL=PYTHONPATH")
    args = parser.parse_args()
    builds = dict(b.split("=", 1) for b in args.build) or {"installed": ""}
    result: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, EDGEPIPE_CACHE_DIR=cache)
        for label, pythonpath in builds.items():
            result[label] = {}
            for model in args.models:
                if args.pool:  # build the weight cache first: every child maps a finished one
                    measure(model, pythonpath or None, 1, args.pool, env)
                stages = measure(model, pythonpath or None, args.procs, args.pool, env)
                base = stages["runtime"]
                result[label][model.stem] = {
                    "size_kB": model.stat().st_size // 1024,
                    **{stage: {k: v - base[k] for k, v in vals.items()}
                       for stage, vals in stages.items() if stage != "runtime"},
                }
    json.dump({"procs": args.procs, "pool_workers": args.pool, "results": result},
              sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
