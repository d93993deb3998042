"""Plain-data views the console serves: the results table and finished trials, JPEG images.

Shared by every :class:`~nora_ros.console.port.ConsolePort` implementation, so the page shows
the same table as ``nora-ros results`` (Table 1 layout, 95% Wilson intervals).
"""

from __future__ import annotations

import dataclasses
import io
import pathlib
from typing import Any

import numpy as np

from nora_ros.trials.results_store import LoadedResults, load_results
from nora_ros.trials.results_table import build_table, format_cell

MAX_TRIALS_LISTED = 50
"""Finished trials listed on the page (newest first); the file keeps them all."""

POOLED = "all models (blind until the plan is complete)"
"""The one column of a pooled table (see :func:`results_view`)."""


def results_view(path: str | pathlib.Path | None, hide_model_of: int = 0,
                 pool_models: bool = False) -> dict[str, Any]:
    """The table (models, rows of cell texts, averages) and the newest finished trials.

    ``hide_model_of``: a trial id whose model is not shown (a blind trial not yet scored;
    finished trials are scored, so this is only a guard).

    ``pool_models``: a blind plan that is not complete. Per-model rates shown while trials are
    still to be scored can bias the operator's next scores (RoboArena and AutoEval reveal
    comparisons only at the end), so every trial counts in one column, :data:`POOLED`, and no
    finished trial names its model (listed models would let anyone tally the table back apart).
    ``pooled`` in the answer says so, for the page to explain it."""
    if path is None or not pathlib.Path(path).exists():
        return {"models": [], "rows": [], "average": [], "trials": [], "warnings": [], "pooled": pool_models}
    loaded = load_results(path)
    table = build_table([_pooled(loaded) if pool_models else loaded])
    rows = [{"category": r.category, "task": r.task, "cells": [format_cell(r.cells.get(m)) for m in table.models]}
            for r in table.rows]
    trials = []
    for r in sorted(loaded.results, key=lambda r: r.trial_id, reverse=True)[:MAX_TRIALS_LISTED]:
        trials.append({
            "trial_id": r.trial_id, "task": r.task, "instruction": r.instruction,
            "model": "" if pool_models or r.trial_id == hide_model_of else r.model_id,
            "score": r.score.kind.value + (f" {r.score.fraction:g}" if r.score.fraction is not None else ""),
            "note": r.note, "reason": r.reason, "steps": r.steps, "duration_s": round(r.duration_s, 1),
            "recording": r.recording or "",
            "plot": plot_url(r.trial_id) if r.recording else "",
        })
    return {"models": list(table.models), "rows": rows,
            "average": [format_cell(table.average[m]) for m in table.models],
            "trials": trials, "warnings": list(loaded.warnings), "pooled": pool_models}


def plot_url(trial_id: int) -> str:
    """Where the page finds a recorded trial's plot (:mod:`nora_ros.console.trial_plots`)."""
    return f"/api/trials/{int(trial_id)}/plot.png"


def _pooled(loaded: LoadedResults) -> LoadedResults:
    """The same results, every one under the model :data:`POOLED` (the table code does the rest)."""
    return dataclasses.replace(loaded, results=tuple(dataclasses.replace(r, model_id=POOLED)
                                                     for r in loaded.results))


def encode_jpeg(image: np.ndarray, quality: int = 80) -> bytes:
    """An RGB uint8 image as JPEG bytes (Pillow)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
