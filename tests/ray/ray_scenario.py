"""The Ray scenarios of tests/test_ray.py, run in one child process.

Started by the test inside a fresh network namespace where only the loopback
interface exists (``unshare -n``), so the local cluster's traffic stays on
127.0.0.1. Prints one JSON object with what it observed; the test asserts on it.

Usage: python ray_scenario.py WORKDIR
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np


def main() -> int:
    work = Path(sys.argv[1])
    import edgepipe
    import ray
    from edgepipe.ray import RayJobError
    from edgepipe.ray.score import read_inputs, score_local, score_ray
    from ray.cluster_utils import Cluster

    report: dict = {}
    model_path = edgepipe.default_model_path()
    model = edgepipe.Model.load(model_path)
    t = model.inputs[0]
    data = work / "inputs"
    data.mkdir()
    rng = np.random.default_rng(7)
    for i in range(1000):
        np.savez(data / f"x{i:04d}.npz", **{t.name: rng.random(t.shape[1:]).astype(t.dtype)})

    # A head node and a second node, each advertising its device kind.
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "resources": {"device:x86": 1}, "include_dashboard": False},
    )
    cluster.add_node(num_cpus=1, resources={"device:rpi5": 1})
    cluster.wait_for_nodes()
    env = dict(os.environ, RAY_ADDRESS=cluster.address)
    cli = [sys.executable, "-m", "edgepipe"]
    try:
        # 1. score locally and on the two-node cluster, from the command line.
        for mode, extra in (("local", []), ("ray", ["--ray", cluster.address])):
            out = subprocess.run(
                [*cli, "score", str(model_path), str(data), "--out", str(work / mode), *extra],
                capture_output=True,
                text=True,
                env=env,
                timeout=600,
            )
            report[f"score_{mode}"] = {
                "rc": out.returncode,
                "stdout": out.stdout[-2000:],
                "stderr": out.stderr[-2000:],
            }
        # 2. the fleet benchmark, one row per node and resource.
        out = subprocess.run(
            [
                *cli,
                "bench",
                str(model_path),
                "--ray",
                cluster.address,
                "--runs",
                "20",
                "--resources",
                "device:rpi5,device:x86",
                "--json",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        report["bench"] = {"rc": out.returncode, "stdout": out.stdout, "stderr": out.stderr[-2000:]}
        # 3. kill a Ray Data actor mid-job: the job finishes or fails cleanly.
        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
        rows = read_inputs(model, data)[:400]
        expected = score_local(model, rows)
        killed: list[int] = []

        def kill_one(done: int, total: int) -> None:
            if killed:
                return
            # Ray titles each actor process "ray::<class>"; Ray Data's are MapWorkers.
            for proc in Path("/proc").iterdir():
                try:
                    title = (proc / "cmdline").read_bytes().split(b"\0")[0]
                except OSError:
                    continue
                if title.startswith(b"ray::") and b"MapWorker" in title:
                    os.kill(int(proc.name), signal.SIGKILL)
                    killed.append(int(proc.name))
                    time.sleep(1.0)
                    return

        kill = {"killed": killed}
        try:
            got = score_ray(model, rows, batch_size=8, progress=kill_one)
            kill["outcome"] = "finished"
            kill["count"] = len(got)
            kill["identical"] = sorted(got) == sorted(expected) and all(
                np.array_equal(got[k][n], expected[k][n]) for k in expected for n in expected[k]
            )
        except RayJobError as exc:
            kill["outcome"] = "failed_cleanly"
            kill["error"] = str(exc)[:500]
        report["kill"] = kill
    finally:
        ray.shutdown()
        cluster.shutdown()
    print("REPORT " + json.dumps(report))
    return 0


if __name__ == "__main__":
    threading.excepthook = lambda args: None
    sys.exit(main())
