"""The accelerated single-observation step (``accelerate: on``), and its check at load.

Eager decoding of a 3B model is dominated by kernel launches, not by reading the weights: each
decoded token launches a few hundred small kernels, and a growing ``DynamicCache`` reallocates.
Here the same computation runs with:

- a preallocated key/value cache (:class:`StaticKV`: ``[1, kv_heads, max_len, head_dim]`` per
  layer, written in place at a position held in a device tensor) and a boolean attention mask
  over it (also in place), so that every decode step has the same shapes and addresses;
- the per-token step (embedding, 36 decoder layers, final norm) compiled with ``torch.compile``:
  ``mode="reduce-overhead"`` on a GPU, which captures it as a CUDA graph and replays it;
  inductor's default mode on a CPU (no graphs there; it is the path the CPU tests exercise);
- the FAST constraint's masks kept on the device (cached per constraint state), the repetition
  penalty and the forced-ending scores computed there too: the only host synchronisation per
  token is reading the chosen token back, which the length constraint needs (its next state
  depends on the token: a table lookup in Python);
- the prompt still prefilled by the eager code (:class:`~nora_ros.policy.nora.decoding.CachedDecoder`,
  bit for bit the eager path's prompt pass), its keys and values then copied into the static
  cache (prompts differ in length per instruction; only the fixed-shape step is captured);
- NORA-1.5: each Euler step ``x + dt v(x, t)`` compiled likewise (:class:`FlowAccelerator`).

``accelerate`` chooses (:func:`accelerate_wanted`): ``off``; ``on``, if :func:`verify_tokens` /
:meth:`FlowAccelerator.verify` agree on one probe observation at load (identical tokens for
NORA; normalized actions within :data:`FLOW_TOLERANCE` for NORA-1.5), else eager with the reason
logged; ``auto`` is off everywhere until GPU figures exist (issue 16), and is meant to become
``on`` on a GPU then. Reduced-overhead compilation can still pick other kernels than eager
(e.g. transformers packs grouped-query heads differently outside a compiled region), so the
check is per machine and per load, never assumed. CUDA graph trees are kept per thread: the
node's inference thread (:mod:`nora_ros.policy.worker`) records its own graphs on its first
steps (the same compiled kernels as the ones checked at load).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from nora_ros.policy.nora.decoding import CachedDecoder, FastConstraintProcessor
from nora_ros.policy.nora.generation import GreedySettings

log = logging.getLogger(__name__)

AUTO_IS_ON = False
"""What ``accelerate: auto`` means today: off (no GPU figures yet, issue 16). Once they show the
gain, ``auto`` becomes ``on`` where the device is a GPU (:func:`accelerate_wanted`)."""

FLOW_TOLERANCE = {"float32": 1e-4, "float16": 2e-2, "bfloat16": 5e-2}
"""Largest absolute difference of NORA-1.5's normalized actions (eager vs accelerated, same
noise) that :meth:`FlowAccelerator.verify` accepts, per dtype: a fused kernel rounds otherwise.
float32 measured on the tiny checkpoint (CPU): about 1e-6; the half-precision bounds leave room
for bfloat16's 8-bit mantissa over 10 steps (not measured on the 3B model here)."""


def accelerate_wanted(mode: str, device: str) -> tuple[bool, str]:
    """Whether ``accelerate`` ``mode`` asks for the accelerated path on ``device``, and why."""
    if mode == "off":
        return False, "accelerate: off"
    if mode == "on":
        return True, "accelerate: on"
    if AUTO_IS_ON and device.startswith("cuda"):
        return True, "accelerate: auto on a GPU"
    return False, "accelerate: auto is off until GPU figures exist (issue 16); set accelerate: on to opt in"


def compile_mode(device: torch.device | str) -> str:
    """``reduce-overhead`` (CUDA graphs) on a GPU, inductor's ``default`` elsewhere."""
    return "reduce-overhead" if torch.device(device).type == "cuda" else "default"


