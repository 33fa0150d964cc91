#!/usr/bin/env python3
"""edgepipe versus its peers, in one run: throughput, latency, memory, per-call overhead.

Prints ONE JSON document on stdout (progress goes to stderr) with a ``targets``
section: each target's measured ratio, its threshold and whether it was met.

    PYTHONPATH=/tmp/pyB python benchmarks/run_benchmarks.py [--quick] [--out r.json]
        [--plot r.png] [--models add_mul,weight_heavy] [--duration 3] [--workers 1,2,3,4]

Contenders per model (1 CPU thread per instance):

- edgepipe ``Pool`` with N workers, driven by 2N closed-loop client threads,
- N threads each owning one ``ai_edge_litert`` ``Interpreter``,
- N threads each owning one ``ai_edge_litert`` ``CompiledModel``.

Memory is measured in fresh subprocesses, one per (contender, model, K instances):
``RssAnon`` after K instances ran once minus before; cost of an extra instance =
delta(K=2) - delta(K=1). See docs/benchmarks.md for the methodology.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib

TARGETS = {
    "scaling_2_workers": 1.9,  # pool(2) / pool(1) throughput, >=
    "vs_best_peer_1_thread": 1.8,  # pool(2) / best peer at 1 thread, >=
    "pool_run_overhead_us": 15.0,  # pool.run - bare C++ loop per call, <=
    "extra_worker_vs_compiled_model": 1.0,  # anon per extra worker / per extra CM, <=
    "weight_heavy_extra_worker_vs_compiled_model": 0.75,  # same, weight-heavy model, <=
}
#: Memory differences below this are measurement noise (malloc bins, page
#: granularity): a worker within it of the peer still meets "never more than".
MEMORY_TOLERANCE_MB = 0.25


def log(msg: str) -> None:
    """Progress on stderr (stdout carries only the JSON document)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _finite(x: float) -> float | None:
    return x if isinstance(x, (int, float)) and math.isfinite(x) else None


# -- throughput ---------------------------------------------------------------

CONTENDERS = ("pool", "interpreter", "compiled_model", "bare_loop")
PEERS = ("interpreter", "compiled_model")


def _schedule(workers: tuple[int, ...], rounds: int) -> list[list[tuple[str, int]]]:
    """The order of (contender, N) segments in each round.

    Every point runs once per round; both the worker counts and the contenders
    rotate from round to round, so no point is always first or always after the
    same neighbour. Ratios are then taken between points of the same round.
    """
    out = []
    for r in range(rounds):
        ns = workers[r % len(workers) :] + workers[: r % len(workers)]
        cs = CONTENDERS[r % len(CONTENDERS) :] + CONTENDERS[: r % len(CONTENDERS)]
        out.append([(c, n) for n in ns for c in cs])
    return out


