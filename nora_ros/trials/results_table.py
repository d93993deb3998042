"""The results table: success rates per task and model, like Table 1 of the NORA paper.

Rows are tasks (grouped by category when trials carry one), columns are models (the
``model_id`` stored with each trial; the file name when it is empty), and each cell is the
success rate with the number of trials and a 95% Wilson score interval. An average row pools
every trial of a model.

How scores count:

- success counts 1, failure 0, partial its fraction (e.g. 0.5 for one of two objects);
- aborted trials (e-stop, fault, operator abort) are not policy outcomes: they are left out of
  ``n`` and reported in their own count, so a cell says "7/10" over the trials that were judged.

The interval: the Wilson score interval for a binomial proportion, with the number of successes
``s`` = the sum of the scores, which may be fractional when partial scores occur. For 0/1
scores this is the textbook Wilson interval (tested against ``scipy.stats.binomtest``). With
fractions it is the same formula at ``p = s / n``; since a score in [0, 1] with mean ``p`` has a
variance of at most ``p (1 - p)``, the interval is then conservative (at least as wide as the
data need).

The average row pools trials: ``sum of scores / total n`` over the model's tasks, with the
Wilson interval of the pooled counts. With the same number of trials per task (10 in the paper)
this equals the mean of the task rates. A model missing some task is marked with ``*``.
"""

from __future__ import annotations

import csv
import math
import os
import pathlib
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy.stats import norm

from nora_ros.errors import InvalidInputError
from nora_ros.trials.results_store import LoadedResults, TrialResult

CONFIDENCE = 0.95
"""Confidence level of the intervals in tables, CSV and plots."""

AVERAGE = "Average"


