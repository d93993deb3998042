"""Several observations in one forward pass: NORA's token head and NORA-1.5's flow head, batched.

One GPU serving several arms (issue 16) runs the observations that are ready together as one
batch. Batching must not change any robot's result, so each row is computed exactly as it would
be alone, up to the float noise of batched matrix products:

- **Left padding.** The prompts (one per robot: its frame, its instruction) are padded on the
  left with ``<|endoftext|>`` to the longest, with an attention mask of zeros on the padding, so
  every row's last token sits in the last column (where decoding continues) and no real token
  ever attends to a pad.
- **Positions.** Qwen2.5-VL's rotary positions are 3-D (time, row, column) over the image and
  1-D (the same on all three axes) over text. ``get_rope_index`` with the attention mask gives
  each row the positions it has alone (padding skipped, pads at 0), passed explicitly; each
  later token of row ``i`` is at one more than the largest position of row ``i`` so far, on all
  three axes (rows with different instruction lengths differ here).
- **Decoding** (:func:`batched_constrained_greedy`): one forward step for all rows; each row keeps
  its own FAST+ length constraint state, its own repetition penalty, its own forced-end notes (a
  copy of the policy's :class:`FastConstraintProcessor` per row), and ends on its own
  ``<|im_end|>``; a finished row is fed ``<|im_end|>`` until every row has finished (its outputs
  are ignored), so the batch keeps its shape.
- **Flow** (:func:`flow_act_batch`): one prefill, then the Euler steps on a ``[B, T, 7]`` noise
  tensor; the action expert masks each row's padding (:class:`~nora_ros.policy.nora.expert.PrefixKV`).
  Each row's initial noise is drawn from its robot's own generator
  (:meth:`Nora15Policy.noise_for`), seeded like a policy of its own, so a robot's chunks do not
  depend on which other robots share the GPU or in which order they submit.

A row that fails to decode (a malformed chunk, a horizon mismatch) comes back as its
:class:`PolicyError` in that row's place; the other rows stand. A failure of the forward pass
itself (out of memory) raises :class:`PolicyError` for the whole batch.

Checked on the tiny checkpoints (float32, CPU; test/policy/nora/test_batch.py): batched NORA and
NORA-Long tokens equal one-by-one tokens for 4 robots with different real frames and instructions
of different lengths (last hidden states after the prefill within 4e-7); NORA-1.5 normalized
actions within 2.4e-7 of one policy per robot (the test's bound: 1e-5). Batched matrix products
round differently from single ones, so in bfloat16 on a GPU a near-tie between two action tokens
could still go the other way: not measured yet (no GPU here).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from nora_ros.actions import ActionChunk
from nora_ros.camera.frame import Frame
from nora_ros.errors import FastDecodeError, InvalidInputError, NoraError, PolicyError
from nora_ros.policy.base import Policy
from nora_ros.policy.nora.compat import decoder_api
from nora_ros.policy.nora.decoding import FastConstraintProcessor
from nora_ros.policy.nora.generation import GreedySettings
from nora_ros.policy.nora.outputs import finish_actions

# The policies below are NoraPolicy and Nora15Policy; they are annotated as Policy because those
# modules call into this one (an import back would be a cycle).

PAD_ID = 151643
"""``<|endoftext|>``, Qwen2.5's padding token (any id would do: padding is masked)."""

RowResult = ActionChunk | NoraError


def left_pad(rows: Sequence[dict], pad_id: int = PAD_ID) -> dict:
    """One batch of prompt tensors from per-observation ones (each ``input_ids`` ``(1, L_i)``,
    as :func:`~nora_ros.policy.nora.inputs.observation_inputs` gives), padded on the left."""
    if not rows:
        raise InvalidInputError("a batch needs at least one observation")
    length = max(int(r["input_ids"].shape[1]) for r in rows)
    first = rows[0]["input_ids"]
    ids = torch.full((len(rows), length), pad_id, dtype=first.dtype, device=first.device)
    mask = torch.zeros_like(ids)
    mm = torch.zeros((len(rows), length), dtype=rows[0]["mm_token_type_ids"].dtype, device=first.device)
    for i, r in enumerate(rows):
        n = int(r["input_ids"].shape[1])
        ids[i, length - n:] = r["input_ids"][0]
        mask[i, length - n:] = r["attention_mask"][0]
        mm[i, length - n:] = r["mm_token_type_ids"][0]
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "pixel_values": torch.cat([r["pixel_values"] for r in rows], dim=0),
        "image_grid_thw": torch.cat([r["image_grid_thw"] for r in rows], dim=0),
        "mm_token_type_ids": mm,
    }


