"""Real-time chunking on NORA-1.5's flow head: the soft mask by hand, one guided step against an
independent computation in the paper's own time frame, and the guided policy on the tiny checkpoint
(beta = 0 is exactly the unguided chunk; guidance pulls the frozen steps to the guide)."""

from __future__ import annotations

import math
import pathlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from nora_ros.actions import GRIPPER_DIM  # noqa: E402
from nora_ros.camera.frame import Frame  # noqa: E402
from nora_ros.errors import ConfigurationError, InvalidInputError  # noqa: E402
from nora_ros.policy.base import ChunkGuide  # noqa: E402
from nora_ros.policy.nora.config import NoraConfig  # noqa: E402
from nora_ros.policy.nora.flow_policy import Nora15Policy, nora15_policy  # noqa: E402
from nora_ros.policy.nora.rtc import GuideTarget, guidance_scale, guided_velocity, soft_mask  # noqa: E402
from nora_ros.policy.worker import VirtualInference  # noqa: E402

INSTRUCTION = "put the carrot on the plate"
E1 = math.e - 1.0


def _exp(c: float) -> float:
    return c * (math.exp(c) - 1.0) / E1


# ------------------------------------------------------------------ the soft mask, by hand


def test_soft_mask_h5_d1_s2():
    # H - s = 3: c_1 = (3 - 1)/(3 - 1 + 1) = 2/3, c_2 = 1/3; steps 3, 4 are past the old chunk.
    # (2/3)(e^(2/3) - 1)/(e - 1) = (2/3)(0.9477340)/1.7182818 = 0.3677061; (1/3)(0.3956124)/1.7182818 = 0.0767457
    expected = [1.0, 0.3677061, 0.0767457, 0.0, 0.0]
    np.testing.assert_allclose(soft_mask(5, 1, 2), expected, rtol=0, atol=5e-7)
    np.testing.assert_allclose(soft_mask(5, 1, 2)[1:3], [_exp(2 / 3), _exp(1 / 3)], rtol=1e-12)


def test_soft_mask_h5_d2_s1():
    # H - s = 4: c_2 = (4 - 2)/(4 - 2 + 1) = 2/3, c_3 = 1/3; step 4 is past the old chunk
    np.testing.assert_allclose(soft_mask(5, 2, 1), [1.0, 1.0, 0.3677061, 0.0767457, 0.0], rtol=0, atol=5e-7)


def test_soft_mask_without_a_prior_past_k_is_zero():
    # H=5, d=1, s=1: c_i = (4 - i)/4 -> 3/4, 1/2, 1/4; only K = 2 prior actions
    np.testing.assert_allclose(soft_mask(5, 1, 1), [1.0, _exp(0.75), _exp(0.5), _exp(0.25), 0.0], rtol=1e-12)
    np.testing.assert_allclose(soft_mask(5, 1, 1, prior_steps=2), [1.0, 0.4875510, 0.0, 0.0, 0.0], rtol=0, atol=5e-7)
    np.testing.assert_array_equal(soft_mask(5, 3, 1, prior_steps=2), [1.0, 1.0, 0.0, 0.0, 0.0])


def test_soft_mask_edges():
    np.testing.assert_array_equal(soft_mask(5, 0, 5), np.zeros(5))  # nothing frozen, nothing overlaps
    np.testing.assert_array_equal(soft_mask(5, 2, 5), [1.0, 1.0, 0.0, 0.0, 0.0])  # s = H: only the frozen steps
    # d > H - s: the frozen steps keep weight 1 (they execute whatever the new chunk says)
    np.testing.assert_array_equal(soft_mask(5, 3, 3), [1.0, 1.0, 1.0, 0.0, 0.0])
    w = soft_mask(50, 5, 10)
    assert np.all(np.diff(w[5:40]) < 0) and w[39] > 0 and np.all(w[40:] == 0)  # decays, then none


def test_guidance_scale_is_the_paper_weight_clipped_at_beta():
    assert guidance_scale(1.0, 5.0) == 5.0  # tau = 0, the first step: the limit is infinite, the clip gives beta
    assert guidance_scale(0.0, 5.0) == 5.0  # tau = 1
    assert guidance_scale(0.5, 5.0) == pytest.approx(2.0)  # (0.25 + 0.25) / 0.25
    tau = 0.1  # t = 0.9: (1 - tau) / (tau r^2), r^2 = (1 - tau)^2 / (tau^2 + (1 - tau)^2)
    r2 = (1 - tau) ** 2 / (tau**2 + (1 - tau) ** 2)
    assert guidance_scale(0.9, 100.0) == pytest.approx((1 - tau) / (tau * r2)) == pytest.approx(0.82 / 0.09)
    assert guidance_scale(0.9, 5.0) == 5.0 and guidance_scale(0.7, 0.0) == 0.0


# ------------------------------------------------- one guided step, independently in the paper's frame


