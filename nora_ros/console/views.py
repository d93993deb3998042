"""Plain-data views the console serves: the results table and finished trials, JPEG images.

Shared by every :class:`~nora_ros.console.port.ConsolePort` implementation, so the page shows
the same table as ``nora-ros results`` (Table 1 layout, 95% Wilson intervals).
"""

from __future__ import annotations

import io
import pathlib
from typing import Any

import numpy as np

from nora_ros.trials.results_store import load_results
from nora_ros.trials.results_table import build_table, format_cell

MAX_TRIALS_LISTED = 50
"""Finished trials listed on the page (newest first); the file keeps them all."""


def results_view(path: str | pathlib.Path | None, hide_model_of: int = 0) -> dict[str, Any]:
    """The table (models, rows of cell texts, averages) and the newest finished trials.

    ``hide_model_of``: a trial id whose model is not shown (a blind trial not yet scored;
    finished trials are scored, so this is only a guard)."""
    if path is None or not pathlib.Path(path).exists():
        return {"models": [], "rows": [], "average": [], "trials": [], "warnings": []}
    loaded = load_results(path)
    table = build_table([loaded])
    rows = [{"category": r.category, "task": r.task, "cells": [format_cell(r.cells.get(m)) for m in table.models]}
            for r in table.rows]
    trials = []
    for r in sorted(loaded.results, key=lambda r: r.trial_id, reverse=True)[:MAX_TRIALS_LISTED]:
        trials.append({
            "trial_id": r.trial_id, "task": r.task, "instruction": r.instruction,
            "model": "" if r.trial_id == hide_model_of else r.model_id,
            "score": r.score.kind.value + (f" {r.score.fraction:g}" if r.score.fraction is not None else ""),
            "note": r.note, "reason": r.reason, "steps": r.steps, "duration_s": round(r.duration_s, 1),
            "recording": r.recording or "",
            "plots": f"nora-ros replay {r.recording}" if r.recording else "",
        })
    return {"models": list(table.models), "rows": rows,
            "average": [format_cell(table.average[m]) for m in table.models],
            "trials": trials, "warnings": list(loaded.warnings)}


def encode_jpeg(image: np.ndarray, quality: int = 80) -> bytes:
    """An RGB uint8 image as JPEG bytes (Pillow)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
