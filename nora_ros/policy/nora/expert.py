"""NORA-1.5's action expert: a small Qwen2.5 decoder that reads the VLM's cached keys/values.

The expert is a plain torch module, built from the VLM's text config by the reference's rules
(declare-lab/nora-1.5, DESIGN.md section 6), because its arithmetic differs from a stock
Qwen2.5 decoder in ways a transformers subclass would hide:

- width ``int(0.375 * H)``, 6 attention heads whose width must equal the VLM's (its keys are
  concatenated with the VLM's), the VLM's layer count, KV heads and RMSNorm epsilon, and an
  intermediate size ``256 * ceil(4 * int(2E / 3) / 256)``; q/k/v with bias, o without;
- its own 1-D rotary embedding, base 10000, on positions ``0..T-1`` (not the VLM's M-RoPE with
  base 1e6, not continuing the prompt's positions);
- layer ``i`` attends to the VLM's layer-``i`` cached keys/values (after M-RoPE, before the GQA
  repeat) followed by its own, with no causal mask: every action token sees the whole prompt and
  every other action token. Its own keys/values are never cached;
- no token embeddings: its input is the flow head's action/time embedding
  (:mod:`nora_ros.policy.nora.flow`).

Parameter names equal the reference's ``action_expert.*`` keys (``layers.{i}.self_attn.q_proj``,
``layers.{i}.mlp.gate_proj``, ``norm``...), so a checkpoint loads into it strictly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nora_ros.errors import ConfigurationError, PolicyError

WIDTH_MULTIPLIER = 0.375
"""Expert width / VLM width (the reference's ``lm_expert_width_multiplier``)."""

EXPERT_HEADS = 6
"""The reference's ``lm_expert_num_attention_head``."""

ROPE_BASE = 10000.0
"""The expert's rotary base: hard-coded in the reference, whatever the VLM config says."""


def expert_intermediate_size(width: int, multiplier: int = 4, multiple_of: int = 256) -> int:
    """The reference's MLP width rule for an expert of ``width``: ``int(2w/3)``, times 4,
    rounded up to a multiple of 256 (768 -> 2048 for NORA-1.5)."""
    hidden = int(multiplier * int(2 * width / 3))
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


@dataclass(frozen=True)
class ExpertConfig:
    """Sizes of the action expert; :meth:`from_vlm` derives them as the reference does."""

    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    layers: int
    eps: float
    rope_base: float = ROPE_BASE

    def __post_init__(self) -> None:
        if self.heads * self.head_dim != self.hidden:
            raise ConfigurationError(f"expert hidden {self.hidden} != heads {self.heads} x head width {self.head_dim}")
        if self.kv_heads < 1 or self.heads % self.kv_heads:
            raise ConfigurationError(f"expert heads {self.heads} must be a multiple of the KV heads {self.kv_heads}")
        if self.head_dim % 2:
            raise ConfigurationError(f"expert head width {self.head_dim} must be even for its rotary embedding")

    @classmethod
    def from_vlm(cls, text_config: object, width_multiplier: float = WIDTH_MULTIPLIER,
                 heads: int = EXPERT_HEADS) -> ExpertConfig:
        """The expert for a Qwen2.5-VL text config (``hidden_size``, ``num_attention_heads``,
        ``num_key_value_heads``, ``num_hidden_layers``, ``rms_norm_eps``, optional ``head_dim``).

        Raises :class:`ConfigurationError` when the expert's head width (``int(m H) / heads``)
        is not the VLM's: its keys could not be concatenated with the VLM's cached ones
        (Qwen2.5-VL-3B: 768 / 6 = 2048 / 16 = 128).
        """
        h = int(text_config.hidden_size)
        vlm_heads = int(text_config.num_attention_heads)
        vlm_head_dim = int(getattr(text_config, "head_dim", None) or h // vlm_heads)
        width = int(h * width_multiplier)
        if width % heads or width // heads != vlm_head_dim:
            raise ConfigurationError(
                f"the action expert's heads would be {width}/{heads} = {width / heads:g} wide but the VLM's are "
                f"{vlm_head_dim} (hidden {h}, {vlm_heads} heads): the expert attends to the VLM's cached keys, so "
                f"the widths must match; NORA-1.5 needs a VLM with {int(heads / width_multiplier)} attention heads "
                f"(Qwen2.5-VL-3B has 16)")
        return cls(
            hidden=width,
            heads=heads,
            kv_heads=int(text_config.num_key_value_heads),
            head_dim=vlm_head_dim,
            intermediate=expert_intermediate_size(width),
            layers=int(text_config.num_hidden_layers),
            eps=float(text_config.rms_norm_eps),
        )


@dataclass(frozen=True)
class PrefixKV:
    """The VLM prompt's per-layer keys and values, ``[B, kv_heads, L, head_dim]`` each (keys
    already carry the VLM's M-RoPE), plus an optional ``[B, L]`` padding mask (1 = real token)."""

    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    attention_mask: torch.Tensor | None = None

    @classmethod
    def from_cache(cls, cache: object, n_layers: int, attention_mask: torch.Tensor | None = None) -> PrefixKV:
        pairs = [cached_layer_kv(cache, i) for i in range(n_layers)]
        return cls(tuple(k for k, _ in pairs), tuple(v for _, v in pairs), attention_mask)

    @property
    def length(self) -> int:
        return int(self.keys[0].shape[-2])


def output_cache(output: object) -> object:
    """The key/value cache of a transformers model output: ``.cache`` in transformers >= 5.x (where
    ``.past_key_values`` is a deprecated alias), ``.past_key_values`` before."""
    cache = getattr(output, "cache", None)
    if cache is None:
        cache = getattr(output, "past_key_values", None)
    if cache is None:
        raise PolicyError("the VLM returned no key/value cache (was use_cache=True passed?)")
    return cache


def cached_layer_kv(cache: object, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Layer ``layer``'s keys and values from a transformers cache, on the versions we know.

    transformers 5.x (and 4.54+) keep ``cache.layers[i].keys/.values``; 4.50-4.53 kept
    ``cache.key_cache[i]/.value_cache[i]``; a legacy cache is a tuple of ``(k, v)`` pairs.
    Anything else is refused here rather than read wrongly.
    """
    layers = getattr(cache, "layers", None)
    try:
        if layers is not None:
            entry = layers[layer]
            keys, values = entry.keys, entry.values
        elif hasattr(cache, "key_cache"):
            keys, values = cache.key_cache[layer], cache.value_cache[layer]
        elif isinstance(cache, (tuple, list)):
            keys, values = cache[layer][0], cache[layer][1]
        else:
            raise PolicyError(
                f"cannot read the VLM's key/value cache: {type(cache).__name__} has neither .layers[i].keys "
                "(transformers >= 4.54) nor .key_cache[i] (4.50-4.53); this transformers version is not supported")
    except IndexError as exc:
        raise PolicyError(f"the VLM's cache has no layer {layer}: the expert has more layers than the VLM") from exc
    if not isinstance(keys, torch.Tensor) or keys.ndim != 4 or not isinstance(values, torch.Tensor):
        raise PolicyError(f"the VLM's cached keys of layer {layer} are not [batch, kv_heads, length, head_dim] tensors")
    return keys, values


def rope_1d(x: torch.Tensor, positions: torch.Tensor, base: float = ROPE_BASE) -> torch.Tensor:
    """Rotary embedding of ``x`` ``[B, heads, T, d]`` at ``positions`` ``[T]``, computed in float32.

    Pairs are the two halves of a head (``x[:d/2]`` with ``x[d/2:]``), frequency ``j`` is
    ``base^(-2j/d)``; the angle is ``position / base^(2j/d)`` (a division, as the reference computes
    it, so float32 results agree to the last bit).
    """
    half = x.shape[-1] // 2
    exponents = (2.0 / x.shape[-1]) * torch.arange(half, dtype=torch.float32, device=x.device)
    radians = positions.to(torch.float32)[:, None] / (base**exponents)[None, :]  # [T, d/2]
    cos, sin = torch.cos(radians), torch.sin(radians)
    xf = x.to(torch.float32)
    x1, x2 = xf[..., :half], xf[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)


class RMSNorm(nn.Module):
    """Qwen2's RMSNorm: normalized in float32, cast back, then scaled by the gain."""

    def __init__(self, width: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        hf = h.to(torch.float32)
        hf = hf * torch.rsqrt(hf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * hf.to(h.dtype)


class ExpertAttention(nn.Module):
    """Action tokens attending to [VLM prompt keys, own keys], bidirectionally, with GQA."""

    def __init__(self, config: ExpertConfig) -> None:
        super().__init__()
        self.config = config
        kv = config.kv_heads * config.head_dim
        self.q_proj = nn.Linear(config.hidden, config.hidden, bias=True)
        self.k_proj = nn.Linear(config.hidden, kv, bias=True)
        self.v_proj = nn.Linear(config.hidden, kv, bias=True)
        self.o_proj = nn.Linear(config.hidden, config.hidden, bias=False)

    def forward(self, h: torch.Tensor, positions: torch.Tensor, prefix_k: torch.Tensor, prefix_v: torch.Tensor,
                mask: torch.Tensor | None) -> torch.Tensor:
        c = self.config
        b, t, _ = h.shape
        q = self.q_proj(h).view(b, t, c.heads, c.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(b, t, c.kv_heads, c.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(b, t, c.kv_heads, c.head_dim).transpose(1, 2)
        q, k = rope_1d(q, positions, c.rope_base), rope_1d(k, positions, c.rope_base)
        keys = torch.cat([prefix_k.to(q.dtype), k], dim=2)
        values = torch.cat([prefix_v.to(q.dtype), v], dim=2)
        group = c.heads // c.kv_heads  # query head j reads KV head j // group
        keys, values = keys.repeat_interleave(group, dim=1), values.repeat_interleave(group, dim=1)
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=c.head_dim**-0.5)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, c.hidden))


class ExpertMLP(nn.Module):
    """SiLU-gated MLP without biases (Qwen2's)."""

    def __init__(self, config: ExpertConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden, config.intermediate, bias=False)
        self.up_proj = nn.Linear(config.hidden, config.intermediate, bias=False)
        self.down_proj = nn.Linear(config.intermediate, config.hidden, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class ExpertLayer(nn.Module):
    """Pre-norm decoder layer: ``h + attn(norm(h))``, then ``h + mlp(norm(h))``."""

    def __init__(self, config: ExpertConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden, config.eps)
        self.self_attn = ExpertAttention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden, config.eps)
        self.mlp = ExpertMLP(config)

    def forward(self, h: torch.Tensor, positions: torch.Tensor, prefix_k: torch.Tensor, prefix_v: torch.Tensor,
                mask: torch.Tensor | None) -> torch.Tensor:
        h = h + self.self_attn(self.input_layernorm(h), positions, prefix_k, prefix_v, mask)
        return h + self.mlp(self.post_attention_layernorm(h))


class ActionExpert(nn.Module):
    """The expert's decoder stack and final norm (no embeddings): ``[B, T, E]`` in and out."""

    def __init__(self, config: ExpertConfig) -> None:
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(ExpertLayer(config) for _ in range(config.layers))
        self.norm = RMSNorm(config.hidden, config.eps)

    def forward(self, h: torch.Tensor, prefix: PrefixKV) -> torch.Tensor:
        if len(prefix.keys) != len(self.layers):
            raise PolicyError(f"the VLM cache has {len(prefix.keys)} layers, the expert {len(self.layers)}")
        t = h.shape[1]
        positions = torch.arange(t, device=h.device)
        mask = _attention_mask(prefix.attention_mask, t, h.device)
        for layer, k, v in zip(self.layers, prefix.keys, prefix.values, strict=True):
            h = layer(h, positions, k, v, mask)
        return self.norm(h)


def _attention_mask(prefix_mask: torch.Tensor | None, t: int, device: torch.device) -> torch.Tensor | None:
    """``[B, 1, T, L + T]`` boolean mask hiding the prompt's padding (None: nothing to hide).

    Every action token may see every real prompt token and all T action tokens.
    """
    if prefix_mask is None or bool(prefix_mask.all()):
        return None
    keep = torch.cat([prefix_mask.to(device=device, dtype=torch.bool),
                      torch.ones(prefix_mask.shape[0], t, dtype=torch.bool, device=device)], dim=1)
    return keep[:, None, None, :].expand(-1, 1, t, -1)