@pytest.mark.parametrize("t", [1.0, 0.7, 0.3])
def test_one_guided_step_equals_algorithm_1_in_the_papers_time_on_a_linear_field(t):
    """NORA's field v(x, t) = x M^T + t b (t: 1 noise -> 0 data). In the paper's frame tau = 1 - t,
    v_p(A) = -v(A, 1 - tau), A_hat = A + (1 - tau) v_p(A), whose Jacobian is I - (1 - tau) M (per row),
    so g = e (I - (1 - tau) M) in closed form, and A' = A + (1/n)(v_p + min(beta, ...) g)."""
    rng = np.random.default_rng(7)
    h, n, beta = 5, 10, 5.0
    m = rng.normal(0, 0.5, (7, 7))
    b = rng.normal(0, 1, 7)
    a = rng.normal(0, 1, (h, 7))
    y = rng.uniform(-1, 1, (h, 7))
    w = soft_mask(h, 2, 2)

    tau = 1.0 - t
    v_p = -(a @ m.T + (1 - tau) * b)
    a_hat = a + (1 - tau) * v_p
    e = (y - a_hat) * w[:, None]
    g = e @ (np.eye(7) - (1 - tau) * m)
    scale = beta if tau == 0 else min(beta, (1 - tau) / (tau * (1 - tau) ** 2 / (tau**2 + (1 - tau) ** 2)))
    expected = a + (v_p + scale * g) / n

    m_t, b_t = torch.tensor(m, dtype=torch.float32), torch.tensor(b, dtype=torch.float32)
    target = GuideTarget(torch.tensor(y, dtype=torch.float32), torch.tensor(w, dtype=torch.float32), beta)
    x = torch.tensor(a, dtype=torch.float32)[None]
    step = guided_velocity(lambda xx, tt: xx @ m_t.T + tt * b_t, x, torch.tensor(t), target)
    got = step.step(x, -1.0 / n)[0].numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)
    assert step.weight == pytest.approx(scale)
    np.testing.assert_allclose(step.g[0].numpy(), g, rtol=0, atol=2e-6)
    assert np.all(step.g[0].numpy()[w == 0] == 0) and np.abs(step.g[0].numpy()[w > 0]).min() > 0  # rows don't mix here


def test_guided_velocity_differentiates_even_inside_inference_mode():
    target = GuideTarget(torch.ones(2, 7), torch.tensor([1.0, 0.0]), 5.0)
    with torch.inference_mode():
        step = guided_velocity(lambda xx, tt: 2.0 * xx, torch.zeros(1, 2, 7), torch.tensor(0.5), target)
    # A_hat = x - 0.5 * 2x = 0: e = (1 - 0) * W, dA_hat/dx = 0 -> g = 0 on every row
    assert torch.equal(step.g, torch.zeros(1, 2, 7))


# ------------------------------------------------------------------ the tiny NORA-1.5 checkpoint


@pytest.fixture(scope="module")
def tiny15(tmp_path_factory) -> pathlib.Path:
    from nora_ros.policy.nora.tiny15 import build_tiny_nora15_checkpoint

    return build_tiny_nora15_checkpoint(tmp_path_factory.mktemp("tiny15_rtc") / "ckpt")


@pytest.fixture(scope="module")
def policy(tiny15) -> Nora15Policy:
    return Nora15Policy(NoraConfig(model=str(tiny15), device="cpu", seed=3))


@pytest.fixture(scope="module")
def frame() -> Frame:
    return Frame(np.random.default_rng(5).integers(0, 256, (480, 640, 3), dtype=np.uint8), 1.0, "rgb8")


def _noise() -> np.ndarray:
    return np.random.default_rng(11).standard_normal((5, 7)).astype(np.float32)


