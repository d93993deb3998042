"""The chunking experiment's table and plots, from its results file.

Per cell: success rate with its Wilson interval (the evaluation tables' interval,
:func:`nora_ros.trials.results_table.wilson_interval`), and for the continuous measures the
mean with a 95 % Student-t interval over the seeds (time to success over successful trials
only). Safety limits are given as the share of control ticks on which each acted, so 5 Hz and
50 Hz runs compare.
"""

from __future__ import annotations

import math
import pathlib
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from scipy import stats

from nora_ros.experiment.chunking import TrialMetrics
from nora_ros.trials.results_table import wilson_interval


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float

    def text(self, fmt: str = "{:.2f}") -> str:
        if math.isnan(self.mean):
            return "-"
        if math.isnan(self.low):
            return fmt.format(self.mean)
        return f"{fmt.format(self.mean)} [{fmt.format(self.low)}, {fmt.format(self.high)}]"


def mean_interval(values: list[float], confidence: float = 0.95) -> Interval:
    v = np.array([x for x in values if math.isfinite(x)], dtype=np.float64)
    if len(v) == 0:
        return Interval(math.nan, math.nan, math.nan)
    if len(v) == 1:
        return Interval(float(v[0]), math.nan, math.nan)
    half = float(stats.t.ppf(0.5 + confidence / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return Interval(float(v.mean()), float(v.mean() - half), float(v.mean() + half))


@dataclass(frozen=True)
class CellSummary:
    mode: str
    execute_steps: int
    variant: str
    rate: float
    latency: float
    n: int
    successes: int
    success: Interval
    time_s: Interval
    rms_jerk: Interval
    path_length: Interval
    skipped: float
    limits: dict[str, float]


def summarize(results: list[TrialMetrics]) -> list[CellSummary]:
    cells: dict[str, list[TrialMetrics]] = defaultdict(list)
    for r in results:
        cells[r.cell].append(r)
    out = []
    for key, rows in cells.items():
        first = rows[0]
        n = len(rows)
        wins = sum(r.success for r in rows)
        lo, hi = wilson_interval(wins, n)
        ticks = sum(r.ticks for r in rows) or 1
        limits: dict[str, float] = defaultdict(float)
        for r in rows:
            for name, count in r.limits.items():
                limits[name] += count / ticks
        out.append(CellSummary(
            mode=first.mode, execute_steps=first.execute_steps, variant=key.split("|")[0], rate=first.rate,
            latency=first.latency, n=n, successes=wins, success=Interval(wins / n, lo, hi),
            time_s=mean_interval([r.time_s for r in rows if r.success]),
            rms_jerk=mean_interval([r.rms_jerk for r in rows]),
            path_length=mean_interval([r.path_length for r in rows]),
            skipped=float(np.mean([r.skipped for r in rows])), limits=dict(limits)))
    out.sort(key=lambda c: (c.latency, c.variant, c.rate))
    return out


def markdown(summaries: list[CellSummary], latency: float | None = None) -> str:
    """One table (optionally only one latency): a row per mode variant and rate."""
    rows = [c for c in summaries if latency is None or abs(c.latency - latency) < 1e-9]
    head = ("| mode | rate (Hz) | latency (ms) | success [95% CI] | time to success (s) | RMS jerk (m/s^3) | "
            "path (m) | skipped / trial | limits acted (% of ticks) |")
    lines = [head, "|" + "---|" * 9]
    for c in rows:
        acted = ", ".join(f"{k} {100 * v:.1f}" for k, v in sorted(c.limits.items(), key=lambda kv: -kv[1])[:3]) or "-"
        lines.append(
            f"| {c.variant} | {c.rate:g} | {1000 * c.latency:.0f} | {c.successes}/{c.n} = "
            f"{c.success.text('{:.2f}')} | {c.time_s.text('{:.1f}')} | {c.rms_jerk.text('{:.1f}')} | "
            f"{c.path_length.text('{:.2f}')} | {c.skipped:.1f} | {acted} |")
    return "\n".join(lines)


def plot(summaries: list[CellSummary], path: pathlib.Path) -> pathlib.Path:
    """Success rate and RMS jerk against control rate, one line per mode, a column per latency."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    latencies = sorted({c.latency for c in summaries})
    variants = sorted({c.variant for c in summaries})
    fig = Figure(figsize=(4.2 * len(latencies), 6.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(latencies), squeeze=False)
    for j, lat in enumerate(latencies):
        for v in variants:
            rows = sorted((c for c in summaries if c.variant == v and c.latency == lat), key=lambda c: c.rate)
            if not rows:
                continue
            rates = [c.rate for c in rows]
            s = np.array([[c.success.mean, c.success.low, c.success.high] for c in rows])
            axes[0][j].errorbar(rates, s[:, 0], yerr=[s[:, 0] - s[:, 1], s[:, 2] - s[:, 0]], marker="o",
                                capsize=3, label=v)
            jk = np.array([[c.rms_jerk.mean, c.rms_jerk.low, c.rms_jerk.high] for c in rows])
            err = np.nan_to_num([jk[:, 0] - jk[:, 1], jk[:, 2] - jk[:, 0]])
            axes[1][j].errorbar(rates, jk[:, 0], yerr=err, marker="o", capsize=3, label=v)
        axes[0][j].set_title(f"latency {1000 * lat:.0f} ms")
        axes[0][j].set_ylim(-0.05, 1.05)
        axes[0][j].set_ylabel("success rate (Wilson 95%)")
        axes[1][j].set_ylabel("RMS jerk of the end effector (m/s^3)")
        axes[1][j].set_yscale("log")
        for ax in (axes[0][j], axes[1][j]):
            ax.set_xscale("log")
            ax.set_xlabel("control rate (Hz)")
            ax.set_xticks(sorted({c.rate for c in summaries}), [f"{r:g}" for r in sorted({c.rate for c in summaries})])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
