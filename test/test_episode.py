"""The one episode loader: every bad file is an InvalidInputError that names it, never a traceback."""

from __future__ import annotations

import numpy as np
import pytest

from nora_ros.cli import main as cli
from nora_ros.episode import load_episode
from nora_ros.errors import InvalidInputError


def test_an_episode_reads_back_with_its_instruction(tmp_path):
    path = tmp_path / "ep.npz"
    action = np.arange(14, dtype=np.float32).reshape(2, 7)
    np.savez(path, action=action, state=action + 1, language_instruction=np.array("put the carrot in the pot"))
    ep = load_episode(path)
    np.testing.assert_array_equal(ep.action, action)
    assert ep.action.dtype == np.float64 and ep.state[0, 0] == 1.0
    assert ep.instruction == "put the carrot in the pot" and set(ep.keys) == {"action", "state", "language_instruction"}


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: p.write_bytes(b""), "not a readable .npz"),
        (lambda p: p.write_text("hello"), "not a readable .npz"),
        (lambda p: np.save(p.with_suffix(".npy"), np.zeros((2, 7))) or p.with_suffix(".npy").rename(p), "single .npy array"),
        (lambda p: p.mkdir(), "it is a folder"),
        (lambda p: np.savez(p, actions=np.zeros((2, 7))), "no 'action' array"),
        (lambda p: np.savez(p, action=np.array([object()], dtype=object)), "not a readable .npz"),
    ],
)
def test_bad_files_are_named_with_the_problem(tmp_path, make, words):
    path = tmp_path / "bad.npz"
    make(path)
    with pytest.raises(InvalidInputError, match=words) as info:
        load_episode(path)
    assert str(path) in str(info.value)


def test_safety_replay_reports_an_empty_file_without_a_traceback(tmp_path, capsys):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    assert cli(["safety-replay", str(empty)]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "empty.npz" in err and "Traceback" not in err