def throughput_for_model(name: str, path: Path, cfg: benchlib.RunConfig) -> dict[str, Any]:
    """Closed-loop throughput and latency of every contender at every worker count.

    All contenders at all worker counts are alive together (a pool per N; peers
    and bare loops use their first N instances) and take turns in ``cfg.rounds``
    short rounds (see ``_schedule``). The machine's speed drifts by tens of
    percent over minutes on this shared VM; comparing points of the same round
    and taking the median over rounds cancels the drift.
    """
    edgepipe = benchlib.import_edgepipe()
    model = edgepipe.Model.load(path)
    inputs = benchlib.edgepipe_inputs(model)
    top = max(cfg.workers)
    seg = cfg.duration / cfg.rounds
    pools = {
        n: edgepipe.Pool(model, workers=n, threads=1, weight_cache=True, queue_size=max(64, 4 * n))
        for n in cfg.workers
    }
    instances: dict[str, list[Any]] = {}
    try:
        bares = [benchlib.BareLoopPeer(model) for _ in range(top)]
        runs_per_call = bares[0].runs_per_call
        for b in bares:
            b.runs_per_call = runs_per_call
        instances.update(
            {
                "interpreter": [benchlib.InterpreterPeer(path) for _ in range(top)],
                "compiled_model": [benchlib.CompiledModelPeer(path) for _ in range(top)],
                "bare_loop": bares,
            }
        )

        def calls(c: str, n: int) -> list[Any]:
            if c == "pool":
                pool = pools[n]

                def pool_call() -> None:
                    pool.run(inputs)

                return [pool_call] * (2 * n)
            return [p.run for p in instances[c][:n]]

        rounds: dict[tuple[str, int], list[dict[str, Any]]] = {}
        seen: set[tuple[str, int]] = set()
        for order in _schedule(cfg.workers, cfg.rounds):
            for c, n in order:
                warm = cfg.round_warmup if (c, n) in seen else cfg.warmup
                seen.add((c, n))
                rounds.setdefault((c, n), []).append(
                    benchlib.closed_loop(
                        calls(c, n),
                        seg,
                        warm,
                        runs_per_call=runs_per_call if c == "bare_loop" else 1,
                    )
                )
        stats = {n: pool.stats() for n, pool in pools.items()}
    finally:
        for pool in pools.values():
            pool.close()
        instances.clear()
    result: dict[str, Any] = {c: {} for c in CONTENDERS}
    for n in cfg.workers:
        for c in CONTENDERS:
            summary = benchlib.summarize_rounds(rounds[(c, n)])
            summary["instances"] = n
            if c == "pool":
                summary["pool_run_time_us"] = stats[n].get("run_time")
            if c == "bare_loop":
                summary["runs_per_call"] = runs_per_call
            result[c][str(n)] = summary
        log(
            f"{name} N={n}: "
            + ", ".join(
                f"{c} {result[c][str(n)]['throughput_per_s']:.1f}/s "
                f"({result[c][str(n)]['cpu_cores']:.2f} cores, others "
                f"{result[c][str(n)]['other_cores']:.2f})"
                for c in CONTENDERS
            )
        )
    return result


# -- memory (subprocesses) ------------------------------------------------------


