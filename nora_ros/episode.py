"""Recorded episodes as ``.npz`` files: the layout of BridgeData V2's debug episodes
(../shared/data/octo_bridge_debug/extracted_train) and of ``nora-ros export``.

One loader for every command that reads them (``nora-ros safety-replay``, ``nora-ros sim
--policy replay``, the policy node's ``replay:`` model), so a bad file gets the same clear
error everywhere instead of a numpy traceback.
"""

from __future__ import annotations

import pathlib
import zipfile
from dataclasses import dataclass

import numpy as np

from nora_ros.errors import InvalidInputError


@dataclass(frozen=True)
class Episode:
    """``action`` ``(N, 7)`` Bridge deltas, optional ``state`` ``(N, 7)``, the instruction."""

    path: pathlib.Path
    action: np.ndarray
    state: np.ndarray | None
    instruction: str
    keys: tuple[str, ...]


def load_episode(path: str | pathlib.Path) -> Episode:
    """Read an episode ``.npz`` (no pickles). Raises :class:`InvalidInputError` naming the file
    and the problem: missing, not an ``.npz`` archive, no ``action`` array."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise InvalidInputError(f"episode file {path} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise InvalidInputError(f"episode file {path} is a single .npy array, not an .npz archive of named "
                                    "arrays ('action', optional 'state')")
        with data:
            keys = tuple(data.files)
            content = {k: data[k] for k in ("action", "state", "language_instruction") if k in keys}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InvalidInputError(f"episode file {path} is not a readable .npz archive ({type(exc).__name__}: "
                                f"{exc or 'empty'})") from exc
    if "action" not in content:
        raise InvalidInputError(f"{path}: no 'action' array (keys: {list(keys)}); an episode needs 'action' (N, 7)")
    instruction = content.get("language_instruction")
    return Episode(
        path=path,
        action=np.asarray(content["action"], dtype=np.float64),
        state=None if "state" not in content else np.asarray(content["state"], dtype=np.float64),
        instruction="" if instruction is None else str(instruction),
        keys=keys,
    )