def wilson_interval(successes: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n`` (as fractions in [0, 1]).

    ``successes`` may be fractional (partial scores, see the module docstring).
    """
    if n <= 0:
        raise InvalidInputError(f"a proportion needs at least one trial, got n={n}")
    if not (0.0 <= successes <= n) or not math.isfinite(successes):
        raise InvalidInputError(f"successes must lie in [0, n={n}], got {successes}")
    if not 0.0 < confidence < 1.0:
        raise InvalidInputError(f"confidence must lie in (0, 1), got {confidence}")
    z = float(norm.ppf(0.5 + confidence / 2.0))
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
    # Exact at the ends (the formula gives 0 and 1 there, up to rounding).
    lo = 0.0 if successes == 0 else max(0.0, center - half)
    hi = 1.0 if successes == n else min(1.0, center + half)
    return lo, hi


@dataclass(frozen=True)
class Cell:
    """One task x model: ``n`` judged trials summing to ``successes``, plus ``aborted`` trials."""

    n: int
    successes: float
    aborted: int = 0

    @property
    def rate(self) -> float | None:
        """Success rate in [0, 1], ``None`` without judged trials."""
        return self.successes / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.successes, self.n) if self.n else None


@dataclass(frozen=True)
class Row:
    category: str
    task: str
    cells: Mapping[str, Cell]


@dataclass(frozen=True)
class ResultsTable:
    """Rows in display order (grouped by category), the model columns, and the average row."""

    models: tuple[str, ...]
    rows: tuple[Row, ...]
    average: Mapping[str, Cell]
    incomplete: frozenset[str]
    """Models that lack at least one task of the table (their average is not comparable)."""


def _model_label(result: TrialResult, source: LoadedResults) -> str:
    return result.model_id or source.path.stem


def build_table(sources: Sequence[LoadedResults]) -> ResultsTable:
    """Aggregate results of one or more files into a table (files of one model merge)."""
    models: dict[str, None] = {}
    categories: dict[str, dict[str, None]] = {}
    sums: dict[tuple[str, str, str], list[float]] = {}
    for source in sources:
        for r in source.results:
            model = _model_label(r, source)
            models.setdefault(model, None)
            categories.setdefault(r.category, {}).setdefault(r.task, None)
            acc = sums.setdefault((r.category, r.task, model), [0, 0.0, 0])
            value = r.score.value
            if value is None:
                acc[2] += 1
            else:
                acc[0] += 1
                acc[1] += value
    if not models:
        raise InvalidInputError("no trials to tabulate (the files hold no readable results)")
    model_list = tuple(models)
    rows = []
    for category, tasks in categories.items():
        for task in tasks:
            cells = {}
            for m in model_list:
                acc = sums.get((category, task, m))
                if acc is not None:
                    cells[m] = Cell(int(acc[0]), float(acc[1]), int(acc[2]))
            rows.append(Row(category, task, cells))
    average = {}
    incomplete = set()
    for m in model_list:
        present = [row.cells[m] for row in rows if m in row.cells]
        if len(present) < len(rows):
            incomplete.add(m)
        average[m] = Cell(sum(c.n for c in present), sum(c.successes for c in present), sum(c.aborted for c in present))
    return ResultsTable(model_list, tuple(rows), average, frozenset(incomplete))


def _num(x: float) -> str:
    return f"{x:g}" if x != int(x) else str(int(x))


def format_cell(cell: Cell | None) -> str:
    """``70.0% (7/10) [39.7, 89.2]``: rate, successes/n, 95% Wilson interval in percent."""
    if cell is None:
        return "-"
    if cell.n == 0:
        return f"n=0 ({cell.aborted} aborted)"
    lo, hi = cell.interval
    return f"{100 * cell.rate:.1f}% ({_num(cell.successes)}/{cell.n}) [{100 * lo:.1f}, {100 * hi:.1f}]"


def format_table(table: ResultsTable) -> str:
    """The table as aligned plain text, with category headers and footnotes."""
    grouped = any(row.category for row in table.rows)
    lines: list[list[str]] = []
    header = ["Task", *table.models]
    last_category = None
    for row in table.rows:
        if grouped and row.category != last_category:
            lines.append([row.category or "(no category)", *[""] * len(table.models)])
            last_category = row.category
        indent = "  " if grouped else ""
        lines.append([indent + row.task, *[format_cell(row.cells.get(m)) for m in table.models]])
    avg = [format_cell(table.average[m]) + ("*" if m in table.incomplete else "") for m in table.models]
    widths = [max(len(r[i]) for r in [header, *lines, [AVERAGE, *avg]]) for i in range(len(header))]

    def fmt(cols: list[str]) -> str:
        return " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()

    rule = "-+-".join("-" * w for w in widths)
    out = [fmt(header), rule, *(fmt(r) for r in lines), rule, fmt([AVERAGE, *avg])]
    out.append("")
    out.append(
        f"cells: success rate (successes/n) [{int(CONFIDENCE * 100)}% Wilson interval]; "
        "partial scores count as their fraction; aborted trials are not in n"
    )
    aborted = {m: table.average[m].aborted for m in table.models if table.average[m].aborted}
    if aborted:
        out.append("aborted trials: " + ", ".join(f"{m}: {k}" for m, k in aborted.items()))
    if table.incomplete:
        out.append("* average over fewer tasks than the table has: " + ", ".join(sorted(table.incomplete)))
    return "\n".join(out) + "\n"


CSV_FIELDS = ("category", "task", "model", "n", "successes", "aborted", "success_pct", "ci_low_pct", "ci_high_pct")


def table_rows(table: ResultsTable) -> list[dict[str, object]]:
    """Long-format records (one per task x model, then the averages), as written to CSV."""
    records = []

    def record(category: str, task: str, model: str, cell: Cell) -> dict[str, object]:
        interval = cell.interval
        return {
            "category": category,
            "task": task,
            "model": model,
            "n": cell.n,
            "successes": round(cell.successes, 6),
            "aborted": cell.aborted,
            "success_pct": None if cell.rate is None else round(100 * cell.rate, 3),
            "ci_low_pct": None if interval is None else round(100 * interval[0], 3),
            "ci_high_pct": None if interval is None else round(100 * interval[1], 3),
        }

    for row in table.rows:
        for m in table.models:
            if m in row.cells:
                records.append(record(row.category, row.task, m, row.cells[m]))
    for m in table.models:
        records.append(record("", AVERAGE, m, table.average[m]))
    return records


def write_csv(table: ResultsTable, path: str | os.PathLike[str]) -> None:
    """Write :func:`table_rows` as CSV (empty fields where a value is undefined)."""
    with pathlib.Path(path).open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for rec in table_rows(table):
            writer.writerow({k: "" if v is None else v for k, v in rec.items()})


def plot_table(table: ResultsTable, path: str | os.PathLike[str], title: str = "Success rate per task") -> None:
    """A grouped bar chart (tasks x models, plus the average) with the interval as error bars.

    Drawn with matplotlib's object API on the Agg canvas: no display, no global backend change.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = [(row.task, row.cells) for row in table.rows] + [(AVERAGE, table.average)]
    n_models = len(table.models)
    width = 0.8 / n_models
    fig = Figure(figsize=(max(6.0, 1.1 + len(groups) * (0.5 + 0.45 * n_models)), 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colors = [f"C{i % 10}" for i in range(n_models)]
    for j, model in enumerate(table.models):
        xs, heights, err_lo, err_hi, labels = [], [], [], [], []
        for i, (_, cells) in enumerate(groups):
            cell = cells.get(model)
            if cell is None or cell.n == 0:
                continue
            rate = cell.rate
            lo, hi = cell.interval
            xs.append(i - 0.4 + width * (j + 0.5))
            heights.append(100 * rate)
            err_lo.append(100 * max(0.0, rate - lo))
            err_hi.append(100 * max(0.0, hi - rate))
            labels.append(f"{100 * rate:.0f}%\nn={cell.n}")
        label = model + (" *" if model in table.incomplete else "")
        bars = ax.bar(
            xs,
            heights,
            width * 0.92,
            color=colors[j],
            label=label,
            yerr=[err_lo, err_hi],
            capsize=3,
            error_kw={"elinewidth": 1, "ecolor": "0.2"},
        )
        for bar, text, hi in zip(bars, labels, err_hi, strict=True):
            ax.annotate(
                text,
                (bar.get_x() + bar.get_width() / 2, bar.get_height() + hi),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=7,
            )
    ax.set_xticks(range(len(groups)), [textwrap.fill(name, 16) for name, _ in groups], fontsize=8)
    ax.axvline(len(groups) - 1.5, color="0.6", linewidth=0.8, linestyle=":")
    ax.set_ylim(0, 118)
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("success rate (%)")
    ax.set_title(f"{title} (error bars: {int(CONFIDENCE * 100)}% Wilson interval)", fontsize=10)
    ax.grid(axis="y", color="0.9")
    ax.set_axisbelow(True)
    fig.legend(fontsize=8, loc="outside lower center", ncols=min(n_models, 4), frameon=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.savefig(path, dpi=120)
