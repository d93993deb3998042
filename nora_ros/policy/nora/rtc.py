"""Real-time chunking for NORA-1.5's flow head: the soft mask and the guided Euler sampler.

Real-time chunking (RTC; Black, Galliker, Levine 2025, arXiv 2506.07339, Algorithm 1) computes
the next chunk while the current one executes, and steers the new chunk's denoising towards what
the current one plans for the overlap (training-free inpainting by pseudo-inverse guidance), so
the hand-off does not jump between modes of the action distribution.

Time conventions, because a sign slip here silently pushes the chunk *away* from the guide:

- the paper integrates ``tau: 0 (noise) -> 1 (data)``, ``A <- A + (1/n) v_paper``;
- NORA-1.5 (:func:`~nora_ros.policy.nora.flow.sample_actions`) integrates ``t: 1 (noise) -> 0
  (data)``, ``x <- x + dt v`` with ``dt = -1/n``. The two describe one path when
  ``tau = 1 - t`` and ``v_paper = -v``.

Per Euler step at NORA time ``t`` (``tau = 1 - t``), in NORA's terms:

- denoised estimate ``A_hat = x + (1 - tau) v_paper = x - t v(x, t)``;
- weighted error ``e = (Y - A_hat) * W`` (``W`` per time step, the same on all 7 dimensions);
- guidance ``g = e^T d A_hat / d x``: a vector-Jacobian product through the velocity field
  (autograd, with ``e`` held constant);
- weight ``w = min(beta, (1 - tau) / (tau r^2))``, ``r^2 = (1 - tau)^2 / (tau^2 + (1 - tau)^2)``,
  i.e. ``(tau^2 + (1 - tau)^2) / (tau (1 - tau))``, which grows without bound at ``tau = 0`` (the
  first step, pure noise) and at ``tau = 1``; there the clip gives ``w = beta``;
- the paper's guided velocity ``v_paper + w g`` is, in NORA's terms, ``v - w g``, so the step is
  ``x <- x + dt v - dt w g``, written in that order so that ``beta = 0`` reproduces the
  unguided sampler bit for bit (also in bfloat16, where ``dt * v`` rounds in the model dtype).

This agrees with the authors' Kinetix code (``realtime_action``: ``tau`` frame, ``v + w g``) and
with LeRobot's ``RTCProcessor.denoise_step`` after its sign fix (huggingface/lerobot issue 2511:
``x1 = x - t v``, ``v - w g``). Unlike that LeRobot version (read at commit 98b112c), which
computes ``v`` before marking ``x`` as requiring grad (so its "VJP" is just ``e``), ``g`` here
goes through the model's Jacobian as Algorithm 1 does.

The soft mask (the paper's eq. 5, as the authors' ``get_prefix_weights`` with ``end = H - s``):
``W_i = 1`` for ``i < d``; ``c_i (e^{c_i} - 1) / (e - 1)`` with ``c_i = (H - s - i) / (H - s - d
+ 1)`` for ``d <= i < H - s``; ``0`` for ``i >= H - s``. Two choices of ours: where ``d > H - s``
the frozen steps keep weight 1 (they execute from the old chunk whatever the new one says, and
the new one must continue from them; the authors' code instead lowers ``d`` to ``H - s``), and
steps ``i >= K`` without a prior get 0 (LeRobot pads a short prior with zeros and would guide
towards those zeros).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from nora_ros.actions import ACTION_DIM, NormStats
from nora_ros.errors import InvalidInputError
from nora_ros.policy.base import ChunkGuide
from nora_ros.policy.nora.expert import PrefixKV
from nora_ros.policy.nora.flow import ActionFlow, FlowResult, euler_times

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``v(x, t)``: NORA-convention velocity ``[1, H, 7]`` for ``x`` ``[1, H, 7]`` float32 at time ``t`` (0-d)."""


def soft_mask(horizon: int, frozen_steps: int, execution_horizon: int, prior_steps: int | None = None) -> np.ndarray:
    """The per-step guidance weights ``W`` ``(H,)`` float64 (see the module docstring)."""
    h, d, s = int(horizon), int(frozen_steps), int(execution_horizon)
    k = h if prior_steps is None else int(prior_steps)
    if h < 1 or d < 0 or s < 1 or k < 0:
        raise InvalidInputError(f"soft mask: need horizon >= 1, d >= 0, s >= 1, K >= 0; got H={h} d={d} s={s} K={k}")
    end = h - s
    weights = np.zeros(h, dtype=np.float64)
    for i in range(h):
        if i < d:
            weights[i] = 1.0
        elif i < end:
            c = (end - i) / (end - d + 1)
            weights[i] = c * math.expm1(c) / (math.e - 1.0)
    weights[k:] = 0.0
    return weights


