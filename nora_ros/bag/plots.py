"""Figures of a replay (matplotlib, Agg): what was recorded against what the policy does now.

- ``replay_actions.png``: one row per action dimension, the recorded chunks' first action and
  the replayed one over bag time; a last row with the safety events (each limit that acted,
  recorded and replayed) on the same time axis; trial boundaries shaded.
- ``replay_errors.png``: the per-dimension error over time, of the chunks' actions and of the
  commands at every control tick.
"""

from __future__ import annotations

import pathlib

import numpy as np

from nora_ros.bag.replay import CMD_DIMS, DIMS, ReplayResult
from nora_ros.trials.figures import _pyplot


def _trials(ax, result: ReplayResult) -> None:
    for k, (t0, t1, _tid) in enumerate(result.trial_bounds):
        if k % 2:
            ax.axvspan(t0, t1, color="0.93", zorder=0)


def replay_actions(result: ReplayResult, path: str | pathlib.Path) -> pathlib.Path:
    plt = _pyplot()
    fig, axes = plt.subplots(len(DIMS) + 1, 1, figsize=(10, 13), sharex=True,
                             gridspec_kw={"height_ratios": [1] * len(DIMS) + [1.4]})
    t = np.asarray(result.chunk_t)
    rec = np.asarray(result.recorded_actions).reshape(-1, len(DIMS))
    rep = np.asarray(result.replayed_actions).reshape(-1, len(DIMS))
    err = np.asarray(result.action_error).reshape(-1, len(DIMS))
    for d, (ax, name) in enumerate(zip(axes[:-1], DIMS, strict=True)):
        _trials(ax, result)
        ax.plot(t, rec[:, d], "-", color="tab:blue", lw=2.5, alpha=0.6, label="recorded")
        ax.plot(t, rep[:, d], "x", color="tab:red", ms=4, label=f"replayed ({result.policy})")
        ax.set_ylabel(name)
        if len(err):
            ax.set_title(f"max |error| {err[:, d].max():.3g}", fontsize=8, loc="right")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize=8, ncol=2)
    ax = axes[-1]
    _trials(ax, result)
    names = sorted({lim for _, lim in result.safety_recorded} | {lim for _, lim in result.safety_replayed})
    row = {n: i for i, n in enumerate(names)}
    if names:
        for events, marker, color, label, dy in ((result.safety_recorded, "o", "tab:blue", "recorded", 0.12),
                                                 (result.safety_replayed, "x", "tab:red", "replayed", -0.12)):
            if events:
                ax.plot([e[0] for e in events], [row[e[1]] + dy for e in events], marker, color=color, ms=4,
                        ls="none", label=label)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_ylim(-0.6, len(names) - 0.4)
        ax.legend(loc="upper left", fontsize=8, ncol=2)
    else:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no safety limit acted (recorded or replayed)", transform=ax.transAxes, ha="center",
                va="center", fontsize=9, color="0.4")
    ax.set_ylabel("safety events")
    ax.set_xlabel("bag time (s)")
    ax.grid(alpha=0.3, axis="x")
    fig.suptitle(f"{pathlib.Path(result.bag).name}: recorded vs replayed actions, {len(t)} chunks, "
                 f"{result.trials} trial(s)")
    fig.tight_layout()
    return _save(fig, plt, path)


def replay_errors(result: ReplayResult, path: str | pathlib.Path) -> pathlib.Path:
    plt = _pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True)
    series = ((axes[0], result.chunk_t, np.asarray(result.action_error).reshape(-1, len(DIMS)), DIMS,
               "action chunk |replayed - recorded|"),
              (axes[1], result.tick_t, result.cmd_error, CMD_DIMS, "command |replayed - recorded| per control tick"))
    for ax, t, err, names, title in series:
        _trials(ax, result)
        for d, name in enumerate(names):
            ax.plot(t, err[:, d] if len(err) else [], ".-", ms=3, lw=0.8, label=name)
        peak = float(err.max()) if len(err) else 0.0
        ax.set_title(f"{title} (max {peak:.3g})", fontsize=9)
        ax.set_ylabel("error")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    axes[-1].set_xlabel("bag time (s)")
    fig.tight_layout()
    return _save(fig, plt, path)


def _save(fig, plt, path) -> pathlib.Path:
    path = pathlib.Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