def _child_env(cache_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    env["EDGEPIPE_CACHE_DIR"] = cache_dir
    # The children must import the same edgepipe as this process.
    edgepipe = benchlib.import_edgepipe()
    pkg_parent = str(Path(edgepipe.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(
        [pkg_parent, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    )
    return env


def _run_child(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def memory_for_model(name: str, path: Path, env: dict[str, str]) -> dict[str, Any]:
    """Per-extra-instance memory of every contender, K=1 and K=2 in fresh processes."""
    # Build the weight-cache file first, so that K=1 and K=2 both map a finished one.
    _run_child(["--child-memory", "pool_weight_cache", str(path), "1"], env)
    out: dict[str, Any] = {}
    for contender in benchlib.MEMORY_CONTENDERS:
        one = _run_child(["--child-memory", contender, str(path), "1"], env)
        two = _run_child(["--child-memory", contender, str(path), "2"], env)
        extra = {k: (two["delta_kb"][k] - one["delta_kb"][k]) / 1024.0 for k in one["delta_kb"]}
        out[contender] = {
            "first_instance_mb": {k: v / 1024.0 for k, v in one["delta_kb"].items()},
            "extra_instance_mb": extra,
            "k1": one,
            "k2": two,
        }
        log(
            f"{name}: {contender} extra instance RssAnon {extra['RssAnon']:.1f} MB "
            f"(VmRSS {extra['VmRSS']:.1f} MB)"
        )
    return out


# -- targets ------------------------------------------------------------------------


def _target(
    value: float | None, threshold: float, higher_is_better: bool, **detail: Any
) -> dict[str, Any]:
    met: bool | None
    if value is None:
        met = None
    else:
        met = value >= threshold if higher_is_better else value <= threshold
    return {
        "value": value,
        "threshold": threshold,
        "comparison": ">=" if higher_is_better else "<=",
        "met": met,
        **detail,
    }


def _paired_ratios(num: list[float], den: list[float]) -> list[float]:
    """num[r] / den[r] for every round r (points measured in the same round)."""
    return [a / b for a, b in zip(num, den) if b > 0]


def _median(values: list[float]) -> float | None:
    return _finite(float(statistics.median(values))) if values else None


def compute_targets(report: dict[str, Any]) -> dict[str, Any]:
    """Every target's ratio, threshold and verdict (a miss is reported as met=false).

    Throughput targets are judged on the real models (``benchlib.TARGET_CLASSES``);
    on the synthetic models the same ratios are reported as diagnostics. A ratio
    is the median over rounds of the two points' throughputs in the same round.
    """
    targets: dict[str, Any] = {}
    diagnostics: dict[str, Any] = {}
    for name, m in report["models"].items():
        tp = m.get("throughput")
        if tp and "1" in tp["pool"] and "2" in tp["pool"]:
            out = targets if m.get("role") in benchlib.TARGET_CLASSES else diagnostics

            def rounds_of(c: str, n: str, tp: dict[str, Any] = tp) -> list[float]:
                return list(tp[c][n]["throughput_rounds_per_s"])

            p1, p2 = rounds_of("pool", "1"), rounds_of("pool", "2")
            scaling = _paired_ratios(p2, p1)
            pool_ratio = _median(scaling)
            detail: dict[str, Any] = {
                "model_class": m.get("role"),
                "pool_1w_per_s": tp["pool"]["1"]["throughput_per_s"],
                "pool_2w_per_s": tp["pool"]["2"]["throughput_per_s"],
                "ratio_of_medians": _finite(
                    tp["pool"]["2"]["throughput_per_s"] / tp["pool"]["1"]["throughput_per_s"]
                ),
                "other_cores_during_pool_2w": tp["pool"]["2"].get("other_cores"),
                "pool_2w_cpu_cores": tp["pool"]["2"].get("cpu_cores"),
            }
            if "bare_loop" in tp and "2" in tp["bare_loop"]:
                # Not the target: what two bare C++ loops on two threads reach over one,
                # measured in the same rounds: the machine's own ceiling for the ratio.
                ceiling = _median(
                    _paired_ratios(rounds_of("bare_loop", "2"), rounds_of("bare_loop", "1"))
                )
                detail["machine_ceiling_2_vs_1"] = ceiling
                if ceiling and pool_ratio:
                    detail["pool_scaling_vs_ceiling"] = _finite(pool_ratio / ceiling)
            out[f"scaling_2_workers/{name}"] = _target(
                pool_ratio, TARGETS["scaling_2_workers"], True, **detail, ratio_rounds=scaling
            )
            # The best peer is the one with the higher median; its rounds are then
            # paired with the pool's. (A per-round max of the two peers would pick
            # whichever was lucky in each round: biased upwards by the noise.)
            peers = {k: tp[k]["1"]["throughput_per_s"] for k in PEERS}
            best_name = max(peers, key=lambda k: peers[k])
            vs_peer = _paired_ratios(p2, rounds_of(best_name, "1"))
            out[f"vs_best_peer_1_thread/{name}"] = _target(
                _median(vs_peer),
                TARGETS["vs_best_peer_1_thread"],
                True,
                model_class=m.get("role"),
                pool_2w_per_s=detail["pool_2w_per_s"],
                best_peer=best_name,
                best_peer_1t_per_s=peers[best_name],
                peer_2t_per_s={k: tp[k]["2"]["throughput_per_s"] for k in PEERS},
                ratio_rounds=vs_peer,
            )
        mem = m.get("memory")
        if mem:
            w = mem["pool_weight_cache"]["extra_instance_mb"]["RssAnon"]
            w_nowc = mem["pool_no_weight_cache"]["extra_instance_mb"]["RssAnon"]
            cm = mem["compiled_model"]["extra_instance_mb"]["RssAnon"]
            it = mem["interpreter"]["extra_instance_mb"]["RssAnon"]
            ratio = _finite(w / cm) if cm > 0 else None
            detail = {
                "extra_worker_anon_mb": w,
                "extra_worker_no_weight_cache_anon_mb": w_nowc,
                "extra_compiled_model_anon_mb": cm,
                "extra_interpreter_anon_mb": it,
                "tolerance_mb": MEMORY_TOLERANCE_MB,
            }
            t = _target(ratio, TARGETS["extra_worker_vs_compiled_model"], False, **detail)
            if w - cm <= MEMORY_TOLERANCE_MB and t["met"] is not True:
                # Both costs are within noise of each other (e.g. a tiny model whose
                # instances cost ~0 MB): a ratio of two noise values means nothing.
                t["met"] = True
                t["note"] = f"within {MEMORY_TOLERANCE_MB} MB of the peer: met by tolerance"
            targets[f"extra_worker_vs_compiled_model/{name}"] = t
            if name == benchlib.WEIGHT_HEAVY_MODEL:
                targets[f"weight_heavy_extra_worker_vs_compiled_model/{name}"] = _target(
                    ratio, TARGETS["weight_heavy_extra_worker_vs_compiled_model"], False, **detail
                )
    ov = report.get("overhead")
    if ov:
        targets["pool_run_overhead_us"] = _target(
            ov["pool_run_overhead_us"],
            TARGETS["pool_run_overhead_us"],
            False,
            model=ov["model"],
            pool_run_us=ov["pool_run_us"],
            bare_cpp_loop_us=ov["bare_cpp_loop_us"],
            best_round_overhead_us=ov["best_round"]["pool_run_overhead_us"],
        )
    verdicts = [t["met"] for t in targets.values()]
    targets["_summary"] = {
        "met": sum(1 for v in verdicts if v is True),
        "missed": sorted(k for k, t in targets.items() if t.get("met") is False),
        "total": len(verdicts),
        "judged_on_classes": list(benchlib.TARGET_CLASSES),
        "diagnostics_below_threshold": sorted(
            k for k, t in diagnostics.items() if t.get("met") is False
        ),
    }
    targets["_diagnostics"] = diagnostics
    return targets


# -- plot -------------------------------------------------------------------------


def plot(report: dict[str, Any], out: Path) -> None:
    """Throughput vs workers per model (with peer lines) and RSS per extra instance."""
    from edgepipe.profiling.plot import plot_benchmark_report

    plot_benchmark_report(report, out, memory_contenders=benchlib.MEMORY_CONTENDERS)


# -- markdown ---------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    """Markdown tables of a report (for docs/benchmarks.md)."""
    lines = [
        f"Run {report['meta']['date']}, {report['meta']['cpus']} CPUs, load average "
        f"{report['meta']['loadavg_start'][0]:.1f} at start, "
        f"{report['meta']['elapsed_s']} s.",
        "",
    ]
    lines += [
        "| model | N | pool /s | Interpreter /s | CompiledModel /s | bare C++ loop /s "
        "| pool p50/p99 µs | Interp. p50/p99 µs | CM p50/p99 µs | cores pool/others |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in report["models"].items():
        tp = m.get("throughput")
        if not tp:
            continue
        for n in sorted(tp["pool"], key=int):
            cells = [name, n]
            cells += [f"{tp[c][n]['throughput_per_s']:.0f}" if c in tp else "" for c in CONTENDERS]
            cells += [
                f"{tp[c][n]['p50_us']:.0f} / {tp[c][n]['p99_us']:.0f}" for c in ("pool", *PEERS)
            ]
            pool = tp["pool"][n]
            cells.append(f"{pool['cpu_cores']:.2f} / {pool.get('other_cores', float('nan')):.2f}")
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    if any(m.get("memory") for m in report["models"].values()):
        lines += [
            "",
            "RssAnon MB per extra instance (last column: Pss MB per extra pool worker):",
            "",
            "| model | pool, weight cache | pool, no weight cache "
            "| Interpreter | CompiledModel | pool Pss |",
            "|---|---|---|---|---|---|",
        ]
    for name, m in report["models"].items():
        mem = m.get("memory")
        if not mem:
            continue
        cells = [name] + [
            f"{mem[c]['extra_instance_mb']['RssAnon']:.2f}" for c in benchlib.MEMORY_CONTENDERS
        ]
        pss = mem["pool_weight_cache"]["extra_instance_mb"].get("Pss")
        cells.append(f"{pss:.2f}" if pss is not None else "")
        lines.append("| " + " | ".join(cells) + " |")
    ov = report.get("overhead")
    if ov:
        lines += [
            "",
            f"Per-call overhead ({ov['model']}, 1 worker, 1 thread): pool.run "
            f"{ov['pool_run_us']:.2f} µs, session.run {ov['session_run_us']:.2f} µs, "
            f"bare C++ loop {ov['bare_cpp_loop_us']:.2f} µs; pool.run overhead "
            f"{ov['pool_run_overhead_us']:.2f} µs (best round "
            f"{ov['best_round']['pool_run_overhead_us']:.2f} µs).",
        ]
    lines += ["", "| target | value | threshold | met | detail |", "|---|---|---|---|---|"]
    diag = report["targets"].get("_diagnostics", {})
    for key, t in [*report["targets"].items(), *((f"({k})", v) for k, v in diag.items())]:
        if key.startswith("_"):
            continue
        value = "n/a" if t["value"] is None else f"{t['value']:.3g}"
        met = {True: "yes", False: "**no**", None: "n/a"}[t["met"]]
        if key.startswith("("):
            met = {True: "(above)", False: "(below)", None: "n/a"}[t["met"]]
        detail = [t["note"]] if "note" in t else []
        if t.get("machine_ceiling_2_vs_1") is not None:
            detail.append(
                f"machine ceiling {t['machine_ceiling_2_vs_1']:.2f}, pool/ceiling "
                f"{t.get('pool_scaling_vs_ceiling') or float('nan'):.2f}"
            )
        if t.get("best_peer"):
            detail.append(
                f"best peer {t['best_peer']}; peers at 2 threads: "
                + ", ".join(f"{k} {v:.0f}/s" for k, v in t["peer_2t_per_s"].items())
            )
        lines.append(
            f"| {key} | {value} | {t['comparison']} {t['threshold']} | {met} "
            f"| {'; '.join(detail)} |"
        )
    lines += [
        "",
        "Targets are judged on the real models (classes "
        f"{', '.join(report['targets']['_summary'].get('judged_on_classes', []))}); "
        "rows in parentheses are the same ratios on the synthetic models.",
    ]
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------


def _meta(args: argparse.Namespace, cfg: benchlib.RunConfig) -> dict[str, Any]:
    edgepipe = benchlib.import_edgepipe()
    try:
        import importlib.metadata as md

        litert_version = md.version("ai-edge-litert")
    except Exception:  # metadata missing in odd installs: not fatal for a benchmark
        litert_version = None
    return {
        **benchlib.machine_meta(edgepipe),
        "ai_edge_litert": litert_version,
        "quick": args.quick,
        "targets_mode": args.targets,
        "duration_s": cfg.duration,
        "warmup_s": cfg.warmup,
        "rounds": cfg.rounds,
        "round_warmup_s": cfg.round_warmup,
        "throughput_statistic": "median over interleaved rounds (best round also reported)",
        "ratio_statistic": "median over rounds of the ratio of two points of the same round",
        "bare_loop": "N threads each running Session.benchmark_loop on its own session "
        "(C++ loop, no Python per inference): the machine's ceiling",
        "workers": list(cfg.workers),
        "threads_per_instance": 1,
        "pool_clients": "2N closed-loop client threads calling pool.run",
        "peer_clients": "N threads, each owning its own instance",
        "compiled_model_environment": "one LiteRT Environment shared by the CompiledModels",
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="CI mode: 3 models, 1 and 2 workers, short durations (< 3 min)",
    )
    p.add_argument(
        "--targets",
        action="store_true",
        help="the verdict run: the models the targets are judged on, 1 and 2 "
        "workers, 20 rounds (about 11 min); see docs/benchmarks.md",
    )
    p.add_argument(
        "--models",
        help="comma-separated model names "
        f"(default full: {','.join(benchlib.FULL_MODELS)}; "
        f"quick: {','.join(benchlib.QUICK_MODELS)})",
    )
    p.add_argument("--workers", help="comma-separated worker counts (default 1,2,3,4; quick 1,2)")
    p.add_argument(
        "--duration", type=float, help="measured seconds per point and contender (3; quick 1.2)"
    )
    p.add_argument("--warmup", type=float, help="warm-up seconds per point (0.5; quick 0.3)")
    p.add_argument(
        "--rounds", type=int, help="interleaved rounds the duration is split into (6; quick 4)"
    )
    p.add_argument("--skip-memory", action="store_true", help="no memory subprocesses")
    p.add_argument("--skip-throughput", action="store_true", help="no throughput runs")
    p.add_argument("--out", type=Path, help="also write the JSON document here")
    p.add_argument("--plot", type=Path, help="write a PNG plot here (needs matplotlib)")
    p.add_argument(
        "--markdown",
        type=Path,
        metavar="REPORT_JSON",
        help="print markdown tables of an earlier report (targets scored again "
        "from its raw rounds) and exit",
    )
    p.add_argument(
        "--child-memory", nargs=3, metavar=("CONTENDER", "MODEL", "K"), help=argparse.SUPPRESS
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print the JSON report."""
    args = parse_args(argv)
    if args.markdown:
        report = json.loads(args.markdown.read_text())
        # Scored again from the raw rounds: tables always follow today's rules.
        report["targets"] = compute_targets(report)
        print(markdown(report))
        return 0
    if args.child_memory:
        contender, model_path, k = args.child_memory
        print(json.dumps(benchlib.memory_child(contender, model_path, int(k))))
        return 0

    t_start = time.perf_counter()
    cfg = benchlib.RunConfig(
        duration=args.duration or (1.2 if args.quick else 10.0 if args.targets else 3.0),
        warmup=args.warmup if args.warmup is not None else (0.3 if args.quick else 0.5),
        rounds=args.rounds or (4 if args.quick else 20 if args.targets else 6),
        round_warmup=0.1 if args.quick else 0.2,
        workers=tuple(int(w) for w in args.workers.split(","))
        if args.workers
        else ((1, 2) if args.quick or args.targets else (1, 2, 3, 4)),
        overhead_runs=5000 if args.quick else 20000,
        overhead_rounds=5 if args.quick else 9,
    )
    names = (
        args.models.split(",")
        if args.models
        else list(
            benchlib.QUICK_MODELS
            if args.quick
            else benchlib.TARGET_MODELS
            if args.targets
            else benchlib.FULL_MODELS
        )
    )
    paths = benchlib.resolve_models(names)
    edgepipe = benchlib.import_edgepipe()

    with tempfile.TemporaryDirectory(prefix="edgepipe-bench-cache-") as cache_dir:
        # A fresh weight-cache directory: results never depend on a stale cache file.
        os.environ["EDGEPIPE_CACHE_DIR"] = cache_dir
        report: dict[str, Any] = {"meta": _meta(args, cfg), "models": {}}
        for name, path in paths.items():
            m = edgepipe.Model.load(path)
            report["models"][name] = {
                "role": benchlib.MODEL_ROLES[name][0],
                "source": benchlib.MODEL_ROLES[name][1],
                "path": str(path),
                "size_bytes": m.size,
                "constant_bytes": m.describe().get("constant_bytes"),
                "inputs": [t.to_dict() for t in m.inputs],
            }
            del m

        if benchlib.OVERHEAD_MODEL in paths:
            log("per-call overhead: pool.run vs bare C++ loop")
            ov = benchlib.measure_overhead(
                paths[benchlib.OVERHEAD_MODEL], cfg.overhead_runs, cfg.overhead_rounds
            )
            ov["model"] = benchlib.OVERHEAD_MODEL
            report["overhead"] = ov
            log(
                f"pool.run {ov['pool_run_us']:.2f}us, bare loop {ov['bare_cpp_loop_us']:.2f}us, "
                f"overhead {ov['pool_run_overhead_us']:.2f}us"
            )

        if not args.skip_throughput:
            for name, path in paths.items():
                report["models"][name]["throughput"] = throughput_for_model(name, path, cfg)

        if not args.skip_memory:
            env = _child_env(cache_dir)
            for name, path in paths.items():
                report["models"][name]["memory"] = memory_for_model(name, path, env)

    report["targets"] = compute_targets(report)
    report["meta"]["loadavg_end"] = list(os.getloadavg())
    report["meta"]["elapsed_s"] = round(time.perf_counter() - t_start, 1)
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    if args.plot:
        plot(report, args.plot)
        log(f"plot written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