def _guide_target(policy: Nora15Policy, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """A plan in the model's output space (normalized, in range) and the same in Bridge units."""
    rng = np.random.default_rng(1)
    y = rng.uniform(-0.8, 0.8, (k, 7))
    y[:, GRIPPER_DIM] = rng.uniform(0.1, 0.9, k)
    return y, policy.loaded.norm_stats.unnormalize(y)


def test_the_target_is_the_guide_normalized_with_the_checkpoints_stats(policy):
    stats = policy.loaded.norm_stats
    assert not stats.mask[GRIPPER_DIM] and stats.mask[:GRIPPER_DIM].all()
    y, actions = _guide_target(policy, k=3)
    target = GuideTarget.from_guide(ChunkGuide(actions, 1, 2, 4.0), 5, stats)
    assert target.target.dtype == torch.float32 and target.target.shape == (5, 7) and target.beta == 4.0
    np.testing.assert_allclose(target.target[:3].numpy(), y, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(target.target[:3, GRIPPER_DIM].numpy(), actions[:, GRIPPER_DIM].astype(np.float32))
    assert torch.equal(target.target[3:], torch.zeros(2, 7))
    np.testing.assert_array_equal(target.weights.numpy(), soft_mask(5, 1, 2, 3).astype(np.float32))


def test_beta_zero_is_exactly_the_unguided_chunk(policy, frame):
    _, actions = _guide_target(policy)
    plain = policy.run(frame, INSTRUCTION, noise=_noise())
    guided = policy.run(frame, INSTRUCTION, noise=_noise(), guide=ChunkGuide(actions, 2, 2, guidance_weight=0.0))
    assert torch.equal(torch.from_numpy(guided.normalized), torch.from_numpy(plain.normalized))
    # and through act / act_guided with the seeded draw: the same draw, the same chunk
    policy.reset(INSTRUCTION)
    chunk = policy.act(frame, INSTRUCTION)
    policy.reset(INSTRUCTION)
    again = policy.act_guided(frame, INSTRUCTION, ChunkGuide(actions, 1, 3, guidance_weight=0.0))
    np.testing.assert_array_equal(again.actions, chunk.actions)
    assert again.metadata["noise_index"] == chunk.metadata["noise_index"] == 0


def test_beta_zero_is_exactly_the_unguided_chunk_in_bfloat16(tiny15, policy, frame):
    bf16 = Nora15Policy(NoraConfig(model=str(tiny15), device="cpu", dtype="bfloat16"))
    _, actions = _guide_target(policy)
    plain = bf16.run(frame, INSTRUCTION, noise=_noise())
    guided = bf16.run(frame, INSTRUCTION, noise=_noise(), guide=ChunkGuide(actions, 2, 2, guidance_weight=0.0))
    assert torch.equal(torch.from_numpy(guided.normalized), torch.from_numpy(plain.normalized))
    steered = bf16.run(frame, INSTRUCTION, noise=_noise(), guide=ChunkGuide(actions, 2, 2))
    assert np.abs(steered.normalized - plain.normalized).max() > 0.1


def test_guidance_pulls_the_frozen_steps_to_the_executing_chunks_plan(policy, frame):
    y, actions = _guide_target(policy)
    plain = policy.run(frame, INSTRUCTION, noise=_noise()).normalized
    d = 2

    def frozen_distance(beta: float) -> float:
        out = policy.run(frame, INSTRUCTION, noise=_noise(), guide=ChunkGuide(actions, d, 2, beta)).normalized
        return float(np.linalg.norm(out[:d] - y[:d]))

    unguided = float(np.linalg.norm(plain[:d] - y[:d]))
    assert unguided > 2.0  # the unguided chunk is far from the plan: a real test (measured 3.28)
    weak, default, strong = frozen_distance(1.0), frozen_distance(5.0), frozen_distance(10.0)
    # measured on this checkpoint: 1.42, 0.27, 0.065 (ratios 0.43, 0.084, 0.020)
    assert default / unguided < 0.15
    assert strong < default < weak < unguided  # a larger clip, a closer chunk


def test_a_guided_chunk_reports_rtc_and_the_flow_stages(policy, frame):
    _, actions = _guide_target(policy, k=3)
    chunk = policy.act_guided(frame, INSTRUCTION, ChunkGuide(actions, 1, 2, 4.5))
    assert chunk.metadata["rtc"] == {"frozen_steps": 1, "execution_horizon": 2, "guidance_weight": 4.5}
    steps = [f"denoise_{i}" for i in range(10)]
    assert list(chunk.timings) == ["preprocess", "prefill", *steps, "unnormalize", "total"]
    assert chunk.actions.shape == (5, 7) and "rtc" not in policy.act(frame, INSTRUCTION).metadata


def test_a_guide_that_does_not_fit_the_horizon_is_refused_before_drawing_noise(policy, frame):
    policy.reset(INSTRUCTION)
    with pytest.raises(InvalidInputError, match="6 prior actions for a 5-step chunk"):
        policy.act_guided(frame, INSTRUCTION, ChunkGuide(np.zeros((6, 7)), 1, 2))
    with pytest.raises(InvalidInputError, match="no step of the new chunk would execute"):
        policy.act_guided(frame, INSTRUCTION, ChunkGuide(np.zeros((2, 7)), 5, 2))
    assert policy.noise.index == 0


def test_only_the_flow_head_supports_guidance(tiny15, policy, frame):
    from nora_ros.policy.nora.policy import NoraPolicy

    assert policy.supports_guide and isinstance(nora15_policy(NoraConfig(model=str(tiny15), device="cpu"),
                                                              loaded=policy.loaded), Nora15Policy)
    fast = nora15_policy(NoraConfig(model=str(tiny15), action_head="fast", device="cpu", horizon_margin=0.0),
                         loaded=policy.loaded)
    assert isinstance(fast, NoraPolicy) and not fast.supports_guide
    with pytest.raises(ConfigurationError, match=r"needs NORA-1.5's flow head \(action_head: flow\)") as info:
        fast.act_guided(frame, INSTRUCTION, ChunkGuide(np.zeros((2, 7)), 1, 2))
    assert fast.model_id in str(info.value)


def test_the_worker_hands_the_guide_to_the_flow_head(policy, frame):
    _, actions = _guide_target(policy)
    worker = VirtualInference(policy, latency=0.1)
    assert worker.submit(frame, INSTRUCTION, now=1.0, guide=ChunkGuide(actions, 2, 2))
    out = worker.poll(1.1)
    assert out.error == "" and out.chunk.metadata["rtc"]["frozen_steps"] == 2
    assert worker.submit(frame, INSTRUCTION, now=2.0)
    assert "rtc" not in worker.poll(2.1).chunk.metadata
