"""Figures written by the demo and replay commands (matplotlib, Agg backend: no display)."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def contact_sheet(images: Sequence[np.ndarray], path: str | pathlib.Path, columns: int = 6,
                  labels: Sequence[str] | None = None, max_images: int = 24) -> pathlib.Path:
    """A grid of frames (evenly sampled down to ``max_images``) saved as one PNG."""
    plt = _pyplot()
    if not images:
        raise ValueError("contact sheet needs at least one image")
    idx = np.linspace(0, len(images) - 1, min(max_images, len(images))).round().astype(int)
    rows = int(np.ceil(len(idx) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 1.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, idx, strict=False):
        ax.imshow(images[i])
        if labels is not None:
            ax.set_title(labels[i], fontsize=8)
    fig.tight_layout()
    path = pathlib.Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def ee_motion(t: np.ndarray, commanded: np.ndarray, target: np.ndarray, measured: np.ndarray,
              path: str | pathlib.Path, title: str = "") -> pathlib.Path:
    """End-effector x, y, z over time: the policy's commands integrated, the safety filter's
    target, and the measured pose, so a reader sees what the filter changed and how well the
    arm tracked."""
    plt = _pyplot()
    fig, axes = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
    for k, (ax, name) in enumerate(zip(axes, "xyz", strict=True)):
        ax.plot(t, commanded[:, k], "--", color="tab:blue", label="policy command (integrated)")
        ax.plot(t, target[:, k], "-", color="tab:orange", label="safety filter target")
        ax.plot(t, measured[:, k], ":", color="tab:green", lw=2, label="measured")
        ax.set_ylabel(f"{name} (m)")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best", fontsize=8)
    axes[-1].set_xlabel("time (s)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = pathlib.Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
