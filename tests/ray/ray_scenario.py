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


def pandas_batches(model, data: Path, work: Path) -> dict:
    """Write the outputs PoolPredictor gives for pandas batches to work/pandas*/NAME.npz."""
    import pandas as pd
    import ray
    from edgepipe.ray import ModelRef, PoolPredictor

    name = model.inputs[0].name
    paths = sorted(data.glob("*.npz"))[:48]
    items = []
    for p in paths:
        with np.load(p) as f:
            items.append({"id": p.stem, name: f[name]})
    ref = ModelRef.from_model(model)
    ds = ray.data.from_items(items).map_batches(
        PoolPredictor,
        fn_constructor_kwargs={"model": ref},
        batch_size=16,
        batch_format="pandas",
        concurrency=1,
    )
    rows = ds.take_all()
    out = work / "pandas"
    out.mkdir()
    outputs = [t.name for t in model.outputs]
    for row in rows:
        np.savez(out / f"{row['id']}.npz", **{k: np.asarray(row[k]) for k in outputs})
    # Directly, as Ray Data calls it: a DataFrame in, a DataFrame out.
    direct = PoolPredictor(ref)
    frame = direct(pd.DataFrame({"id": [i["id"] for i in items], name: [i[name] for i in items]}))
    out = work / "pandas_direct"
    out.mkdir()
    for i in range(len(frame)):
        np.savez(out / f"{frame['id'][i]}.npz", **{k: np.asarray(frame[k][i]) for k in outputs})
    return {
        "rows": len(rows),
        "direct_is_dataframe": isinstance(frame, pd.DataFrame),
        "direct_columns": sorted(frame.columns),
    }


def damaged_model(work: Path) -> dict:
    """Ship add_mul with one byte flipped, then intact, then over a poisoned node cache."""
    import dataclasses
    import hashlib

    import edgepipe
    import ray
    from edgepipe.models import generator
    from edgepipe.ray import ModelRef
    from edgepipe.ray.shipping import node_cache_dir

    path = work / "add_mul.tflite"
    path.write_bytes(generator.build_add_mul())
    good = ModelRef.from_model(path)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad = dataclasses.replace(good, data=ray.put(bytes(raw)))
    cached = node_cache_dir() / f"{good.sha256}.tflite"

    @ray.remote(num_cpus=0, max_retries=0)
    def load(ref: ModelRef) -> list[str]:
        return [t.name for t in ref.load().outputs]

    out: dict = {}
    try:
        ray.get(load.remote(bad))
        out["damaged"] = "loaded"
    except Exception as exc:
        cause = getattr(exc, "cause", exc)
        out["damaged"] = {
            "is_model_error": isinstance(cause, edgepipe.errors.ModelError),
            "type": type(cause).__name__,
            "message": str(cause)[:500],
        }
    out["cached_after_damaged"] = cached.exists()
    out["intact"] = ray.get(load.remote(good))
    out["cached_after_intact"] = cached.is_file()
    cached.write_bytes(b"not a model")
    out["after_poison"] = ray.get(load.remote(good))
    out["cache_repaired"] = hashlib.sha256(cached.read_bytes()).hexdigest() == good.sha256
    return out


def refused_model(model, data: Path, work: Path) -> dict:
    """evaluate_models on the default model and one whose only op is unresolvable."""
    from edgepipe.models import generator
    from edgepipe.ray import evaluate_models

    bad = work / "custom_op.tflite"
    bad.write_bytes(generator.build_custom_op())
    name = model.inputs[0].name
    samples = []
    for p in sorted(data.glob("*.npz"))[:4]:
        with np.load(p) as f:
            samples.append({name: f[name][None]})
    good, refused = evaluate_models([model, bad], samples, chunk_size=2)
    return {
        "good_ok": good["ok"],
        "good_outputs": len(good.get("outputs", [])),
        "refused_ok": refused["ok"],
        "refused_error": refused.get("error"),
    }


def optimize_local_and_ray(model_path, work: Path, cli, env, address: str) -> dict:
    """``edgepipe optimize --eval`` locally and with ``--ray``: both reports."""
    import edgepipe

    model = edgepipe.Model.load(model_path)
    t = model.inputs[0]
    evals = work / "eval"
    evals.mkdir()
    rng = np.random.default_rng(11)
    for i in range(12):  # labelled, so accuracy is measured too
        x = rng.random(t.shape[1:]).astype(t.dtype)
        np.savez(evals / f"e{i:02d}.npz", **{t.name: x, "label": np.int64(i % 10)})
    out = {}
    for mode, extra in (("local", []), ("ray", ["--ray", address])):
        proc = subprocess.run(
            [
                *cli,
                "optimize",
                str(model_path),
                "--recipe",
                "dynamic_int8",
                "--recipe",
                "fp16",
                "--eval",
                str(evals),
                "--out",
                str(work / f"opt_{mode}"),
                "--report",
                str(work / f"opt_{mode}.json"),
                "--accelerators",
                "cpu",
                "--threads",
                "1",
                "--runs",
                "2",
                "--warmup",
                "0",
                *extra,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        out[mode] = {
            "rc": proc.returncode,
            "stdout": proc.stdout[-3000:],
            "stderr": proc.stderr[-3000:],
        }
    return out


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
        report["nodes_by_resource"] = {
            res: sorted(n["NodeID"] for n in ray.nodes() if res in n.get("Resources", {}))
            for res in ("device:rpi5", "device:x86")
        }
        # 4. PoolPredictor with pandas batches, in a Ray Data pipeline and called directly.
        report["pandas"] = pandas_batches(model, data, work)
        # 5. a model that arrives damaged is refused on the node; a poisoned cache is redone.
        report["damaged"] = damaged_model(work)
        # 6. evaluate_models: a model no node can compile is reported, not raised.
        report["refused"] = refused_model(model, data, work)
        # 6. optimize --eval, locally and with --ray, from the command line.
        report["optimize"] = optimize_local_and_ray(model_path, work, cli, env, cluster.address)
    finally:
        ray.shutdown()
        cluster.shutdown()
    print("REPORT " + json.dumps(report))
    return 0


if __name__ == "__main__":
    threading.excepthook = lambda args: None
    sys.exit(main())
