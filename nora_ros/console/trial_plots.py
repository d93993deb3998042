"""Per-trial plots for the finished-trials list: ``GET /api/trials/{id}/plot.png``.

Which bag: the trial is looked up by its integer id among the finished trials of the port's
results view (:meth:`~nora_ros.console.port.ConsolePort.results`, read from the results file),
and the bag is the ``recording`` stored there. Nothing of the request but that integer reaches
a path. Going through the view rather than the file means a plot sees exactly the trials and
the text the page sees, with the port's blind-plan hiding already applied, and works the same
over every port; the price is that only the trials the view lists (the newest
:data:`~nora_ros.console.views.MAX_TRIALS_LISTED`) have a plot here.

The figure (:mod:`nora_ros.bag.trial_figure`) is titled with the trial's id, task and score
only, never its model. Drawing takes a fraction of a second, so rendered PNGs are kept in a
small in-memory LRU keyed by trial id, bag path and the bag's files' modification times and
sizes: a bag finished or rewritten after a first look is drawn anew. In memory rather than a
file beside the bag because a web request should not write into recordings (a bag folder may
be read-only, shared, or copied elsewhere with its files checksummed).
"""

from __future__ import annotations

import collections
import pathlib
import threading
from collections.abc import Callable
from typing import Any

from nora_ros.errors import BagError, NoraError

CACHE_SIZE = 16
"""Rendered PNGs kept (about 50 KB each)."""


class PlotNotFound(NoraError, LookupError):
    """No plot for that trial: not among the finished trials, not recorded, or its bag is gone."""


class TrialPlots:
    """PNG plots of finished trials, looked up through ``results`` (a port's
    :meth:`~nora_ros.console.port.ConsolePort.results`) and cached (see the module docstring).
    Thread-safe; :meth:`png` blocks (it reads a bag and draws), so call it off the event loop."""

    def __init__(self, results: Callable[[], dict[str, Any]], size: int = CACHE_SIZE):
        self._results = results
        self._size = size
        self._cache: collections.OrderedDict[tuple, bytes] = collections.OrderedDict()
        self._lock = threading.Lock()

    def png(self, trial_id: int) -> bytes:
        """Trial ``trial_id``'s plot; raises :class:`PlotNotFound` or :class:`~nora_ros.errors.BagError`
        (the bag cannot be read, or lacks what the plot draws) with the reason."""
        trial = next((t for t in self._results().get("trials", ()) if t.get("trial_id") == trial_id), None)
        if trial is None:
            raise PlotNotFound(f"no finished trial {trial_id} in the results (the console lists the newest ones)")
        recording = trial.get("recording") or ""
        if not recording:
            raise PlotNotFound(f"trial {trial_id} was not recorded (no bag in the results file), so it has no plot")
        path = pathlib.Path(recording)
        key = (trial_id, recording, _stamp(path))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        png = _render(path, trial)
        with self._lock:
            self._cache[key] = png
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return png


def _stamp(path: pathlib.Path) -> tuple[int, int]:
    """(newest modification time in ns, total size) of a bag folder and its files, or of one file."""
    try:
        files = [path, *path.iterdir()] if path.is_dir() else [path]
        stats = [f.stat() for f in files]
    except OSError as exc:
        raise PlotNotFound(f"trial recording {path} cannot be found: {exc.strerror}") from exc
    return max(s.st_mtime_ns for s in stats), sum(s.st_size for s in stats)


def _render(path: pathlib.Path, trial: dict[str, Any]) -> bytes:
    import importlib.util

    if importlib.util.find_spec("rosbags") is None:
        raise BagError("reading bags needs the rosbags package (pip install rosbags: the 'bag' extra)")
    from nora_ros.bag.trial_figure import read_trial, render_png

    title = f"trial {trial['trial_id']}: {trial.get('task', '')} ({trial.get('score', '')})"
    return render_png(read_trial(path, int(trial["trial_id"])), title)
