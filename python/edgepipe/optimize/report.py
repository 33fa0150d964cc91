"""The stdout table and the plot of an :class:`~edgepipe.optimize.OptimizeReport`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .recipes import MissingExtraError

if TYPE_CHECKING:
    from .core import OptimizeReport


def _fmt(value: Any, spec: str = ".3g") -> str:
    if value is None:
        return "-"
    return format(value, spec)


def _nodes(entry: dict[str, Any]) -> list[str]:
    nodes = (entry.get("evaluated_on") or {}).get("nodes") or {}
    return list(nodes)


def format_table(report: OptimizeReport) -> str:
    """One row per model (original first), then accelerator notes and choices."""
    head = (
        f"{'VARIANT':<14} {'SIZE KiB':>9} {'RATIO':>6} {'/FP32':>6} {'LOAD ms':>8} "
        f"{'P50 ms':>8} {'P99 ms':>8} {'SPEEDUP':>7} {'RSS MiB':>7} {'MAX ABS':>9} "
        f"{'MEAN REL':>9} {'COSINE':>8} {'TOP1':>5} {'ACC':>5}"
    )
    lines = [f"model: {report.model}"]
    lines.extend(
        f"normalised: {step['name']} x{step['count']}: {step['detail']}"
        for step in report.normalization
    )
    lines.append(head)
    notes = []
    accel_notes: dict[tuple[str, str], list[str]] = {}
    for e in [report.original, *report.variants]:
        cpu = e["accelerators"]["cpu"]
        rss = e.get("rss_delta_bytes")
        lines.append(
            f"{e['name']:<14} {e['size'] / 1024:>9.1f} {e['size_ratio']:>6.3f} "
            f"{e['size_ratio_fp32']:>6.3f} "
            f"{e['load_ms'] + e['compile_ms']:>8.2f} {cpu['p50_ms']:>8.3f} {cpu['p99_ms']:>8.3f} "
            f"{e['speedup']:>7.2f} {_fmt(rss / 2**20 if rss is not None else None, '.1f'):>7} "
            f"{_fmt(e['max_abs']):>9} {_fmt(e['mean_rel']):>9} {_fmt(e['min_cosine'], '.5f'):>8} "
            f"{_fmt(e['min_top1'], '.2f'):>5} {_fmt(e['accuracy'], '.2f'):>5}"
        )
        for accel, a in e["accelerators"].items():
            if accel == "cpu":
                continue
            if a.get("available"):
                notes.append(
                    f"  {e['name']} on {accel}: p50 {a['p50_ms']:.3f} ms, p99 "
                    f"{a['p99_ms']:.3f} ms" + (f" ({a['why']})" if a.get("why") else "")
                )
            else:
                accel_notes.setdefault((accel, str(a.get("why"))), []).append(e["name"])
        notes.extend(
            f"  {e['name']}: the quantizer warned: {w}" for w in e.get("quantizer_warnings", [])
        )
        notes.extend(
            f"  {e['name']}: normalised output: {fix['name']} x{fix['count']}: {fix['detail']}"
            for fix in e.get("output_fixes", [])
        )
    for (accel, why), names in accel_notes.items():
        notes.append(f"  {accel}: not measured for {', '.join(names)}: {why}")
    for s in report.skipped:
        why = s["why"].splitlines()[0] if s["why"] else ""
        notes.append(f"  skipped {s['recipe']}: {why}")
    if notes:
        lines.append("notes:")
        lines.extend(notes)
    d = report.data
    lines.append(
        f"errors on {d.get('eval_samples')} eval sample(s) from {d.get('eval')}; "
        f"latency: {report.settings.get('runs')} interleaved runs, threads="
        f"{report.settings.get('threads') or 'default'}"
    )
    if report.settings.get("evaluator"):
        nodes = {n for e in [report.original, *report.variants] for n in _nodes(e)}
        lines.append(
            f"eval outputs computed by {report.settings['evaluator']}"
            + (f" on {len(nodes)} node(s)" if nodes else "")
            + "; latency measured here"
        )
    if report.selected is not None:
        if report.selected["name"] is None:
            lines.append(f"selected: none: {report.selected['why']}")
        else:
            lines.append(f"selected: {report.selected['path']}: {report.selected['why']}")
    return "\n".join(lines)


def plot(report: OptimizeReport, path: str | os.PathLike[str]) -> None:
    """Two panels: size vs CPU p50 latency and size vs error, coloured by mean
    relative error (the error scale of the model's own outputs)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import LogNorm
    except ImportError as exc:
        raise MissingExtraError(
            "--plot needs matplotlib; install the optional extra: pip install 'edgepipe[plot]'"
        ) from exc
    entries = [report.original, *report.variants]
    sizes = [e["size"] / 1024 for e in entries]
    p50 = [e["accelerators"]["cpu"]["p50_ms"] for e in entries]
    floor = 1e-7
    errors = [max(e["mean_rel"], floor) for e in entries]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.8), dpi=100, layout="constrained")
    norm = LogNorm(vmin=floor, vmax=max(max(errors), floor * 10))
    points = ax.scatter(sizes, p50, c=errors, cmap="viridis", norm=norm, s=80, edgecolors="black")
    ax2.scatter(sizes, errors, c=errors, cmap="viridis", norm=norm, s=80, edgecolors="black")
    ax2.set_yscale("log")
    for i, (e, x, y, err) in enumerate(zip(entries, sizes, p50, errors)):
        dy = 6 if i % 2 == 0 else -12  # alternate so that neighbours do not overlap
        ax.annotate(e["name"], (x, y), textcoords="offset points", xytext=(6, dy), fontsize=9)
        ax2.annotate(e["name"], (x, err), textcoords="offset points", xytext=(6, dy), fontsize=9)
    cbar = fig.colorbar(points, ax=[ax, ax2])
    cbar.set_label(f"mean relative error vs original (log; {floor:g} = exact)")
    ax.set_xlabel("file size (KiB)")
    ax.set_ylabel("CPU latency p50 (ms)")
    ax.set_title("size vs latency (colour: error)")
    ax2.set_xlabel("file size (KiB)")
    ax2.set_ylabel("mean relative error (worst output)")
    ax2.set_title("size vs error")
    for a in (ax, ax2):
        a.grid(True, alpha=0.3)
    fig.suptitle(
        f"{os.path.basename(report.model)}: {len(entries) - 1} variant(s), "
        f"threads={report.settings.get('threads') or 'default'}"
    )
    fig.savefig(path)
    plt.close(fig)
