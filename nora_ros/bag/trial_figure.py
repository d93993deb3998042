"""The figure of one recorded trial: what the policy commanded, what the safety filter sent.

Drawn for the operator console's finished-trials list (``GET /api/trials/{id}/plot.png``),
which is why it has a module of its own rather than a place in :mod:`nora_ros.bag.plots` (the
replay's figures, which run a policy again; this one only reads):

- it reads just the small topics it draws (``cmd``, ``cmd_safe``, ``safety/status``,
  ``trial/status``, ``trial/result``) with the package's reader (:func:`~nora_ros.bag.read.read_bag`,
  :class:`~nora_ros.bag.run.RecordedRun`), never the camera, so a plot takes a fraction of a second;
- it draws with matplotlib's object API on an Agg canvas (``Figure`` and ``FigureCanvasAgg``),
  not pyplot, whose global figure registry is not thread-safe: the console draws in a worker
  thread while the rest of the process goes on;
- it writes the caller's title and nothing else about the run: the bag's ``trial/result``
  names the model, and a blind plan must not show it, so no model reaches the picture.

Rows, over seconds since the trial started running: the linear velocity x/y/z (policy's
``cmd`` dashed, ``cmd_safe`` solid), |angular velocity|, the gripper, and the safety limits that
acted (one mark per tick, one row per limit; the same ticks are shaded in the rows above).
"""

from __future__ import annotations

import io
import pathlib
from dataclasses import dataclass, field

import numpy as np

from nora_ros.bag import topics as T
from nora_ros.bag.run import RecordedRun, Stamped, Trial
from nora_ros.errors import BagError

TOPICS = (T.CMD, T.CMD_SAFE, T.SAFETY_STATUS, T.TRIAL_STATUS, T.TRIAL_RESULT)
"""What the figure reads (the rest of the bag is left alone)."""

SIZE_IN = (8.0, 6.4)
DPI = 80
"""640 x 512 pixels: readable in a browser tab, about 50 KB."""


