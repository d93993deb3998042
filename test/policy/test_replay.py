"""ReplayPolicy on the real Bridge episodes: order, sliding chunks without padding, exhaustion,
rewind, and clear errors for malformed recordings."""

from __future__ import annotations

import numpy as np
import pytest

from nora_ros.camera.frame import Frame
from nora_ros.errors import ConfigurationError, InvalidInputError, NoraError, PolicyError
from nora_ros.policy import Policy, ReplayPolicy


def _frame(stamp: float = 3.25) -> Frame:
    return Frame(np.zeros((8, 8, 3), dtype=np.uint8), stamp=stamp)


def test_plays_every_real_episode_in_order_then_reports_exhaustion(bridge_episodes):
    for path in bridge_episodes:
        recorded = np.load(path)["action"].astype(np.float64)
        policy = ReplayPolicy.from_npz(path)
        assert isinstance(policy, Policy)
        assert (policy.model_id, policy.horizon, policy.step_period) == (f"replay:{path.name}", 1, 0.2)
        for k in range(len(recorded)):
            chunk = policy.act(_frame(10.0 + k), "ignored")
            np.testing.assert_array_equal(chunk.actions, recorded[k : k + 1])
            assert chunk.stamp == 10.0 + k and chunk.model_id == f"replay:{path.name}"
            assert chunk.step_period == 0.2 and chunk.token_ids == ()
            assert chunk.timings["total"] >= 0.0
        assert policy.remaining == 0
        with pytest.raises(PolicyError, match=f"{path.name} is exhausted after {len(recorded)} actions"):
            policy.act(_frame(), "ignored")


def test_sliding_chunks_shrink_at_the_end_instead_of_padding(bridge_episodes):
    path = bridge_episodes[2]
    recorded = np.load(path)["action"].astype(np.float64)
    policy = ReplayPolicy.from_npz(path, horizon=5)
    chunks = [policy.act(_frame(), "") for _ in range(len(recorded))]
    assert [c.horizon for c in chunks] == [5, 5, 5, 5, 5, 5, 4, 3, 2, 1]
    for k, c in enumerate(chunks):
        np.testing.assert_array_equal(c.actions, recorded[k : k + 5])
    # The last recorded action (gripper closed in this episode) appears once at the end, unrepeated.
    assert chunks[-1].actions[0, 6] == 0.0 and recorded[-2, 6] == 1.0
    assert len({c.chunk_id for c in chunks}) == len(chunks)


def test_reset_rewinds_to_the_first_action(bridge_episodes):
    policy = ReplayPolicy.from_npz(bridge_episodes[0])
    first = [policy.act(_frame(), "").actions for _ in range(3)]
    policy.reset("put cup from counter or drying rack into sink")
    assert policy.remaining == 10
    again = [policy.act(_frame(), "").actions for _ in range(3)]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_recorded_state_and_instruction_are_kept(bridge_episodes):
    data = np.load(bridge_episodes[0])
    policy = ReplayPolicy.from_npz(bridge_episodes[0])
    assert policy.instruction == "put cup from counter or drying rack into sink"
    np.testing.assert_array_equal(policy.states, data["state"].astype(np.float64))
    with pytest.raises(ValueError):
        policy.actions[0, 0] = 1.0  # the recording is read-only


def _write(tmp_path, name="ep.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"state": np.zeros((3, 7))}, r"no 'action' array \(keys: \['state'\]\)"),
        ({"action": np.zeros((3, 6))}, r"'action' must be \(N, 7\), got shape \(3, 6\)"),
        ({"action": np.zeros(7)}, r"'action' must be \(N, 7\), got shape \(7,\)"),
        ({"action": np.zeros((0, 7))}, "holds no actions"),
        ({"action": np.array([[0, 0, 0, 0, 0, 0, 1.0], [0, 0, np.nan, 0, 0, 0, 1.0]])}, "non-finite value at step 1, dim 2"),
        ({"action": np.array([[0, 0, 0, 0, 0, 0, 1.5]])}, r"gripper action 1.5 at step 0 is outside \[0, 1\]"),
        ({"action": np.zeros((3, 7)), "state": np.zeros((2, 7))}, "'state' has 2 rows but 'action' has 3"),
        ({"action": np.zeros((1, 7)), "state": np.full((1, 7), np.inf)}, "'state' has a non-finite value"),
    ],
)
def test_malformed_recordings_are_rejected_naming_file_and_problem(tmp_path, arrays, message):
    path = _write(tmp_path, **arrays)
    with pytest.raises(InvalidInputError, match=message) as info:
        ReplayPolicy.from_npz(path)
    assert str(path) in str(info.value)


def test_missing_or_unreadable_files_and_bad_settings(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        ReplayPolicy.from_npz(tmp_path / "absent.npz")
    (tmp_path / "text.npz").write_text("not a zip archive")
    with pytest.raises(InvalidInputError, match="not a readable .npz"):
        ReplayPolicy.from_npz(tmp_path / "text.npz")
    good = _write(tmp_path, action=np.zeros((2, 7)))
    with pytest.raises(ConfigurationError, match="horizon"):
        ReplayPolicy.from_npz(good, horizon=0)
    with pytest.raises(ConfigurationError, match="step_period"):
        ReplayPolicy.from_npz(good, step_period=float("nan"))
    assert issubclass(ConfigurationError, NoraError)