class StaticKV:
    """A preallocated key/value cache with the one method transformers' attention layers call.

    ``keys[i]`` / ``values[i]`` are ``[1, kv_heads, max_len, head_dim]``; :meth:`update` writes
    the new token's keys and values at :attr:`position` (a 1-element device tensor) and returns
    the whole buffers; the caller's attention mask hides what is not written yet. The position
    advances once per step (:meth:`advance`), after all layers wrote.
    """

    def __init__(self, n_layers: int, kv_heads: int, head_dim: int, max_len: int, dtype: torch.dtype,
                 device: torch.device) -> None:
        shape = (1, kv_heads, max_len, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.position = torch.zeros(1, dtype=torch.long, device=device)
        self.max_len = max_len
        for t in (*self.keys, *self.values, self.position):
            torch._dynamo.mark_static_address(t)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: object,
               **kwargs: object) -> tuple[torch.Tensor, torch.Tensor]:
        self.keys[layer_idx].index_copy_(2, self.position, key_states)
        self.values[layer_idx].index_copy_(2, self.position, value_states)
        return self.keys[layer_idx], self.values[layer_idx]

    def load(self, cache: object, length: int) -> None:
        """Copy a prefilled transformers cache's ``length`` positions in; the next token goes at ``length``."""
        from nora_ros.policy.nora.expert import cached_layer_kv

        if length >= self.max_len:
            raise ValueError(f"prompt of {length} tokens does not fit the static cache ({self.max_len})")
        for i in range(len(self.keys)):
            k, v = cached_layer_kv(cache, i)
            self.keys[i][:, :, :length].copy_(k)
            self.values[i][:, :, :length].copy_(v)
        self.position.fill_(length)

    def get_seq_length(self, layer_idx: int = 0) -> torch.Tensor:
        return self.position


