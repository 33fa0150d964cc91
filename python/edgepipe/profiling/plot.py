"""Plots of benchmarks and profiles (matplotlib, the ``[plot]`` extra).

- :func:`plot_bench`: what ``edgepipe bench --plot FILE.png`` writes: latency
  histograms and percentiles per configuration (the best marked),
  throughput, and the per-op profile when there is one.
- :func:`plot_profile`: the per-op profile alone (top ops, coloured by engine).
- :func:`plot_benchmark_report`: the repository's benchmark report
  (``benchmarks/run_benchmarks.py --plot``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

ENGINE_COLOURS = {"XNNPACK": "#4C72B0", "builtin": "#DD8452", "runtime": "#8C8C8C"}


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("plots need matplotlib: pip install 'edgepipe[plot]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _engine_colour(engine: str) -> str:
    return ENGINE_COLOURS.get(engine, "#55A868")


def _profile_axes(ax: Any, prof: dict[str, Any], top: int = 15) -> None:
    rows = sorted(prof["ops"], key=lambda r: -r["total_us"])[:top][::-1]
    labels = [f"{r['name'][:34]} [{r['node']}]" for r in rows]
    values = [r["per_run_us"] / 1e3 for r in rows]
    ax.barh(range(len(rows)), values, color=[_engine_colour(r["engine"]) for r in rows])
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xlabel("ms per run")
    from matplotlib.patches import Patch

    engines = sorted({r["engine"] for r in prof["ops"]})
    ax.legend(
        handles=[
            Patch(
                color=_engine_colour(e),
                label=f"{e} {prof['by_engine_percent'][e]:.1f}% of the rows' time",
            )
            for e in engines
        ],
        fontsize=7,
        loc="lower right",
    )
    ax.set_title(
        f"top {len(rows)} ops ({prof['accelerator']}, threads "
        f"{prof['threads'] or 'default'}); ops alone = "
        f"{100 * prof['op_coverage']:.0f}% of an unprofiled run",
        fontsize=9,
    )
    ax.grid(alpha=0.3, axis="x")


def plot_bench(result: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write the PNG of one ``bench`` result (from :func:`edgepipe.profiling.bench.bench`)."""
    import numpy as np

    plt = _pyplot()
    configs = result["configs"]
    lat_lists: Sequence[Sequence[float]] = result.get("_latencies_ms") or [[] for _ in configs]
    prof = result.get("profile")
    panels = 3 + (1 if prof else 0)
    fig, axes = (
        plt.subplots(2, 2, figsize=(13, 9))
        if panels == 4
        else plt.subplots(1, 3, figsize=(16, 4.8))
    )
    flat = list(np.ravel(axes))
    best = result["best"]["index"]
    labels = [
        ("* " if i == best and len(configs) > 1 else "") + c["label"] for i, c in enumerate(configs)
    ]
    colours = plt.get_cmap("tab10")

    # 1. latency histograms, log-spaced bins shared by every configuration
    ax = flat[0]
    every = [x for lat in lat_lists for x in lat if x > 0]
    if every:
        lo, hi = min(every), max(every)
        bins = np.geomspace(lo * 0.95, hi * 1.05, 40) if hi > lo else 20
        for i, lat in enumerate(lat_lists):
            if lat:
                ax.hist(
                    lat,
                    bins=bins,
                    histtype="step",
                    linewidth=2 if i == best else 1.2,
                    color=colours(i % 10),
                    label=labels[i],
                )
        if hi / max(lo, 1e-9) > 3:
            ax.set_xscale("log")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("requests")
    ax.set_title("latency distribution per configuration", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)

    # 2. percentiles
    ax = flat[1]
    keys = ("p50", "p90", "p99")
    width = 0.8 / len(keys)
    for j, k in enumerate(keys):
        ax.bar(
            [i + (j - 1) * width for i in range(len(configs))],
            [c["latency_ms"][k] for c in configs],
            width,
            label=k,
        )
    ax.set_xticks(range(len(configs)))
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=7)
    ax.set_ylabel("latency (ms)")
    ax.set_title("latency percentiles (* = best throughput)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")

    # 3. throughput
    ax = flat[2]
    ax.bar(
        range(len(configs)),
        [c["throughput_per_s"] for c in configs],
        color=[colours(i % 10) for i in range(len(configs))],
        edgecolor=["black" if i == best else "none" for i in range(len(configs))],
        linewidth=2,
    )
    ax.set_xticks(range(len(configs)))
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=7)
    ax.set_ylabel("inferences / s")
    ax.set_title("throughput", fontsize=9)
    ax.grid(alpha=0.3, axis="y")

    if prof:
        _profile_axes(flat[3], prof)
    name = os.path.basename(result["model"])
    fig.suptitle(
        f"edgepipe bench {name} (LiteRT {result['runtime_version']}, "
        f"{result['settings']['runs']} runs per configuration, "
        f"{os.cpu_count()} CPUs)",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_profile(profile: Any, path: str | os.PathLike[str], top: int = 20) -> None:
    """Write a PNG of one :class:`~edgepipe.profiling.Profile` (or its ``to_dict()``)."""
    plt = _pyplot()
    prof = profile if isinstance(profile, dict) else profile.to_dict()
    fig, ax = plt.subplots(figsize=(9, 0.32 * min(top, len(prof["ops"])) + 1.8))
    _profile_axes(ax, prof, top)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_benchmark_report(
    report: dict[str, Any], path: str | os.PathLike[str], memory_contenders: Sequence[str] = ()
) -> None:
    """Throughput vs workers per model (with peer lines) and RSS per extra instance,
    for the report of ``benchmarks/run_benchmarks.py``."""
    plt = _pyplot()
    models = [n for n, m in report["models"].items() if m.get("throughput")]
    mem_models = [n for n, m in report["models"].items() if m.get("memory")]
    panels = max(1, len(models) + (1 if mem_models else 0))
    cols = min(3, panels)
    rows = math.ceil(panels / cols)
    fig, grid = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.8 * rows), squeeze=False)
    flat_axes = [ax for row in grid for ax in row]
    for ax in flat_axes[panels:]:
        ax.set_visible(False)
    axes = flat_axes[:panels]
    labels = {
        "pool": "edgepipe Pool (N workers)",
        "interpreter": "Interpreter x N threads",
        "compiled_model": "CompiledModel x N threads",
        "bare_loop": "bare C++ loop x N threads (ceiling)",
    }
    for ax, name in zip(axes, models):
        tp = report["models"][name]["throughput"]
        xs: list[int] = []
        for key, style in (
            ("pool", "o-"),
            ("interpreter", "s--"),
            ("compiled_model", "^:"),
            ("bare_loop", "k-"),
        ):
            if key not in tp:
                continue
            xs = sorted(int(k) for k in tp[key])
            ax.plot(xs, [tp[key][str(x)]["throughput_per_s"] for x in xs], style, label=labels[key])
        role = report["models"][name].get("role", "")
        ax.set_title(f"{name} ({role})", fontsize=9)
        values = [v["throughput_per_s"] for k in tp for v in tp[k].values()]
        if values and min(values) > 0 and max(values) / min(values) > 8:
            ax.set_yscale("log")  # the bare loop of a tiny model dwarfs the rest
        ax.set_xlabel("workers / threads")
        ax.set_ylabel("inferences / s")
        ax.set_xticks(xs)
        ax.grid(alpha=0.3)
    if models:
        axes[0].legend(fontsize=7)
    if mem_models:
        ax = axes[panels - 1]
        width = 0.2
        for i, c in enumerate(memory_contenders):
            vals = [
                report["models"][n]["memory"][c]["extra_instance_mb"]["RssAnon"] for n in mem_models
            ]
            ax.bar([j + (i - 1.5) * width for j in range(len(mem_models))], vals, width, label=c)
        ax.set_xticks(range(len(mem_models)))
        ax.set_xticklabels(mem_models, rotation=20, fontsize=7)
        ax.set_ylabel("RssAnon per extra instance (MB)")
        ax.set_title("memory per extra instance")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"edgepipe benchmarks {report['meta']['date']} ({report['meta']['cpus']} CPUs)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
