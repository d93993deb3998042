"""The real NORA backend (tiny random-weight checkpoint) in the simulated closed loop.

A random-weight model emits arbitrary (but well-formed) action chunks: exactly the kind of
policy the safety filter exists for. Three trials run to their step limit through the real
pipeline (rendered camera, preprocessing, constrained decoding, FAST decode, unnormalization,
scheduler, safety filter, MuJoCo arm, supervisor); the arm must never leave the workspace box,
nothing may crash, and the results file must say why each trial failed.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mujoco")
pytest.importorskip("torch")

from conftest_nora import tiny_checkpoint  # noqa: E402, F401

from nora_ros.runner import build_sim_stack, run_sim_trial  # noqa: E402
from nora_ros.safety import SafetyConfig  # noqa: E402
from nora_ros.trials.results_store import load_results  # noqa: E402

MAX_STEPS = 12
CFG = SafetyConfig()


@pytest.fixture(scope="module")
def three_trials(tiny_checkpoint, tmp_path_factory):  # noqa: F811
    from nora_ros.policy.nora.config import NoraConfig
    from nora_ros.policy.nora.policy import NoraPolicy

    try:
        from nora_ros.sim.world import SimWorld

        SimWorld(task="carrot_in_pot", seed=0).render()
    except Exception as exc:  # noqa: BLE001 - any renderer failure means: no offscreen OpenGL here
        pytest.skip(f"offscreen rendering is unavailable (install libosmesa6, MUJOCO_GL=osmesa): {exc}")
    results = tmp_path_factory.mktemp("sim_nora") / "results.jsonl"
    policy = NoraPolicy(NoraConfig(model=str(tiny_checkpoint), device="cpu"))
    stack = build_sim_stack(lambda world: policy, results_path=results, max_steps=MAX_STEPS,
                            checkpoint=str(tiny_checkpoint), render=True)
    try:
        logs = [run_sim_trial(stack.world, stack.arm, stack.loop, stack.supervisor,
                              "put the carrot in the pot", seed=seed) for seed in range(3)]
    finally:
        stack.close()
    return logs, load_results(results)


def test_tiny_nora_runs_three_trials_to_their_step_limit(three_trials):
    logs, loaded = three_trials
    assert [r.trial_id for r in loaded.results] == [1, 2, 3]
    for log, result in zip(logs, loaded.results, strict=True):
        assert result.steps == MAX_STEPS, (result.trial_id, result.steps, log.outcome)
        # Real inference produced every step: the policy never failed into a fault.
        assert result.score.kind == "failure", result.score
        assert "sim check: carrot is" in result.score.note and "from the pot" in result.score.note
        chunks = [r.policy.chunk for r in log.ticks if r.policy.chunk is not None]
        # The step limit counts 0.2 s steps of motion: a chunk that starts off that grid (after a
        # one-tick hold) is counted in two steps, so one chunk fewer than steps is possible.
        assert len(chunks) >= MAX_STEPS - 1
        assert all(c.actions.shape == (1, 7) and np.isfinite(c.actions).all() for c in chunks)
        assert all(c.token_ids for c in chunks)  # the raw generated ids are kept for logs


def test_tiny_nora_never_takes_the_arm_out_of_the_workspace(three_trials):
    logs, _ = three_trials
    lo = np.array([CFG.workspace_lower[0], CFG.workspace_lower[1], max(CFG.workspace_lower[2], CFG.floor_z)])
    hi = np.array(CFG.workspace_upper)
    for log in logs:
        targets = np.array([r.result.target_pose[:3, 3] for r in log.ticks])
        measured = np.array([r.state.ee_pose[:3, 3] for r in log.ticks])
        assert (targets >= lo - 1e-9).all() and (targets <= hi + 1e-9).all()
        # The measured arm follows within a tracking lag (the start pose is inside the box too).
        assert (measured >= lo - 0.01).all() and (measured <= hi + 0.01).all()


def test_tiny_nora_1_5_runs_a_sim_trial_through_the_command_line(tmp_path):
    """`nora-ros sim --policy nora --model TINY15`: variant auto finds the action expert in the
    weights, the factory builds the flow policy, and a trial runs to its step limit with 5-step
    chunks through the same scheduler and filter."""
    from nora_ros.cli import main
    from nora_ros.policy.nora.tiny15 import build_tiny_nora15_checkpoint

    try:
        from nora_ros.sim.world import SimWorld

        SimWorld(task="carrot_in_pot", seed=0).render()
    except Exception as exc:  # noqa: BLE001 - any renderer failure means: no offscreen OpenGL here
        pytest.skip(f"offscreen rendering is unavailable (install libosmesa6, MUJOCO_GL=osmesa): {exc}")
    ckpt = build_tiny_nora15_checkpoint(tmp_path / "tiny15")
    out = tmp_path / "out"
    code = main(["sim", "--policy", "nora", "--model", str(ckpt), "--device", "cpu", "--trials", "1",
                 "--max-steps", "6", "--latency", "0.1", "--no-record", "--out", str(out)])
    assert code == 0
    (result,) = load_results(out / "results.jsonl").results
    assert result.steps == 6 and result.score.kind == "failure" and "sim check" in result.score.note
    assert result.model_id == str(ckpt)