class StaticDecoder:
    """NORA's decode step on a :class:`StaticKV`, compiled (see the module docstring).

    Per observation: :meth:`start` with the eager prefill's cache, then :meth:`step` per token,
    which takes the candidate index chosen on the device and returns the token's last hidden state.
    ``max_len`` bounds prompt + generated tokens. ``compile=False`` runs the same static-cache
    step uncompiled (for tests of the cache alone).
    """

    def __init__(self, model: torch.nn.Module, candidate_ids: list[int], max_len: int, compile: bool = True) -> None:
        text = model.config.get_text_config()
        self.language_model = model.model.language_model
        weight = self.language_model.embed_tokens.weight
        device, dtype = weight.device, weight.dtype
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        self.kv = StaticKV(text.num_hidden_layers, text.num_key_value_heads, head_dim, max_len, dtype, device)
        self.layer_types = sorted(set(getattr(text, "layer_types", None) or ["full_attention"]))
        self.candidates = torch.tensor(candidate_ids, dtype=torch.long, device=device)
        self.token = torch.zeros((1, 1), dtype=torch.long, device=device)
        self.rope = torch.zeros((3, 1, 1), dtype=torch.long, device=device)
        self.mask = torch.zeros((1, 1, 1, max_len), dtype=torch.bool, device=device)
        for t in (self.token, self.rope, self.mask):
            torch._dynamo.mark_static_address(t)
        self.compiled = compile
        self.mode = compile_mode(device) if compile else "none"
        self._forward = torch.compile(self._step, mode=self.mode, fullgraph=False, dynamic=False) if compile \
            else self._step

    def _step(self, token: torch.Tensor, rope: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        masks = dict.fromkeys(self.layer_types, mask)
        out = self.language_model(input_ids=token, position_ids=rope, attention_mask=masks, cache=self.kv,
                                  use_cache=True)
        return out.last_hidden_state[0, -1]

    def start(self, eager: CachedDecoder) -> None:
        """Take over a prefilled :class:`CachedDecoder`'s cache and positions."""
        self.kv.load(eager.cache, eager.length)
        self.mask.zero_()
        self.mask[..., : eager.length] = True
        self.rope.fill_(eager.next_position)

    def step(self, candidate_index: torch.Tensor) -> torch.Tensor:
        """Append the candidate chosen (a device index into ``candidate_ids``); its last hidden state."""
        self.token.copy_(self.candidates[candidate_index].view(1, 1))
        self.mask.index_fill_(3, self.kv.position, True)
        torch.compiler.cudagraph_mark_step_begin()
        hidden = self._forward(self.token, self.rope, self.mask).clone()  # a graph's output is overwritten next replay
        self.kv.position.add_(1)
        self.rope.add_(1)
        return hidden


class _DeviceMasks:
    """The constraint's candidate masks on the device, and on the host whether any is allowed."""

    def __init__(self, processor: FastConstraintProcessor, device: torch.device) -> None:
        self.processor = processor
        self.device = device
        self._any: dict[object, bool] = {}

    def get(self, state: object) -> tuple[torch.Tensor, bool]:
        mask = self.processor.candidate_mask(state, self.device)
        ok = self._any.get(state)
        if ok is None:
            c = self.processor.constraint
            ok = bool(c.done(state)) or bool(c.allowed(state)[: self.processor.n_fast].any())
            self._any[state] = ok
        return mask, ok


def accelerated_greedy(
    model: torch.nn.Module,
    decoder: StaticDecoder,
    inputs: dict[str, torch.Tensor],
    processor: FastConstraintProcessor,
    head: torch.Tensor,
    max_new_tokens: int,
    on_prefill: Callable[[], None] | None = None,
    settings: GreedySettings | None = None,
    token_times: list[float] | None = None,
) -> list[int]:
    """:func:`~nora_ros.policy.nora.decoding.constrained_greedy` on ``decoder`` (same arguments,
    same choices, same ``processor`` fields afterwards: ``dead_end``, ``wanted_more``,
    ``wanted_end``). ``token_times`` gets the seconds each generated token took (the first one
    includes choosing it from the prefill's hidden state)."""
    processor.begin(int(inputs["input_ids"].shape[1]))
    state = processor.constraint.start()
    eager = CachedDecoder(model)
    hidden = eager.prefill(inputs)
    if eager.length + max_new_tokens > decoder.kv.max_len:
        raise ValueError(f"prompt of {eager.length} tokens + {max_new_tokens} new ones exceed the static cache "
                         f"({decoder.kv.max_len})")
    decoder.start(eager)
    if on_prefill is not None:
        on_prefill()
    device = hidden.device
    masks = _DeviceMasks(processor, device)
    penalty = (settings or GreedySettings()).candidate_penalty(processor.candidate_ids, inputs["input_ids"])
    n_fast = processor.n_fast
    wanted_more = torch.full((), float("-inf"), device=device)
    wanted_end = torch.full((), float("-inf"), device=device)
    generated: list[int] = []
    start = time.perf_counter()
    for _ in range(max_new_tokens):
        scores = (head @ hidden.to(head.dtype)).float()
        if penalty is not None:
            scores = penalty(scores)
        mask, any_allowed = masks.get(state)
        if not any_allowed:
            processor._dead_end = True
            generated.append(processor.end_id)
            break
        end = scores[-1]
        if processor.constraint.done(state):  # as FastConstraintProcessor._note_forced, on the device
            wanted_more = torch.maximum(wanted_more, scores[:-1].max() - end)
        else:
            wanted_end = torch.maximum(wanted_end, end - scores[:-1].masked_fill(~mask[:-1], float("-inf")).max())
        index = torch.argmax(scores.masked_fill(~mask, float("-inf")))
        k = int(index)  # the one host synchronisation per token: the constraint's next state needs it
        token = processor.end_id if k == n_fast else processor.action_offset + k
        generated.append(token)
        if token_times is not None:
            now = time.perf_counter()
            token_times.append(now - start)
            start = now
        if token == processor.end_id:
            break
        if penalty is not None:
            penalty.note(token)
        state = processor.advance(state, token)
        hidden = decoder.step(index)
    processor.wanted_more = float(wanted_more)
    processor.wanted_end = float(wanted_end)
    return generated


@dataclass(frozen=True)
class AccelReport:
    """What the load-time check found: whether the accelerated path is used and why."""

    enabled: bool
    reason: str
    mode: str = "none"
    eager: tuple = ()
    accelerated: tuple = ()
    difference: float = 0.0
    seconds: float = 0.0


def verify_tokens(run_eager: Callable[[], list[int]], run_accelerated: Callable[[], list[int]],
                  mode: str) -> AccelReport:
    """Run the probe observation through both paths (the accelerated one twice: the first call
    compiles and, with CUDA graphs, records; the second replays) and compare the tokens."""
    t0 = time.perf_counter()
    eager = run_eager()
    try:
        first = run_accelerated()
        second = run_accelerated()
    except Exception as exc:  # noqa: BLE001 - any failure to compile or run means: eager, with the reason
        return AccelReport(False, f"the accelerated path failed at load ({type(exc).__name__}: {exc}); eager "
                           "decoding is used", mode, tuple(eager), seconds=time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    if first != eager or second != eager:
        bad = first if first != eager else second
        return AccelReport(False, f"the accelerated path decoded other tokens than the eager one on the probe "
                           f"observation ({bad} vs {eager}); eager decoding is used", mode, tuple(eager), tuple(bad),
                           seconds=seconds)
    return AccelReport(True, f"accelerated decoding ({mode}) gave the eager path's {len(eager)} tokens on the probe "
                       "observation", mode, tuple(eager), tuple(first), seconds=seconds)


class FlowAccelerator:
    """NORA-1.5's Euler step ``x + dt v(x, t)`` compiled (CUDA graphs on a GPU): :meth:`sample`
    is :func:`~nora_ros.policy.nora.flow.sample_actions` with the step replayed. The flow times
    are put on the device once; the prompt's padding mask is dropped when it hides nothing (one
    observation has none), so the step has no host synchronisation."""

    def __init__(self, flow: torch.nn.Module, steps: int, compile: bool = True) -> None:
        from nora_ros.policy.nora.flow import euler_times

        self.flow = flow
        weight = flow.action_in_proj.weight
        self.device, self.dtype = weight.device, weight.dtype
        self.steps = steps
        self.dt = -1.0 / steps
        self.times = euler_times(steps, self.dtype)
        self.device_times = [t.to(self.device) for t in self.times]
        self.mode = compile_mode(self.device) if compile else "none"
        self._step = torch.compile(self._euler, mode=self.mode, fullgraph=False) if compile else self._euler

    def _euler(self, x: torch.Tensor, t: torch.Tensor, keys: tuple[torch.Tensor, ...],
               values: tuple[torch.Tensor, ...]) -> torch.Tensor:
        from nora_ros.policy.nora.expert import PrefixKV

        return x + self.dt * self.flow.velocity(x, t, PrefixKV(keys, values, None))

    def sample(self, prefix: object, noise: torch.Tensor, sync: Callable[[], None] | None = None) -> object:
        from nora_ros.policy.nora.flow import FlowResult, sample_actions

        mask = prefix.attention_mask
        if mask is not None and not bool(mask.all()):
            return sample_actions(self.flow, prefix, noise, self.steps, sync)  # padding: the eager path handles it
        keys, values = tuple(prefix.keys), tuple(prefix.values)
        x = noise.to(device=self.device, dtype=torch.float32)[None]
        spent: list[float] = []
        with torch.inference_mode():
            for t in self.device_times:
                start = time.perf_counter()
                torch.compiler.cudagraph_mark_step_begin()
                x = self._step(x, t, keys, values).clone()
                if sync is not None:
                    sync()
                spent.append(time.perf_counter() - start)
        return FlowResult(x[0].to("cpu", torch.float32), tuple(float(t) for t in self.times), tuple(spent))

    def verify(self, prefix: object, noise: torch.Tensor) -> AccelReport:
        """Eager vs accelerated on the same prefix and noise (accelerated twice: compile/record, replay)."""
        from nora_ros.policy.nora.flow import sample_actions

        t0 = time.perf_counter()
        eager = sample_actions(self.flow, prefix, noise, self.steps).actions
        dtype = str(self.dtype).removeprefix("torch.")
        tol = FLOW_TOLERANCE.get(dtype, FLOW_TOLERANCE["float16"])
        try:
            first = self.sample(prefix, noise).actions
            second = self.sample(prefix, noise).actions
        except Exception as exc:  # noqa: BLE001 - any failure to compile or run means: eager, with the reason
            return AccelReport(False, f"the accelerated flow step failed at load ({type(exc).__name__}: {exc}); "
                               "eager sampling is used", self.mode, seconds=time.perf_counter() - t0)
        diff = max(float((first - eager).abs().max()), float((second - eager).abs().max()))
        seconds = time.perf_counter() - t0
        if not diff <= tol:  # also refuses NaN
            return AccelReport(False, f"the accelerated flow step moved the probe's normalized actions by {diff:.3g} "
                               f"(tolerance {tol:g} in {dtype}); eager sampling is used", self.mode,
                               difference=diff, seconds=seconds)
        return AccelReport(True, f"accelerated flow step ({self.mode}) within {diff:.2g} of eager on the probe "
                           f"(tolerance {tol:g} in {dtype})", self.mode, difference=diff, seconds=seconds)
