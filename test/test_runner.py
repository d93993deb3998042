"""The closed loop without ROS: the real sim, safety filter, scheduler, worker and supervisor.

Policies here stand in for the model (the model is not what is under test); the pipeline,
the safety filter, the MuJoCo arm and the supervisor are the real ones.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("mujoco")

from nora_ros.actions import ActionChunk  # noqa: E402
from nora_ros.errors import PolicyError  # noqa: E402
from nora_ros.policy.base import Policy  # noqa: E402
from nora_ros.policy.worker import ThreadedInference  # noqa: E402
from nora_ros.runner import LoopConfig, build_sim_stack, executed_path, run_sim_trial  # noqa: E402
from nora_ros.sim.expert import ScriptedExpertPolicy  # noqa: E402
from nora_ros.trials.results_store import load_results  # noqa: E402
from nora_ros.trials.state import TrialState  # noqa: E402

INSTRUCTION = "put the carrot in the pot"


class ConstantPolicy(Policy):
    """Always the same action (optionally huge), or an error."""

    model_id = "constant"

    def __init__(self, action=None, error: Exception | None = None, delay: float = 0.0):
        self.action = np.array(action if action is not None else [0, 0, 0, 0, 0, 0, 1.0], dtype=float)
        self.error = error
        self.delay = delay
        self.calls = 0

    def act(self, frame, instruction):
        self.calls += 1
        time.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return ActionChunk(self.action[None, :], model_id=self.model_id)


def stack_for(policy, tmp_path, **kw):
    return build_sim_stack(lambda world: policy, results_path=tmp_path / "results.jsonl", render=False, **kw)


def run(stack, seed=0):
    return run_sim_trial(stack.world, stack.arm, stack.loop, stack.supervisor, INSTRUCTION, seed=seed)


def test_scripted_expert_succeeds_and_result_is_stored(tmp_path):
    stack = build_sim_stack(lambda w: ScriptedExpertPolicy(w), results_path=tmp_path / "r.jsonl", render=False)
    try:
        log = run(stack, seed=2)
    finally:
        stack.close()
    assert log.outcome.startswith("success")
    assert stack.supervisor.state is TrialState.DONE
    (result,) = load_results(tmp_path / "r.jsonl").results
    assert result.score.kind.value == "success" and 10 <= result.steps <= 60
    assert result.model_id == "scripted-expert"
    # The filter integrated the commands: the target tracks them and the arm tracks the target.
    t, commanded, target, measured = executed_path(log.ticks)
    assert np.max(np.linalg.norm(target - measured, axis=1)) < 0.03


@pytest.mark.parametrize("error", [PolicyError("FAST decode failed (length)"), RuntimeError("CUDA error")])
def test_failing_policy_holds_the_arm_and_faults_the_trial(tmp_path, error):
    stack = stack_for(ConstantPolicy(error=error), tmp_path)
    try:
        start = stack.world.ee_pose()[:3, 3].copy()
        log = run(stack)
        moved = np.linalg.norm(stack.world.ee_pose()[:3, 3] - start)
    finally:
        stack.close()
    assert stack.supervisor.state is TrialState.ABORTED
    assert all(r.commanded is None for r in log.ticks)
    assert moved < 2e-3
    (result,) = load_results(tmp_path / "results.jsonl").results
    assert result.score.kind.value == "abort"
    assert "policy failed 3 times" in result.note and str(error) in result.note


def test_nan_actions_never_become_motion(tmp_path):
    policy = ConstantPolicy(action=[np.nan, 0, 0, 0, 0, 0, 1.0])
    stack = stack_for(policy, tmp_path)
    try:
        start = stack.world.ee_pose()[:3, 3].copy()
        log = run(stack)
        moved = np.linalg.norm(stack.world.ee_pose()[:3, 3] - start)
    finally:
        stack.close()
    assert policy.calls == 3
    assert stack.supervisor.state is TrialState.ABORTED
    assert "non-finite" in load_results(tmp_path / "results.jsonl").results[0].note
    assert moved < 2e-3 and all(r.commanded is None for r in log.ticks)


def test_huge_downward_actions_stop_at_the_floor_and_the_trial_ends_at_its_step_limit(tmp_path):
    stack = stack_for(ConstantPolicy(action=[0.3, 0.0, -0.5, 0, 0, 0, 1.0]), tmp_path, max_steps=20)
    try:
        log = run(stack)
    finally:
        stack.close()
    floor = stack.safe_arm.filter.config.floor_z
    lower = np.array(stack.safe_arm.filter.config.workspace_lower)
    upper = np.array(stack.safe_arm.filter.config.workspace_upper)
    targets = np.array([r.result.target_pose[:3, 3] for r in log.ticks])
    assert targets[:, 2].min() >= floor - 1e-9
    assert np.all(targets >= lower - 1e-9) and np.all(targets <= upper + 1e-9)
    assert log.limits["floor"] > 0 and log.limits["linear_speed"] > 0
    (result,) = load_results(tmp_path / "results.jsonl").results
    assert result.score.kind.value == "failure" and result.steps == 20
    assert any("floor" in e for e in result.safety_events)


def test_control_tick_never_waits_for_a_slow_policy(tmp_path):
    policy = ConstantPolicy(action=[0.01, 0, 0, 0, 0, 0, 1.0], delay=0.3)
    stack = stack_for(policy, tmp_path, loop_config=LoopConfig(control_rate_hz=25.0))
    stack.loop.worker.close()
    stack.loop.worker = ThreadedInference(policy)
    try:
        stack.world.reset(seed=0)
        now = stack.world.time
        stack.supervisor.submit_instruction(INSTRUCTION, now)
        stack.supervisor.arm_at_start(now)
        stack.loop.begin(INSTRUCTION)
        durations, reasons = [], []
        for _ in range(5):  # 0.2 s of sim ticks while the first inference (0.3 s) runs
            t0 = time.perf_counter()
            rec = stack.loop.tick(stack.world.time, stack.supervisor.policy_enabled)
            durations.append(time.perf_counter() - t0)
            reasons.append(rec.hold_reason)
            stack.world.step(0.04)
        assert stack.loop.worker.busy
    finally:
        stack.close()
    assert max(durations) < 0.1
    assert all("waiting for the policy" in r for r in reasons)