@dataclass(frozen=True)
class TrialSeries:
    """One trial's commands and safety marks, times in seconds since it started RUNNING.

    ``cmd`` and ``sent`` are ``(N, 7)``: ``[vx, vy, vz, wx, wy, wz, gripper]``; ``limits`` holds
    ``(t, limit name)`` for every tick on which a limit acted. ``problems``: what the reader
    found wrong with the bag (a recording cut short, salvaged)."""

    trial_id: int
    duration: float
    cmd_t: np.ndarray
    cmd: np.ndarray
    sent_t: np.ndarray
    sent: np.ndarray
    limits: list[tuple[float, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_trial(path: str | pathlib.Path, trial_id: int, namespace: str = T.DEFAULT_NAMESPACE) -> TrialSeries:
    """The series of trial ``trial_id`` in the bag at ``path`` (one bag per trial, or a session
    bag holding several); raises :class:`BagError` saying what is missing."""
    from nora_ros.bag.read import read_bag

    contents = read_bag(path, {T.resolve(namespace, t.name) for t in TOPICS})
    return trial_series(RecordedRun(contents, namespace), trial_id)


def trial_series(run: RecordedRun, trial_id: int) -> TrialSeries:
    """The series of one trial of ``run`` (see :class:`TrialSeries`)."""
    if not run.statuses:
        raise BagError(f"{run.contents.path}: no {T.resolve(run.namespace, T.TRIAL_STATUS.name)} messages, so "
                       "no trial can be told apart")
    trial = next((tr for tr in run.trials() if tr.trial_id == trial_id), None)
    if trial is None:
        raise BagError(f"{run.contents.path}: trial {trial_id} never ran in this bag (it ended before the policy "
                       "started?)")
    sent = run.within(run.safe_commands, trial)
    if not sent:
        raise BagError(f"{run.contents.path}: no {T.resolve(run.namespace, T.CMD_SAFE.name)} messages during "
                       f"trial {trial_id}")
    cmd_t, cmd = _commands(run.within(run.commands, trial), trial)
    sent_t, sent_v = _commands(sent, trial)
    limits = [(s.t - trial.start, name) for s in run.within(run.safety, trial) for name in s.value]
    return TrialSeries(trial_id, max(trial.end - trial.start, float(sent_t[-1])), cmd_t, cmd, sent_t, sent_v,
                       limits, list(run.contents.problems))


def _commands(items: list[Stamped], trial: Trial) -> tuple[np.ndarray, np.ndarray]:
    t = np.array([s.t - trial.start for s in items], dtype=float)
    v = np.array([[*s.value.linear, *s.value.angular, s.value.gripper] for s in items], dtype=float).reshape(-1, 7)
    return t, v


def render_png(series: TrialSeries, title: str) -> bytes:
    """The figure (see the module docstring) as PNG bytes, titled ``title`` and nothing more."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    fig = Figure(figsize=SIZE_IN, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(4, 1, sharex=True, gridspec_kw={"height_ratios": [2.0, 1.0, 1.0, 0.9]})
    spans = _spans(sorted({t for t, _ in series.limits}), _period(series.sent_t))
    for ax in axes[:3]:
        for t0, t1 in spans:
            ax.axvspan(t0, t1, color="tab:red", alpha=0.12, lw=0)
        ax.grid(alpha=0.3)
    ax = axes[0]
    for k, name in enumerate("xyz"):
        ax.plot(series.cmd_t, series.cmd[:, k], "--", color=f"C{k}", lw=1.0, drawstyle="steps-post")
        ax.plot(series.sent_t, series.sent[:, k], "-", color=f"C{k}", lw=1.6, drawstyle="steps-post", label=name)
    handles = [Line2D([], [], color=f"C{k}", label=n) for k, n in enumerate("xyz")] + [
        Line2D([], [], color="0.3", ls="--", lw=1.0, label="policy (cmd)"),
        Line2D([], [], color="0.3", lw=1.6, label="sent (cmd_safe)")]
    ax.legend(handles=handles, fontsize=7, ncols=5, loc="lower right", bbox_to_anchor=(1.0, 1.0), frameon=False,
              borderaxespad=0.1, handlelength=1.8, columnspacing=1.0)
    ax.set_ylabel("linear (m/s)", fontsize=8)
    acted = len({t for t, _ in series.limits})
    ax.set_title(f"limits acted on {acted} of {len(series.sent_t)} ticks", fontsize=8, loc="left")
    for ax, values, label in ((axes[1], lambda v: np.linalg.norm(v[:, 3:6], axis=1), "|angular| (rad/s)"),
                              (axes[2], lambda v: v[:, 6], "gripper (1 open)")):
        ax.plot(series.cmd_t, values(series.cmd), "--", color="0.3", lw=1.0, drawstyle="steps-post")
        ax.plot(series.sent_t, values(series.sent), "-", color="tab:purple", lw=1.6, drawstyle="steps-post")
        ax.set_ylabel(label, fontsize=8)
    axes[2].set_ylim(-0.1, 1.1)
    _limits_row(axes[3], series.limits)
    axes[3].set_xlabel("time since the trial started (s)", fontsize=8)
    axes[3].set_xlim(0.0, max(series.duration, 1e-3))
    for ax in axes:
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10, parse_math=False)  # "$" in a task is text
    if series.problems:
        note = "bag incomplete: " + "; ".join(series.problems)
        fig.text(0.01, 0.005, note[:150] + ("..." if len(note) > 150 else ""), fontsize=6, color="tab:red",
                 parse_math=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _limits_row(ax, limits: list[tuple[float, str]]) -> None:
    names = sorted({name for _, name in limits})
    ax.set_ylabel("safety limits", fontsize=8)
    ax.grid(alpha=0.3, axis="x")
    if not names:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no safety limit acted", transform=ax.transAxes, ha="center", va="center", fontsize=8,
                color="0.4")
        return
    row = {n: i for i, n in enumerate(names)}
    ax.plot([t for t, _ in limits], [row[n] for _, n in limits], "|", color="tab:red", ms=9, mew=1.5, ls="none")
    ax.set_yticks(range(len(names)), names, fontsize=7, parse_math=False)
    ax.set_ylim(-0.6, len(names) - 0.4)


def _period(t: np.ndarray) -> float:
    return float(np.median(np.diff(t))) if len(t) > 1 else 0.1


def _spans(times: list[float], period: float) -> list[tuple[float, float]]:
    """Consecutive ticks merged into one shaded span each."""
    spans: list[list[float]] = []
    for t in times:
        if spans and t - spans[-1][1] <= 0.5 * period:
            spans[-1][1] = t + period
        else:
            spans.append([t, t + period])
    return [(a, b) for a, b in spans]
