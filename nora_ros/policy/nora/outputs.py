"""From the model's normalized output to Bridge actions, shared by every NORA head (FAST+ tokens,
the flow expert, their batched forms): unnormalize with the checkpoint's statistics, clip what
lies outside the training range, and report what was clipped."""

from __future__ import annotations

import numpy as np

from nora_ros.actions import GRIPPER_DIM, NormStats

CLIP_LOG_PERIOD = 5.0
"""Seconds between two warnings about actions clipped to the training range."""


def finish_actions(normalized: np.ndarray, stats: NormStats) -> tuple[np.ndarray, dict[str, object]]:
    """Unnormalize a ``(T, 7)`` chunk; clip what lies outside the training range and say so.

    Normalized values beyond ``[-1, 1]`` are outside everything NORA was trained on (its
    targets were clipped there); they are clipped back and counted. The gripper ends in
    ``[0, 1]``. Returns the actions and a report (empty dict when nothing was clipped).
    """
    x = np.asarray(normalized, dtype=np.float64)
    report: dict[str, object] = {}
    over = (np.abs(x) > 1.0) & stats.mask
    if over.any():
        report["clipped_normalized"] = {
            "count": int(over.sum()),
            "dims": sorted({int(d) for d in np.argwhere(over)[:, 1]}),
            "max_abs": float(np.abs(x[over]).max()),
        }
        x = np.where(over, np.clip(x, -1.0, 1.0), x)
    a = stats.finish_gripper(stats.unnormalize(x))
    g = a[:, GRIPPER_DIM]
    if np.any((g < 0.0) | (g > 1.0)):
        report["clipped_gripper"] = {"values": [float(v) for v in g], "range": [0.0, 1.0]}
        a[:, GRIPPER_DIM] = np.clip(g, 0.0, 1.0)
    return a, report
