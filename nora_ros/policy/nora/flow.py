"""NORA-1.5's flow-matching head: velocity field, Euler sampler and the seeded initial noise.

The action chunk is integrated from noise (t = 1) to actions (t = 0) as the reference does
(declare-lab/nora-1.5 ``sample_actions``), because every choice below moves the output:

- ``x_1 ~ N(0, I)`` of shape ``(T, 7)`` (float32); ``dt = -1/steps``; while ``t >= -dt/2``:
  ``x <- x + dt * v(x, t)``, ``t <- t + dt`` with ``t`` a tensor of the model's dtype, so t runs
  1.0, 0.8999999762, 0.7999999523, ... in float32 (not ``1 - k/steps``: ~1e-4 on the output) and
  1.0, 0.8984375, ... in bfloat16;
- ``v(x, t)``: ``action_in_proj(x)`` concatenated with a sinusoidal embedding of t (sin then
  cos, periods 4e-3 .. 4.0, computed in float32), then ``action_time_mlp_in`` -> SiLU ->
  ``action_time_mlp_out``, the action expert over the VLM's cached prompt, ``action_out_proj``.

:class:`ActionFlow` owns the expert and the four projections under the reference's parameter
names (``action_expert.*``, ``action_in_proj.*``...), so the non-VLM part of a checkpoint loads
into it strictly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nora_ros.actions import ACTION_DIM
from nora_ros.errors import ConfigurationError, InvalidInputError
from nora_ros.policy.nora.expert import ActionExpert, ExpertConfig, PrefixKV

TIME_MIN_PERIOD = 4e-3
TIME_MAX_PERIOD = 4.0


def time_embedding(t: torch.Tensor, width: int, min_period: float = TIME_MIN_PERIOD,
                   max_period: float = TIME_MAX_PERIOD) -> torch.Tensor:
    """Sinusoidal embedding ``[B, width]`` (float32) of flow times ``t`` ``[B]``: sines then cosines.

    The operations run in the reference's order so float32 results agree bit for bit.
    """
    if width % 2:
        raise ConfigurationError(f"the time embedding width must be even, got {width}")
    fraction = torch.linspace(0.0, 1.0, width // 2, dtype=torch.float32, device=t.device)
    period = min_period * (max_period / min_period) ** fraction
    scale = 1.0 / period * 2 * math.pi
    angle = scale[None, :] * t[:, None]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)


def euler_times(steps: int, dtype: torch.dtype) -> list[torch.Tensor]:
    """The flow times the sampler visits: ``t = 1`` then ``t += -1/steps`` in ``dtype`` while
    ``t >= 1/(2 steps)``, as the reference's loop accumulates them.

    Raises :class:`ConfigurationError` if that does not give ``steps`` times (bfloat16 cannot
    resolve steps much finer than 1/100 near t = 1: the reference would loop forever).
    """
    dt = -1.0 / steps
    t = torch.tensor(1.0, dtype=dtype)
    times: list[torch.Tensor] = []
    while bool(t >= -dt / 2) and len(times) <= steps:
        times.append(t.clone())
        t += dt
    if len(times) != steps:
        raise ConfigurationError(
            f"flow_steps {steps} in {dtype}: accumulating t from 1 by {dt:g} does not give {steps} steps "
            f"({len(times)}{'+' if len(times) > steps else ''}); use fewer steps or float32")
    return times


class NoiseSource:
    """The initial noise ``(T, 7)`` float32, from a CPU ``torch.Generator`` seeded with ``seed``.

    :meth:`restart` (called at each trial's reset) re-seeds it, so a trial replays exactly;
    ``index`` counts the draws since then (it goes into each chunk's metadata). A CPU generator
    gives the same numbers whatever device the model runs on.
    """

    def __init__(self, seed: int, horizon: int, action_dim: int = ACTION_DIM) -> None:
        self.seed = int(seed)
        self.shape = (int(horizon), int(action_dim))
        self.generator = torch.Generator(device="cpu")
        self.index = 0
        self.restart()

    def restart(self) -> None:
        self.generator.manual_seed(self.seed)
        self.index = 0

    def draw(self) -> tuple[torch.Tensor, int]:
        """The next noise and its index since the last restart."""
        noise = torch.randn(self.shape, generator=self.generator, dtype=torch.float32)
        index, self.index = self.index, self.index + 1
        return noise, index


def check_noise(noise: object, horizon: int, action_dim: int = ACTION_DIM) -> torch.Tensor:
    """Given noise as a float32 ``(T, 7)`` tensor (a ``(1, T, 7)`` array is accepted), or
    :class:`InvalidInputError` saying what is wrong."""
    x = torch.as_tensor(noise).detach().to("cpu", torch.float32)
    if x.ndim == 3 and x.shape[0] == 1:
        x = x[0]
    if tuple(x.shape) != (horizon, action_dim):
        raise InvalidInputError(f"initial noise must have shape ({horizon}, {action_dim}), got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise InvalidInputError("initial noise holds a NaN or infinity")
    return x.clone()


class ActionFlow(nn.Module):
    """The velocity field ``v(x_t, t | prompt)``: action expert plus its in/out/time projections."""

    def __init__(self, config: ExpertConfig, action_dim: int = ACTION_DIM) -> None:
        super().__init__()
        width = config.hidden
        self.expert_config = config
        self.action_expert = ActionExpert(config)
        self.action_in_proj = nn.Linear(action_dim, width)
        self.action_out_proj = nn.Linear(width, action_dim)
        self.action_time_mlp_in = nn.Linear(2 * width, width)
        self.action_time_mlp_out = nn.Linear(width, width)

    def velocity(self, x: torch.Tensor, t: torch.Tensor, prefix: PrefixKV) -> torch.Tensor:
        """``v`` ``[B, T, 7]`` (model dtype) for ``x`` ``[B, T, 7]`` at flow time ``t`` (0-d, model dtype)."""
        dtype = self.action_in_proj.weight.dtype
        x = x.to(dtype)
        actions = self.action_in_proj(x)
        temb = time_embedding(t.reshape(1).expand(x.shape[0]), self.expert_config.hidden).to(dtype)
        temb = temb[:, None, :].expand_as(actions)
        h = self.action_time_mlp_out(F.silu(self.action_time_mlp_in(torch.cat([actions, temb], dim=2))))
        return self.action_out_proj(self.action_expert(h, prefix))


@dataclass(frozen=True)
class FlowResult:
    """A sampled chunk: ``actions`` normalized ``(T, 7)`` float32 (CPU), the times visited and
    the seconds each Euler step took."""

    actions: torch.Tensor
    times: tuple[float, ...]
    step_seconds: tuple[float, ...]


def sample_actions(flow: ActionFlow, prefix: PrefixKV, noise: torch.Tensor, steps: int,
                   sync: Callable[[], None] | None = None) -> FlowResult:
    """Integrate ``noise`` ``(T, 7)`` to a normalized action chunk over the cached ``prefix``.

    ``x`` stays float32 throughout (the reference adds ``dt * v`` into its float32 noise in
    place, whatever the model dtype); ``t`` follows :func:`euler_times` in the model's dtype.
    ``sync`` (e.g. ``torch.cuda.synchronize``) runs before each step's clock is read.
    """
    dtype = flow.action_in_proj.weight.dtype
    device = flow.action_in_proj.weight.device
    dt = -1.0 / steps
    times = euler_times(steps, dtype)
    x = noise.to(device=device, dtype=torch.float32)[None]
    spent: list[float] = []
    with torch.inference_mode():
        for t in times:
            start = time.perf_counter()
            v = flow.velocity(x, t.to(device), prefix)
            x = x + dt * v
            if sync is not None:
                sync()
            spent.append(time.perf_counter() - start)
    return FlowResult(x[0].to("cpu", torch.float32), tuple(float(t) for t in times), tuple(spent))