def guidance_scale(t: float, beta: float) -> float:
    """``min(beta, (1 - tau) / (tau r^2))`` at NORA time ``t`` (``tau = 1 - t``); ``beta`` where the
    unclipped weight is infinite (``tau = 0``, the first step, or ``tau = 1``)."""
    tau = 1.0 - float(t)
    denominator = tau * (1.0 - tau)
    if denominator <= 0.0:
        return float(beta)
    return min(float(beta), (tau * tau + (1.0 - tau) ** 2) / denominator)


@dataclass(frozen=True)
class GuideTarget:
    """A :class:`ChunkGuide` in the sampler's space: ``target`` ``Y`` ``(H, 7)`` float32 (the guide's
    actions normalized with the checkpoint's statistics: the model's output space, where the
    gripper, unnormalized by the mask, stays as given; zeros past ``K``), ``weights`` ``W``
    ``(H,)`` float32 and the clip ``beta``."""

    target: torch.Tensor
    weights: torch.Tensor
    beta: float

    @classmethod
    def from_guide(cls, guide: ChunkGuide, horizon: int, stats: NormStats) -> GuideTarget:
        guide.check_horizon(horizon)
        y = np.zeros((horizon, ACTION_DIM), dtype=np.float64)
        y[: guide.prior_steps] = stats.normalize(guide.actions)
        w = soft_mask(horizon, guide.frozen_steps, guide.execution_horizon, guide.prior_steps)
        return cls(torch.from_numpy(y.astype(np.float32)), torch.from_numpy(w.astype(np.float32)),
                   guide.guidance_weight)


@dataclass(frozen=True)
class GuidedVelocity:
    """One step's pieces: the model's velocity ``v`` (model dtype), the guidance ``g`` (float32,
    ``e^T dA_hat/dx``) and its weight ``w``; the step is ``x + dt v - dt w g``."""

    v: torch.Tensor
    g: torch.Tensor
    weight: float

    def step(self, x: torch.Tensor, dt: float) -> torch.Tensor:
        return (x + dt * self.v) - (dt * self.weight) * self.g


def guided_velocity(velocity: Velocity, x: torch.Tensor, t: torch.Tensor, target: GuideTarget) -> GuidedVelocity:
    """RTC's guided velocity at ``x`` ``[1, H, 7]`` (float32), NORA time ``t``.

    Autograd runs under ``torch.enable_grad`` (the caller may be in ``no_grad``); the velocity's
    inputs other than ``x`` (weights, the prompt cache) must not be inference tensors, which
    autograd cannot save.
    """
    y = target.target.to(device=x.device)[None]
    w_rows = target.weights.to(device=x.device)[None, :, None]
    with torch.inference_mode(False), torch.enable_grad():
        x_in = x.detach().clone().requires_grad_(True)  # a clone: never an inference tensor
        v = velocity(x_in, t)
        denoised = x_in - float(t) * v.to(torch.float32)
        error = ((y - denoised) * w_rows).detach()
        (g,) = torch.autograd.grad(denoised, x_in, grad_outputs=error)
    return GuidedVelocity(v.detach(), g.detach(), guidance_scale(float(t), target.beta))


def sample_guided(flow: ActionFlow, prefix: PrefixKV, noise: torch.Tensor, steps: int, target: GuideTarget,
                  sync: Callable[[], None] | None = None) -> FlowResult:
    """:func:`~nora_ros.policy.nora.flow.sample_actions` with RTC's guided velocity at every step:
    the same times, the same float32 ``x``, the model's dtype for ``v``."""
    dtype = flow.action_in_proj.weight.dtype
    device = flow.action_in_proj.weight.device
    dt = -1.0 / steps
    x = noise.to(device=device, dtype=torch.float32)[None]
    target = GuideTarget(target.target.to(device), target.weights.to(device), target.beta)  # once, not per step
    spent: list[float] = []
    times = euler_times(steps, dtype)
    for t in times:
        start = time.perf_counter()
        step = guided_velocity(lambda a, tt: flow.velocity(a, tt, prefix), x, t.to(device), target)
        x = step.step(x, dt)
        if sync is not None:
            sync()
        spent.append(time.perf_counter() - start)
    return FlowResult(x[0].to("cpu", torch.float32), tuple(float(t) for t in times), tuple(spent))
