"""NORA-1.5's flow-head arithmetic in isolation: times, time embedding, rotary, noise, cache access, sizes.

Reference values are those of declare-lab/nora-1.5's ``inference/modelling_expert.py`` (read for
facts; the numbers below were printed by that code under transformers 4.54.1, float32 and bf16).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from nora_ros.errors import ConfigurationError, InvalidInputError, PolicyError  # noqa: E402
from nora_ros.policy.nora.expert import (  # noqa: E402
    ExpertConfig,
    PrefixKV,
    cached_layer_kv,
    expert_intermediate_size,
    output_cache,
    rope_1d,
)
from nora_ros.policy.nora.flow import NoiseSource, check_noise, euler_times, time_embedding  # noqa: E402

REFERENCE_T_FLOAT32 = [1.0, 0.8999999761581421, 0.7999999523162842, 0.6999999284744263, 0.5999999046325684,
                       0.49999991059303284, 0.3999999165534973, 0.2999999225139618, 0.19999992847442627,
                       0.09999992698431015]
REFERENCE_T_BFLOAT16 = [1.0, 0.8984375, 0.796875, 0.6953125, 0.59375, 0.494140625, 0.39453125, 0.294921875,
                        0.1953125, 0.09521484375]


def test_euler_times_accumulate_in_the_model_dtype_as_the_reference():
    assert [float(t) for t in euler_times(10, torch.float32)] == REFERENCE_T_FLOAT32
    assert [float(t) for t in euler_times(10, torch.bfloat16)] == REFERENCE_T_BFLOAT16
    assert float(euler_times(10, torch.float32)[1]) != 0.9  # not 1 - k/10: that moves the output by ~1e-4
    assert len(euler_times(3, torch.float32)) == 3 and len(euler_times(1, torch.float32)) == 1


def test_a_step_count_bfloat16_cannot_count_is_refused():
    with pytest.raises(ConfigurationError, match="does not give 1000 steps"):
        euler_times(1000, torch.bfloat16)


def test_time_embedding_is_sines_then_cosines_over_periods_4e3_to_4():
    width = 8
    t = torch.tensor([0.3])
    emb = time_embedding(t, width)
    periods = [4e-3 * (4.0 / 4e-3) ** (i / 3) for i in range(4)]
    angles = [2 * math.pi / p * 0.3 for p in periods]
    expected = [math.sin(a) for a in angles] + [math.cos(a) for a in angles]
    assert emb.shape == (1, width) and emb.dtype == torch.float32
    torch.testing.assert_close(emb[0], torch.tensor(expected), rtol=0, atol=2e-5)
    with pytest.raises(ConfigurationError):
        time_embedding(t, 7)


def test_rope_1d_pairs_the_two_halves_with_base_10000():
    d = 4
    x = torch.randn(1, 2, 3, d, generator=torch.Generator().manual_seed(0))
    out = rope_1d(x, torch.arange(3))
    for pos in range(3):
        for j in range(d // 2):
            a = pos / 10000.0 ** (2 * j / d)
            x1, x2 = x[..., pos, j], x[..., pos, j + d // 2]
            torch.testing.assert_close(out[..., pos, j], x1 * math.cos(a) - x2 * math.sin(a))
            torch.testing.assert_close(out[..., pos, j + d // 2], x2 * math.cos(a) + x1 * math.sin(a))
    torch.testing.assert_close(out[..., 0, :], x[..., 0, :])  # position 0 is the identity


def test_expert_sizes_follow_the_reference_for_qwen25_vl_3b():
    text = SimpleNamespace(hidden_size=2048, num_attention_heads=16, num_key_value_heads=2, num_hidden_layers=36,
                           rms_norm_eps=1e-6)
    c = ExpertConfig.from_vlm(text)
    assert (c.hidden, c.heads, c.head_dim, c.kv_heads, c.intermediate, c.layers, c.eps, c.rope_base) == \
        (768, 6, 128, 2, 2048, 36, 1e-6, 10000.0)
    assert expert_intermediate_size(48) == 256


def test_a_vlm_whose_head_width_the_expert_cannot_share_is_a_configuration_error():
    text = SimpleNamespace(hidden_size=2048, num_attention_heads=8, num_key_value_heads=2, num_hidden_layers=2,
                           rms_norm_eps=1e-6)
    with pytest.raises(ConfigurationError, match="must match"):
        ExpertConfig.from_vlm(text)


def test_noise_source_restarts_at_the_seed_and_counts_draws():
    source = NoiseSource(seed=7, horizon=5)
    first, i0 = source.draw()
    second, i1 = source.draw()
    assert (i0, i1) == (0, 1) and first.shape == (5, 7) and first.dtype == torch.float32
    assert not torch.equal(first, second)
    source.restart()
    again, i = source.draw()
    assert i == 0 and torch.equal(again, first)
    assert torch.equal(first, torch.randn((5, 7), generator=torch.Generator().manual_seed(7)))
    assert not torch.equal(first, NoiseSource(seed=8, horizon=5).draw()[0])


def test_given_noise_is_checked():
    import numpy as np

    assert check_noise(np.zeros((1, 5, 7)), 5).shape == (5, 7)
    with pytest.raises(InvalidInputError, match=r"shape \(5, 7\)"):
        check_noise(np.zeros((7, 5)), 5)
    with pytest.raises(InvalidInputError, match="NaN"):
        check_noise(np.full((5, 7), np.nan), 5)


@pytest.mark.parametrize("layout", ["layers", "key_cache", "tuple"])
def test_cached_layer_kv_reads_every_cache_layout_we_support(layout):
    k = [torch.full((1, 2, 3, 4), float(i)) for i in range(2)]
    v = [torch.full((1, 2, 3, 4), 10.0 + i) for i in range(2)]
    if layout == "layers":  # transformers >= 4.54 (5.x): DynamicCache.layers[i].keys
        cache = SimpleNamespace(layers=[SimpleNamespace(keys=a, values=b) for a, b in zip(k, v, strict=True)])
    elif layout == "key_cache":  # transformers 4.50-4.53
        cache = SimpleNamespace(key_cache=k, value_cache=v)
    else:
        cache = tuple(zip(k, v, strict=True))
    prefix = PrefixKV.from_cache(cache, 2)
    assert prefix.length == 3 and torch.equal(prefix.keys[1], k[1]) and torch.equal(prefix.values[0], v[0])


def test_an_unknown_cache_or_a_short_one_is_refused():
    with pytest.raises(PolicyError, match="not supported"):
        cached_layer_kv(object(), 0)
    with pytest.raises(PolicyError, match="no layer 3"):
        cached_layer_kv(SimpleNamespace(layers=[]), 3)
    with pytest.raises(PolicyError, match="no key/value cache"):
        output_cache(SimpleNamespace())
    assert output_cache(SimpleNamespace(past_key_values="old")) == "old"
    assert output_cache(SimpleNamespace(cache="new", past_key_values="old")) == "new"