def rope_positions(backbone: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's 3-D rotary positions ``(3, B, L)`` (as alone; pads at 0) and its next text
    position ``(B,)``; sets the model's ``rope_deltas`` as its forward would."""
    positions, deltas = backbone.get_rope_index(
        batch["input_ids"], mm_token_type_ids=batch["mm_token_type_ids"],
        image_grid_thw=batch.get("image_grid_thw"), attention_mask=batch["attention_mask"])
    if hasattr(backbone, "rope_deltas"):
        backbone.rope_deltas = deltas
    return positions, positions.amax(dim=(0, 2)) + 1


class BatchedDecoder:
    """:class:`~nora_ros.policy.nora.decoding.CachedDecoder` for a left-padded batch: prefill all
    prompts into one cache, then one token per row per step, with explicit per-row positions, the
    growing attention mask and the cache under the keyword the installed transformers takes."""

    def __init__(self, model: torch.nn.Module):
        self.backbone = model.model
        self.api = decoder_api(type(self.backbone))
        self.cache: object | None = None
        self.mask: torch.Tensor | None = None
        self.next_positions: torch.Tensor | None = None
        self.length = 0

    def prefill(self, batch: dict) -> torch.Tensor:
        """Run the padded prompts; returns each row's last hidden state ``(B, hidden)``."""
        ids = batch["input_ids"]
        positions, self.next_positions = rope_positions(self.backbone, batch)
        kwargs: dict[str, object] = {**batch, "position_ids": positions, "use_cache": True}
        if self.api.cache_position:
            kwargs["cache_position"] = torch.arange(ids.shape[1], device=ids.device)
        out = self.backbone(**kwargs)
        self.cache = self._cache_of(out)
        self.mask = batch["attention_mask"]
        self.length = int(ids.shape[1])
        return out.last_hidden_state[:, -1]

    def step(self, tokens: Sequence[int]) -> torch.Tensor:
        """Append one token per row; returns their last hidden states ``(B, hidden)``."""
        assert self.mask is not None and self.next_positions is not None
        device = self.mask.device
        b = len(tokens)
        self.mask = torch.cat([self.mask, torch.ones((b, 1), dtype=self.mask.dtype, device=device)], dim=1)
        kwargs: dict[str, object] = {
            "input_ids": torch.tensor([list(tokens)], device=device).reshape(b, 1),
            "attention_mask": self.mask,
            "position_ids": self.next_positions.view(1, b, 1).expand(3, b, 1).contiguous(),
            "use_cache": True,
            self.api.cache_keyword: self.cache,
        }
        if self.api.cache_position:
            kwargs["cache_position"] = torch.tensor([self.length], device=device)
        out = self.backbone(**kwargs)
        self.cache = self._cache_of(out)
        self.length += 1
        self.next_positions = self.next_positions + 1
        return out.last_hidden_state[:, -1]

    def _cache_of(self, out: object) -> object:
        cache = getattr(out, self.api.cache_keyword, None)
        if cache is None:
            raise PolicyError(f"the model returned no cache (field `{self.api.cache_keyword}`) with use_cache=True")
        return cache


def batched_constrained_greedy(
    model: torch.nn.Module,
    rows: Sequence[dict],
    processors: Sequence[FastConstraintProcessor],
    head: torch.Tensor,
    max_new_tokens: int,
    on_prefill: Callable[[], None] | None = None,
    settings: GreedySettings | None = None,
) -> list[list[int]]:
    """:func:`~nora_ros.policy.nora.decoding.constrained_greedy` for several prompts at once.

    ``rows`` are per-observation prompt tensors, ``processors`` one per row (each keeps its
    row's constraint notes: :attr:`FastConstraintProcessor.dead_end`, ``wanted_more``...).
    Returns each row's generated ids, each ending with ``<|im_end|>`` unless ``max_new_tokens``
    ran out.
    """
    if len(processors) != len(rows):
        raise InvalidInputError(f"{len(rows)} observations but {len(processors)} constraint processors")
    batch = left_pad(rows)
    for p, r in zip(processors, rows, strict=True):
        p.begin(int(r["input_ids"].shape[1]))
    states = [p.constraint.start() for p in processors]
    decoder = BatchedDecoder(model)
    hidden = decoder.prefill(batch)
    if on_prefill is not None:
        on_prefill()
    settings = settings or GreedySettings()
    penalties = [settings.candidate_penalty(p.candidate_ids, r["input_ids"]) for p, r in zip(processors, rows,
                                                                                              strict=True)]
    generated: list[list[int]] = [[] for _ in rows]
    done = [False] * len(rows)
    for _ in range(max_new_tokens):
        scores = (hidden.to(head.dtype) @ head.T).float()
        feed: list[int] = []
        for i, p in enumerate(processors):
            if done[i]:
                feed.append(p.end_id)
                continue
            row = scores[i] if penalties[i] is None else penalties[i](scores[i])
            token = p.pick(states[i], row)
            generated[i].append(token)
            feed.append(token)
            if token == p.end_id:
                done[i] = True
                continue
            if penalties[i] is not None:
                penalties[i].note(token)
            states[i] = p.advance(states[i], token)
        if all(done):
            break
        hidden = decoder.step(feed)
    return generated


def prepare_rows(policy: Policy, frames: Sequence[Frame],
                 instructions: Sequence[str]) -> list[dict | NoraError]:
    """Each observation's prompt tensors, or the :class:`NoraError` that refuses it (a bad
    instruction, an image of the wrong encoding): one robot's bad input fails only its row."""
    if len(frames) != len(instructions):
        raise InvalidInputError(f"{len(frames)} frames but {len(instructions)} instructions")
    rows: list[dict | NoraError] = []
    for frame, instruction in zip(frames, instructions, strict=True):
        try:
            rows.append(policy.model_inputs(frame, instruction))
        except NoraError as exc:
            rows.append(exc)
    return rows


def nora_act_batch(policy: Policy, frames: Sequence[Frame], instructions: Sequence[str]) -> list[RowResult]:
    """:meth:`NoraPolicy.act` for several observations in one forward pass (see the module docstring)."""
    t0 = time.perf_counter()
    prepared = prepare_rows(policy, frames, instructions)
    out: list[RowResult] = [r if isinstance(r, NoraError) else None for r in prepared]  # type: ignore[misc]
    good = [i for i, r in enumerate(prepared) if not isinstance(r, NoraError)]
    if not good:
        return out
    rows = [prepared[i] for i in good]
    t1 = time.perf_counter()
    marks: list[float] = []
    cuda = policy.loaded.device.startswith("cuda")

    def prefill_done() -> None:
        if cuda:
            torch.cuda.synchronize()
        marks.append(time.perf_counter())

    processors = [copy.copy(policy.processor) for _ in rows]
    try:
        with torch.inference_mode():
            generated = batched_constrained_greedy(policy.loaded.model, rows, processors, policy._head,
                                                   policy.max_new_tokens, prefill_done, settings=policy.greedy)
    except (RuntimeError, FastDecodeError) as exc:
        raise PolicyError(f"NORA batched inference failed ({type(exc).__name__}: {exc}); the arms hold") from exc
    t3 = time.perf_counter()
    t2 = marks[0] if marks else t3
    for i, tokens, proc in zip(good, generated, processors, strict=True):
        frame = frames[i]
        s0 = time.perf_counter()
        try:
            normalized = policy.decode_tokens(tokens, proc)
        except PolicyError as exc:
            out[i] = exc
            continue
        s1 = time.perf_counter()
        actions, report = finish_actions(normalized, policy.loaded.norm_stats)
        if report:
            policy._log_clipping(report, s1)
        s2 = time.perf_counter()
        timings = {"preprocess": t1 - t0, "prefill": t2 - t1, "decode": t3 - t2, "fast_decode": s1 - s0,
                   "unnormalize": s2 - s1}
        timings["total"] = sum(timings.values())
        out[i] = ActionChunk(actions=actions, step_period=policy.step_period, model_id=policy.model_id,
                             timings=timings, token_ids=tuple(tokens), stamp=frame.stamp,
                             chunk_id=policy._chunks, metadata={**report, "batch_size": len(rows), "batch_row": i})
        policy._chunks += 1
    return out


def flow_sample_batch(policy: Policy, frames: Sequence[Frame], instructions: Sequence[str],
                      robots: Sequence[str] | None = None, rows: Sequence[dict] | None = None) -> FlowBatch:
    """The normalized ``(B, T, 7)`` chunks of several observations: one prefill, batched Euler steps.

    Row ``i`` draws its noise from ``policy.noise_for(robots[i])`` (``robots`` ``None``: all from
    the policy's own generator, in row order, as the same ``act`` calls one after another would).
    ``rows``: the prompt tensors when already computed (:func:`prepare_rows`).
    """
    from nora_ros.policy.nora.expert import PrefixKV, output_cache
    from nora_ros.policy.nora.flow import euler_times

    n = len(frames)
    if len(instructions) != n or (robots is not None and len(robots) != n):
        raise InvalidInputError(f"{n} frames, {len(instructions)} instructions, "
                                f"{'no' if robots is None else len(robots)} robots: give one of each per observation")
    sync = torch.cuda.synchronize if policy.loaded.device.startswith("cuda") else None
    t0 = time.perf_counter()
    if rows is None:
        rows = [policy.model_inputs(f, ins) for f, ins in zip(frames, instructions, strict=True)]
    sources = [policy.noise_for(r) for r in (robots if robots is not None else [None] * n)]
    draws = [s.draw() for s in sources]
    t1 = time.perf_counter()
    flow = policy.loaded.flow
    dtype = flow.action_in_proj.weight.dtype
    device = flow.action_in_proj.weight.device
    spent: list[float] = []
    try:
        with torch.inference_mode():
            batch = left_pad(rows)
            backbone = policy.loaded.vlm.model
            positions, _ = rope_positions(backbone, batch)
            out = backbone(**batch, position_ids=positions, use_cache=True)
            prefix = PrefixKV.from_cache(output_cache(out), flow.expert_config.layers, batch["attention_mask"])
            if sync is not None:
                sync()
            t2 = time.perf_counter()
            dt = -1.0 / policy.steps
            x = torch.stack([x1 for x1, _ in draws]).to(device=device, dtype=torch.float32)
            for t in euler_times(policy.steps, dtype):
                start = time.perf_counter()
                x = x + dt * flow.velocity(x, t.to(device), prefix)
                if sync is not None:
                    sync()
                spent.append(time.perf_counter() - start)
    except PolicyError:
        raise
    except (RuntimeError, ValueError) as exc:
        raise PolicyError(f"NORA-1.5 batched inference failed ({type(exc).__name__}: {exc}); the arms hold") from exc
    normalized = x.to("cpu", torch.float32).numpy()
    timings = {"preprocess": t1 - t0, "prefill": t2 - t1}
    timings.update({f"denoise_{k}": s for k, s in enumerate(spent)})
    return FlowBatch(normalized, tuple(index for _, index in draws), tuple(s.seed for s in sources), timings, t0)


@dataclass(frozen=True)
class FlowBatch:
    """:func:`flow_sample_batch`'s result: ``normalized`` ``(B, T, 7)``, each row's noise draw index
    and seed, the batch's stage timings and its start (``perf_counter``)."""

    normalized: np.ndarray
    noise_index: tuple[int, ...]
    seeds: tuple[int, ...]
    timings: dict[str, float]
    started: float


def flow_act_batch(policy: Policy, frames: Sequence[Frame], instructions: Sequence[str],
                   robots: Sequence[str] | None = None) -> list[RowResult]:
    """:meth:`Nora15Policy.act` for several observations (:func:`flow_sample_batch`), as chunks."""
    prepared = prepare_rows(policy, frames, instructions)
    out: list[RowResult] = [r if isinstance(r, NoraError) else None for r in prepared]  # type: ignore[misc]
    good = [i for i, r in enumerate(prepared) if not isinstance(r, NoraError)]
    if not good:
        return out
    result = flow_sample_batch(policy, [frames[i] for i in good], [instructions[i] for i in good],
                               None if robots is None else [robots[i] for i in good], [prepared[i] for i in good])
    t3 = time.perf_counter()
    for row, i in enumerate(good):
        frame = frames[i]
        normalized = result.normalized[row]
        if not np.all(np.isfinite(normalized)):
            out[i] = PolicyError("NORA-1.5 produced a non-finite action; the arm holds")
            continue
        actions, report = finish_actions(normalized, policy.loaded.norm_stats)
        if report:
            policy._log_clipping(report, t3)
        t4 = time.perf_counter()
        timings = {**result.timings, "unnormalize": t4 - t3, "total": t4 - result.started}
        metadata = {"action_head": "flow", "seed": result.seeds[row], "noise_index": result.noise_index[row],
                    "flow_steps": policy.steps, "dtype": policy.loaded.dtype, "batch_size": len(good),
                    "batch_row": i, **report}
        out[i] = ActionChunk(actions=actions, step_period=policy.step_period, model_id=policy.model_id,
                             timings=timings, stamp=frame.stamp, chunk_id=policy._chunks, metadata=metadata)
        policy._chunks += 1
    return out
