"""The NORA backend: Qwen2.5-VL + FAST+ through transformers, behind the Policy interface.

One observation becomes one action chunk in five timed stages:

1. ``preprocess``: the frame is resized to 224x224 (lanczos3, antialiased, as in training) and
   cut into vision patches with numpy (:mod:`nora_ros.camera.preprocess`); the prompt's token ids
   are computed once per instruction (:mod:`nora_ros.policy.nora.prompt`). No PIL, no processor
   call per step.
2. ``prefill`` and 3. ``decode``: greedy decoding restricted to the action tokens and
   ``<|im_end|>`` by a length-aware FAST+ constraint, in our own loop that scores only those
   2049 output rows (:mod:`nora_ros.policy.nora.decoding`; same choices as ``generate`` with the
   constraint's LogitsProcessor), so the output can only spell exactly ``T x 7``
   coefficients and stops there. ``prefill`` is the vision encoder plus the prompt's forward
   pass; with ``accelerate: on`` (and the load-time check passed) the decode steps run on a
   preallocated cache, compiled (:mod:`nora_ros.policy.nora.accel`).
4. ``fast_decode``: FAST+ tokens to a normalized ``(T, 7)`` chunk; any malformed sequence
   raises :class:`PolicyError` (from :class:`FastDecodeError`) and never becomes motion.
5. ``unnormalize``: ``[-1, 1]`` to Bridge units where the statistics' mask is true; values
   outside ``[-1, 1]`` (NORA's training range) and a gripper outside ``[0, 1]`` are clipped,
   logged and reported in the chunk's ``metadata``.

Loading (:mod:`~nora_ros.policy.nora.checkpoint`) never runs remote code and reads safetensors
weights only.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np

from nora_ros.actions import ACTION_DIM, ActionChunk
from nora_ros.camera.frame import Frame
from nora_ros.camera.preprocess import MODEL_IMAGE_SIZE, PatchSpec
from nora_ros.errors import ConfigurationError, FastDecodeError, ModelLoadError, PolicyError
from nora_ros.policy.base import Policy
from nora_ros.policy.nora.checkpoint import LoadedNora, load_nora
from nora_ros.policy.nora.config import AUTO_VARIANT, NoraConfig
from nora_ros.policy.nora.inputs import observation_inputs
from nora_ros.policy.nora.outputs import CLIP_LOG_PERIOD, finish_actions
from nora_ros.policy.nora.prompt import PromptBuilder
from nora_ros.policy.nora.qwen_vocab import ACTION_TOKEN_OFFSET, IM_END_ID, N_ACTION_TOKENS

log = logging.getLogger(__name__)

STATIC_CACHE_LEN = 512
"""Tokens the accelerated decoder's preallocated cache holds (``accelerate: on``): NORA's prompt is
91 tokens for a 5-word instruction, plus at most a chunk's tokens; a longer prompt decodes
eagerly for that step."""


def _tie_variant(config: NoraConfig, loaded: LoadedNora) -> NoraConfig:
    """``config`` with the variant the checkpoint was loaded as (``auto`` resolved); an explicit
    variant that contradicts it is refused (its horizon would decode into wrong actions)."""
    if config.variant == AUTO_VARIANT:
        if not loaded.variant:
            raise ConfigurationError(f"the variant of {loaded.folder} is unknown: set variant explicitly")
        return config.with_variant(loaded.variant)
    if loaded.variant and loaded.variant != config.variant:
        raise ConfigurationError(
            f"variant {config.variant} contradicts the loaded checkpoint {loaded.folder}, which is {loaded.variant}")
    return config


class NoraPolicy(Policy):
    """NORA / NORA-Long behind :class:`nora_ros.policy.base.Policy` (see the module docstring)."""

    def __init__(self, config: NoraConfig | None = None, loaded: LoadedNora | None = None):
        import torch

        from nora_ros.policy.fast.constraint import FastConstraint
        from nora_ros.policy.nora.decoding import FastConstraintProcessor, candidate_head
        from nora_ros.policy.nora.generation import load_greedy_settings
        from nora_ros.policy.nora.probe import PROBE_INSTRUCTION, check_cached_decoding, probe_frame

        config = config or NoraConfig()
        self.loaded = loaded or load_nora(config)
        self.config = _tie_variant(config, self.loaded)
        self.model_id = self.config.model
        self.horizon = self.config.horizon
        self.step_period = self.config.step_period
        self._preprocess = self.config.preprocess()
        self.patch_spec = PatchSpec.from_processor(self.loaded.image_processor)
        self._check_image_size()
        n_image_tokens = self.patch_spec.n_image_tokens(MODEL_IMAGE_SIZE, MODEL_IMAGE_SIZE)
        self.prompt = PromptBuilder(
            tokenizer=self.loaded.tokenizer,
            n_image_tokens=n_image_tokens,
            chat_template=self.loaded.chat_template,
            lowercase=self.config.lowercase_instruction,
            max_instruction_chars=self.config.max_instruction_chars,
        )
        self.constraint = FastConstraint(self.loaded.fast, self.horizon, ACTION_DIM)
        self.max_new_tokens = self.constraint.max_tokens + 1
        self.processor = FastConstraintProcessor(self.constraint, end_id=IM_END_ID)
        self._horizon_margin = self.config.horizon_margin or float("inf")  # 0: no check
        jpeg = self._preprocess.jpeg_quality
        log.info("NORA %s ready: %d action(s) per chunk, %s on %s, JPEG round trip %s, image %s, statistics %s '%s'",
                 self.config.variant, self.horizon, self.loaded.dtype, self.loaded.device,
                 f"q{jpeg}" if jpeg else "none", self.config.image_aspect, self.loaded.norm_stats_source or "given",
                 self.config.unnorm_key)
        self._head = candidate_head(self.loaded.model, self.processor.candidate_ids)
        self._chunks = 0
        self._clipped_unlogged = 0
        self._clip_logged_at = -math.inf
        self._torch = torch
        self._dtype = getattr(torch, self.loaded.dtype)
        # transformers compatibility (compat.py, generation.py): what generate would apply from the
        # checkpoint's generation_config.json, and one cached decode step checked against a full pass.
        self.greedy = load_greedy_settings(self.loaded.folder, min_prompt_tokens=len(self.prompt.ids("a")))
        self.probe = check_cached_decoding(self.loaded.model, self.model_inputs(probe_frame(), PROBE_INSTRUCTION),
                                           self.processor, self._head)
        self.last_token_seconds: list[float] = []  # seconds per generated token of the last act (for benches)
        self._decoder = None
        self._long_prompt_logged = False
        self.accel = self._accelerate(self.model_inputs(probe_frame(), PROBE_INSTRUCTION))

    def _accelerate(self, probe_inputs: dict) -> object:
        """The ``accelerate`` decision (:mod:`nora_ros.policy.nora.accel`): where asked for, the
        accelerated decoder is built and kept only if it decodes the probe's tokens exactly."""
        from nora_ros.policy.nora import accel
        from nora_ros.policy.nora.decoding import constrained_greedy

        wanted, why = accel.accelerate_wanted(self.config.accelerate, self.loaded.device)
        if not wanted:
            log.info("NORA decodes eagerly (%s)", why)
            return accel.AccelReport(False, why)
        torch = self._torch
        decoder = accel.StaticDecoder(self.loaded.model, self.processor.candidate_ids, STATIC_CACHE_LEN)

        def run(fn, *extra) -> list[int]:
            with torch.inference_mode():
                return fn(self.loaded.model, *extra, probe_inputs, self.processor, self._head, self.max_new_tokens,
                          settings=self.greedy)

        report = accel.verify_tokens(lambda: run(constrained_greedy), lambda: run(accel.accelerated_greedy, decoder),
                                     decoder.mode)
        if report.enabled:
            self._decoder = decoder
            log.info("NORA: %s (check took %.1f s)", report.reason, report.seconds)
        else:
            log.warning("NORA: accelerate: on, but %s", report.reason)
        return report

    def _check_image_size(self) -> None:
        """The fast path feeds a 224x224 image as is; the checkpoint's processor must agree."""
        ip = self.loaded.image_processor
        size = getattr(ip, "size", None) or {}
        lo = size.get("shortest_edge", getattr(ip, "min_pixels", None))
        hi = size.get("longest_edge", getattr(ip, "max_pixels", None))
        px = MODEL_IMAGE_SIZE * MODEL_IMAGE_SIZE
        if (lo is not None and px < lo) or (hi is not None and px > hi):
            raise ModelLoadError(
                f"checkpoint {self.loaded.folder}: its image processor would rescale a {MODEL_IMAGE_SIZE}x"
                f"{MODEL_IMAGE_SIZE} image (pixels allowed {lo}..{hi}); NORA expects 224x224 as is"
            )

    def reset(self, instruction: str) -> None:
        """Validate the instruction and tokenize the prompt now, so the first step is not slower."""
        self.prompt.ids(instruction)

    def model_inputs(self, frame: Frame, instruction: str) -> dict:
        """The Qwen2.5-VL prompt tensors for one observation, without the processor (:func:`observation_inputs`)."""
        return observation_inputs(self.prompt, self._preprocess, self.patch_spec, frame, instruction,
                                  self.loaded.device, self._dtype)

    def act(self, frame: Frame, instruction: str) -> ActionChunk:
        from nora_ros.policy.nora.decoding import constrained_greedy

        torch = self._torch
        t0 = time.perf_counter()
        inputs = self.model_inputs(frame, instruction)
        t1 = time.perf_counter()
        marks: list[float] = []
        cuda = self.loaded.device.startswith("cuda")

        def prefill_done() -> None:
            if cuda:
                torch.cuda.synchronize()
            marks.append(time.perf_counter())

        token_times: list[float] = []
        try:
            with torch.inference_mode():
                if self._decoder is not None and int(inputs["input_ids"].shape[1]) + self.max_new_tokens \
                        <= STATIC_CACHE_LEN:
                    from nora_ros.policy.nora.accel import accelerated_greedy

                    generated = accelerated_greedy(
                        self.loaded.model, self._decoder, inputs, self.processor, self._head, self.max_new_tokens,
                        prefill_done, settings=self.greedy, token_times=token_times)
                else:  # eager, or a prompt longer than the static cache
                    if self._decoder is not None and not self._long_prompt_logged:
                        log.warning("a prompt of %d tokens does not fit the accelerated decoder's cache (%d with %d "
                                    "new tokens): decoded eagerly (logged once)", int(inputs["input_ids"].shape[1]),
                                    STATIC_CACHE_LEN, self.max_new_tokens)
                        self._long_prompt_logged = True
                    generated = constrained_greedy(
                        self.loaded.model, inputs, self.processor, self._head, self.max_new_tokens, prefill_done,
                        settings=self.greedy, token_times=token_times,
                    )
        except (RuntimeError, FastDecodeError) as exc:  # torch (e.g. out of memory) or the constraint
            raise PolicyError(f"NORA inference failed ({type(exc).__name__}: {exc}); the arm holds") from exc
        t3 = time.perf_counter()
        t2 = marks[0] if marks else t3
        self.last_token_seconds = token_times
        normalized = self.decode_tokens(generated)
        t4 = time.perf_counter()
        actions, report = finish_actions(normalized, self.loaded.norm_stats)
        if report:
            self._log_clipping(report, t4)
        t5 = time.perf_counter()
        timings = {
            "preprocess": t1 - t0,
            "prefill": t2 - t1,
            "decode": t3 - t2,
            "fast_decode": t4 - t3,
            "unnormalize": t5 - t4,
            "total": t5 - t0,
        }
        chunk = ActionChunk(
            actions=actions,
            step_period=self.step_period,
            model_id=self.model_id,
            timings=timings,
            token_ids=tuple(generated),
            stamp=frame.stamp,
            chunk_id=self._chunks,
            metadata=report,
        )
        self._chunks += 1
        return chunk

    def _log_clipping(self, report: dict, now: float) -> None:
        """Warn about clipped actions at most every :data:`CLIP_LOG_PERIOD` s with a count: a model
        that keeps leaving the training range would otherwise log every chunk (5 per second).
        Every chunk still carries its own report in ``metadata``."""
        self._clipped_unlogged += 1
        if now - self._clip_logged_at < CLIP_LOG_PERIOD:
            return
        more = f" ({self._clipped_unlogged - 1} more chunks clipped since the last warning)" \
            if self._clipped_unlogged > 1 else ""
        log.warning("chunk %d: clipped to the training range: %s%s", self._chunks, report, more)
        self._clip_logged_at, self._clipped_unlogged = now, 0

    def act_batch(self, frames, instructions, robots=None, guides=None) -> list:
        """Several observations in one forward pass (:func:`~nora_ros.policy.nora.batch.nora_act_batch`);
        the tokens of each row equal :meth:`act`'s for it alone. NORA keeps no per-robot state."""
        from nora_ros.policy.nora.batch import nora_act_batch

        if guides is not None and any(g is not None for g in guides):
            return super().act_batch(frames, instructions, robots, guides)  # refused per row, as act_guided is
        return nora_act_batch(self, frames, instructions)

    def decode_tokens(self, generated: list[int], processor: object | None = None) -> np.ndarray:
        """Generated ids (``... <|im_end|>``) to the normalized ``(T, 7)`` chunk, or PolicyError.
        ``processor``: the one that decoded them (a batch row's copy), else the policy's own."""
        processor = processor or self.processor
        if processor.dead_end:
            raise PolicyError(f"constrained decoding reached a dead end after tokens {generated}; the arm holds")
        self._check_horizon(processor)
        if not generated or generated[-1] != IM_END_ID:
            raise PolicyError(
                f"generation did not finish with <|im_end|> within {self.max_new_tokens} tokens "
                f"(got {len(generated)} tokens); the arm holds"
            )
        body = generated[:-1]
        fast_ids = [t - ACTION_TOKEN_OFFSET for t in body]
        if any(not 0 <= k < N_ACTION_TOKENS for k in fast_ids):
            raise PolicyError(f"generated a non-action token among {body}; the arm holds")
        try:
            return self.loaded.fast.decode(fast_ids, self.horizon, ACTION_DIM)
        except FastDecodeError as exc:
            raise PolicyError(f"the generated chunk does not decode ({exc}); the arm holds") from exc

    def _check_horizon(self, processor: object | None = None) -> None:
        """A checkpoint trained on another chunk length keeps wanting to end, or to go on, where
        the length constraint forces otherwise: its tokens would still decode, into wrong
        actions (a NORA-Long run as NORA spells its first 7 DCT coefficients). Refuse the chunk."""
        p, t, margin = processor or self.processor, self.horizon, self._horizon_margin
        if p.wanted_more > margin:
            raise PolicyError(
                f"horizon mismatch: after the chunk's {t} x {ACTION_DIM} coefficients the model still wanted to go on "
                f"(an action token scored {p.wanted_more:.1f} above <|im_end|>): the checkpoint predicts longer chunks "
                f"than variant {self.config.variant} (T={t}) (e.g. NORA-Long run as NORA: set its variant), or its "
                "token head was not trained to end there (random weights). The arm holds")
        if p.wanted_end > margin:
            raise PolicyError(
                f"horizon mismatch: the model wanted to end before the chunk's {t} x {ACTION_DIM} coefficients "
                f"(<|im_end|> scored {p.wanted_end:.1f} above every allowed action token): the checkpoint predicts "
                f"shorter chunks than variant {self.config.variant} (T={t}) (e.g. NORA run as NORA-Long: set its "
                "variant), or its token head was not trained for them. The arm holds")

    def close(self) -> None:
        self.loaded = None  # type: ignore[assignment]
