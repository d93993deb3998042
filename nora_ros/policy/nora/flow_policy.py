"""NORA-1.5 behind the Policy interface: one VLM prefill, then the flow head's Euler steps.

One observation becomes one ``(5, 7)`` chunk in timed stages:

1. ``preprocess``: the same prompt as NORA's (:class:`PromptBuilder`, ids cached per
   instruction) and the same image path (TF-style lanczos3 to 224x224, numpy patches). The
   reference does no JPEG round trip for NORA-1.5: ``jpeg_quality`` auto (-1) resolves to none.
2. ``prefill``: one forward pass of the VLM over the prompt, keeping its per-layer keys/values
   (no logits are computed: only the cache is used).
3. ``denoise_0`` .. ``denoise_{n-1}``: the Euler steps of :func:`~nora_ros.policy.nora.flow.sample_actions`
   from seeded noise (the generator restarts at :meth:`Nora15Policy.reset`, so a trial replays).
4. ``unnormalize``: :func:`~nora_ros.policy.nora.outputs.finish_actions` (mask-aware: the gripper
   stays as predicted; values outside the training range clipped and reported in ``metadata``).

Precision: float32 by default, as the reference runs (it loads without a dtype); on the tiny
checkpoint this path matches the reference to 8e-7 (normalized actions, CPU, 224x224 input; 3e-5
from a 640x480 frame, where the two lanczos3 resizes differ by one level in 2-7 of 150528 values).
``dtype: bfloat16`` casts the whole model, as hungchiayu1/SimplerEnv-OpenVLA's evaluation copy
does (the noise stays float32, t runs in bfloat16: 1.0, 0.8984375, ...). Measured on the tiny
random-weight checkpoint, bfloat16 moved the normalized actions by up to 0.26 (mean 0.08) from
float32, in this implementation and in the reference alike (the issue reports up to ~0.7 on the
real model); the tiny model is not the real one, so take it as an order of magnitude.
``action_head: fast`` decodes FAST+ tokens from the same VLM through :class:`NoraPolicy` instead
(:func:`nora15_policy`).

Real-time chunking: :meth:`Nora15Policy.act_guided` is the same inference (same seeded noise draw,
same prefill) with the Euler steps of :func:`~nora_ros.policy.nora.rtc.sample_guided`, which
steer the chunk towards a :class:`~nora_ros.policy.base.ChunkGuide` (see that module for the
formulas). The prefill then runs under ``no_grad`` rather than ``inference_mode``: the guidance
differentiates through the action expert, which attends to the prompt cache, and autograd
cannot save inference tensors.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np

from nora_ros.actions import ActionChunk
from nora_ros.camera.frame import Frame
from nora_ros.camera.preprocess import MODEL_IMAGE_SIZE, PatchSpec
from nora_ros.errors import ConfigurationError, PolicyError
from nora_ros.policy.base import ChunkGuide, Policy
from nora_ros.policy.nora.config import AUTO_VARIANT, NoraConfig
from nora_ros.policy.nora.inputs import observation_inputs
from nora_ros.policy.nora.nora15 import LoadedNora15, load_nora15
from nora_ros.policy.nora.outputs import CLIP_LOG_PERIOD, finish_actions
from nora_ros.policy.nora.prompt import PromptBuilder

log = logging.getLogger(__name__)
VARIANT = "nora-1.5"


@dataclass(frozen=True)
class FlowOutput:
    """One NORA-1.5 inference: the chunk as the robot gets it, plus what produced it.

    ``normalized`` is the ``(T, 7)`` float32 output of the sampler before unnormalization (the
    number to compare with another implementation), ``noise`` the initial noise, ``noise_index``
    its draw since the last reset (``None`` when the noise was given), ``times`` the flow times.
    """

    chunk: ActionChunk
    normalized: np.ndarray
    noise: np.ndarray
    noise_index: int | None
    times: tuple[float, ...]


def _flow_config(config: NoraConfig) -> NoraConfig:
    if config.variant == AUTO_VARIANT:
        config = config.with_variant(VARIANT)
    if config.variant != VARIANT:
        raise ConfigurationError(f"Nora15Policy runs variant {VARIANT}, not {config.variant}")
    if config.action_head != "flow":
        raise ConfigurationError("Nora15Policy is the flow head; action_head 'fast' runs through nora15_policy()")
    return config


class Nora15Policy(Policy):
    """NORA-1.5's flow head (see the module docstring). ``loaded`` may be shared with a
    :class:`NoraPolicy` over the same VLM; by default the checkpoint ``config.model`` is loaded."""

    supports_guide = True

    def __init__(self, config: NoraConfig | None = None, loaded: LoadedNora15 | None = None) -> None:
        import torch

        from nora_ros.policy.nora.flow import NoiseSource, euler_times

        config = _flow_config(config or NoraConfig(variant=VARIANT))
        self.loaded = loaded or load_nora15(config)
        self.config = config
        self.model_id = config.model
        self.horizon = config.horizon
        self.step_period = config.step_period
        self.steps = config.flow_steps
        self._torch = torch
        self._dtype = getattr(torch, self.loaded.dtype)
        euler_times(self.steps, self._dtype)  # refuses a step count the dtype cannot count
        self._preprocess = config.preprocess()  # no JPEG round trip unless configured: the reference has none
        self.patch_spec = PatchSpec.from_processor(self.loaded.image_processor)
        self.prompt = PromptBuilder(
            tokenizer=self.loaded.tokenizer,
            n_image_tokens=self.patch_spec.n_image_tokens(MODEL_IMAGE_SIZE, MODEL_IMAGE_SIZE),
            chat_template=self.loaded.chat_template,
            lowercase=config.lowercase_instruction,
            max_instruction_chars=config.max_instruction_chars,
        )
        self.noise = NoiseSource(config.seed, self.horizon)
        self._robot_noise: dict[str, NoiseSource] = {}  # one generator per robot when serving several
        self._flow_accel = None
        self.accel = self._accelerate()
        self._chunks = 0
        self._clip_logged_at = -math.inf
        self._clipped_unlogged = 0

    def _accelerate(self) -> object:
        """The ``accelerate`` decision (:mod:`nora_ros.policy.nora.accel`): where asked for, the
        compiled Euler step is kept only if the probe observation's actions (fixed noise, not the
        trial's generator) agree with eager sampling within :data:`~nora_ros.policy.nora.accel.FLOW_TOLERANCE`."""
        from nora_ros.policy.nora import accel
        from nora_ros.policy.nora.probe import PROBE_INSTRUCTION, probe_frame

        wanted, why = accel.accelerate_wanted(self.config.accelerate, self.loaded.device)
        if not wanted:
            log.info("NORA-1.5 samples eagerly (%s)", why)
            return accel.AccelReport(False, why)
        torch = self._torch
        flow_accel = accel.FlowAccelerator(self.loaded.flow, self.steps)
        prefix = self.prefill(self.model_inputs(probe_frame(), PROBE_INSTRUCTION))
        noise = torch.randn((self.horizon, 7), generator=torch.Generator().manual_seed(0), dtype=torch.float32)
        report = flow_accel.verify(prefix, noise)
        if report.enabled:
            self._flow_accel = flow_accel
            log.info("NORA-1.5: %s (check took %.1f s)", report.reason, report.seconds)
        else:
            log.warning("NORA-1.5: accelerate: on, but %s", report.reason)
        return report

    def reset(self, instruction: str) -> None:
        """Start a trial: validate and tokenize the instruction, restart the noise generator."""
        self.prompt.ids(instruction)
        self.noise.restart()

    def reset_robot(self, robot: str, instruction: str) -> None:
        """Start a trial of ``robot`` (one of several served): restart only its noise generator."""
        self.prompt.ids(instruction)
        self.noise_for(robot).restart()

    def noise_for(self, robot: str | None) -> object:
        """The noise generator of ``robot`` (``None``: the policy's own). Each robot's is seeded like a
        policy of its own, so its chunks do not depend on which other robots share this policy."""
        from nora_ros.policy.nora.flow import NoiseSource

        if robot is None:
            return self.noise
        source = self._robot_noise.get(robot)
        if source is None:
            source = self._robot_noise[robot] = NoiseSource(self.config.seed, self.horizon)
        return source

    def act_batch(self, frames, instructions, robots=None, guides=None) -> list:
        """Several observations: one prefill and batched Euler steps
        (:func:`~nora_ros.policy.nora.batch.flow_act_batch`); a guided row (real-time chunking)
        runs on its own, with its robot's noise."""
        from nora_ros.errors import NoraError
        from nora_ros.policy.nora.batch import flow_act_batch

        n = len(frames)
        names = list(robots) if robots is not None else [None] * n
        guided = [i for i in range(n) if guides is not None and guides[i] is not None]
        plain = [i for i in range(n) if i not in guided]
        out: list = [None] * n
        if plain:
            rows = flow_act_batch(self, [frames[i] for i in plain], [instructions[i] for i in plain],
                                  None if robots is None else [names[i] for i in plain])
            for i, r in zip(plain, rows, strict=True):
                out[i] = r
        for i in guided:
            try:
                out[i] = self.run(frames[i], instructions[i], guide=guides[i], robot=names[i]).chunk
            except NoraError as exc:
                out[i] = exc
        return out

    def model_inputs(self, frame: Frame, instruction: str) -> dict:
        """The Qwen2.5-VL prompt tensors for one observation (:func:`observation_inputs`, as NORA's)."""
        return observation_inputs(self.prompt, self._preprocess, self.patch_spec, frame, instruction,
                                  self.loaded.device, self._dtype)

    def prefill(self, inputs: dict, for_grad: bool = False) -> object:
        """The VLM's per-layer prompt keys/values (:class:`PrefixKV`) from one forward pass of its
        backbone (the language-model head is skipped: the flow head needs only the cache).
        ``for_grad``: under ``no_grad`` instead of ``inference_mode`` (the same numbers), so that
        guided sampling can differentiate through attention over the cache."""
        from nora_ros.policy.nora.expert import PrefixKV, output_cache

        torch = self._torch
        with torch.no_grad() if for_grad else torch.inference_mode():
            out = self.loaded.vlm.model(**inputs, use_cache=True)
        layers = self.loaded.flow.expert_config.layers
        return PrefixKV.from_cache(output_cache(out), layers, inputs["attention_mask"])

    def act(self, frame: Frame, instruction: str) -> ActionChunk:
        return self.run(frame, instruction).chunk

    def act_guided(self, frame: Frame, instruction: str, guide: ChunkGuide) -> ActionChunk:
        """:meth:`act` steered by real-time chunking's guidance towards ``guide``."""
        return self.run(frame, instruction, guide=guide).chunk

    def run(self, frame: Frame, instruction: str, noise: object | None = None,
            guide: ChunkGuide | None = None, robot: str | None = None) -> FlowOutput:
        """One inference; ``noise`` (``(T, 7)``) replaces the seeded draw, for comparisons;
        ``guide`` switches the sampler to real-time chunking's guided one; ``robot`` draws from
        that robot's generator (:meth:`noise_for`).

        A guide that does not fit this horizon is an :class:`InvalidInputError` (before any noise
        is drawn); a failure inside the model raises :class:`PolicyError` (the arm holds)."""
        from nora_ros.policy.nora.flow import check_noise, sample_actions
        from nora_ros.policy.nora.rtc import GuideTarget, sample_guided

        torch = self._torch
        cuda = self.loaded.device.startswith("cuda")
        sync = torch.cuda.synchronize if cuda else None
        t0 = time.perf_counter()
        target = None if guide is None else GuideTarget.from_guide(guide, self.horizon, self.loaded.norm_stats)
        inputs = self.model_inputs(frame, instruction)
        if noise is None:
            x1, index = self.noise_for(robot).draw()
        else:
            x1, index = check_noise(noise, self.horizon), None
        t1 = time.perf_counter()
        try:
            prefix = self.prefill(inputs, for_grad=target is not None)
            if sync is not None:
                sync()
            t2 = time.perf_counter()
            if target is None and self._flow_accel is not None:
                result = self._flow_accel.sample(prefix, x1, sync)
            elif target is None:
                result = sample_actions(self.loaded.flow, prefix, x1, self.steps, sync)
            else:
                result = sample_guided(self.loaded.flow, prefix, x1, self.steps, target, sync)
        except PolicyError:
            raise
        except (RuntimeError, ValueError) as exc:  # torch errors (e.g. out of memory), shapes
            raise PolicyError(f"NORA-1.5 inference failed ({type(exc).__name__}: {exc}); the arm holds") from exc
        t3 = time.perf_counter()
        normalized = result.actions.numpy()
        if not np.all(np.isfinite(normalized)):
            raise PolicyError("NORA-1.5 produced a non-finite action; the arm holds")
        actions, report = finish_actions(normalized, self.loaded.norm_stats)
        if report:
            self._log_clipping(report, t3)
        t4 = time.perf_counter()
        timings = {"preprocess": t1 - t0, "prefill": t2 - t1}
        timings.update({f"denoise_{i}": s for i, s in enumerate(result.step_seconds)})
        timings.update({"unnormalize": t4 - t3, "total": t4 - t0})
        metadata = {"action_head": "flow", "seed": self.noise.seed, "noise_index": index,
                    "flow_steps": self.steps, "dtype": self.loaded.dtype, **report}
        if guide is not None:
            metadata["rtc"] = {"frozen_steps": guide.frozen_steps, "execution_horizon": guide.execution_horizon,
                               "guidance_weight": guide.guidance_weight}
        chunk = ActionChunk(actions=actions, step_period=self.step_period, model_id=self.model_id, timings=timings,
                            stamp=frame.stamp, chunk_id=self._chunks, metadata=metadata)
        self._chunks += 1
        return FlowOutput(chunk, normalized, x1.numpy(), index, result.times)

    def _log_clipping(self, report: dict, now: float) -> None:
        """At most one warning per :data:`CLIP_LOG_PERIOD` s (each chunk's metadata keeps its own report)."""
        self._clipped_unlogged += 1
        if now - self._clip_logged_at < CLIP_LOG_PERIOD:
            return
        more = self._clipped_unlogged - 1
        log.warning("chunk %d: clipped to the training range: %s%s", self._chunks, report,
                    f" ({more} more chunks clipped since the last warning)" if more else "")
        self._clip_logged_at, self._clipped_unlogged = now, 0

    def close(self) -> None:
        self.loaded = None  # type: ignore[assignment]


def nora15_policy(config: NoraConfig, loaded: LoadedNora15 | None = None) -> Policy:
    """The policy for a NORA-1.5 checkpoint: the flow head (:class:`Nora15Policy`) or, with
    ``action_head: fast``, :class:`NoraPolicy` decoding FAST+ tokens from the same VLM."""
    from nora_ros.policy.nora.policy import NoraPolicy

    config = config.with_variant(VARIANT) if config.variant == AUTO_VARIANT else config
    loaded = loaded or load_nora15(config)
    if config.action_head == "fast":
        return NoraPolicy(config, loaded=loaded.as_loaded_nora(config))
    return Nora15Policy(config, loaded=loaded)
