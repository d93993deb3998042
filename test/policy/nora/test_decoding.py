"""The own decoding loop passes positions and the cache explicitly, and each step equals a full
forward pass (no cache, positions the model computes itself) over everything so far."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest_nora import tiny_checkpoint  # noqa: F401  (session fixture)

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from nora_ros.camera.frame import Frame  # noqa: E402
from nora_ros.policy.nora.compat import decoder_api  # noqa: E402
from nora_ros.policy.nora.config import NoraConfig  # noqa: E402
from nora_ros.policy.nora.decoding import CachedDecoder, constrained_greedy  # noqa: E402
from nora_ros.policy.nora.policy import NoraPolicy  # noqa: E402
from nora_ros.policy.nora.qwen_vocab import ACTION_TOKEN_OFFSET  # noqa: E402


@pytest.fixture(scope="module")
def policy(tiny_checkpoint):  # noqa: F811
    return NoraPolicy(NoraConfig(model=str(tiny_checkpoint), device="cpu"))


@pytest.fixture
def inputs(policy):
    image = np.random.default_rng(5).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    return policy.model_inputs(Frame(image, 0.0), "put the carrot on the plate")


def _full_pass(model, inputs: dict, tokens: list[int]) -> torch.Tensor:
    """The last hidden states of prompt + ``tokens`` in one pass, without a cache."""
    full = dict(inputs)
    extra = torch.tensor([tokens], dtype=inputs["input_ids"].dtype)
    full["input_ids"] = torch.cat([inputs["input_ids"], extra], dim=1)
    full["attention_mask"] = torch.ones_like(full["input_ids"])
    full["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(extra, dtype=torch.int32)], 1)
    return model.model(**full, use_cache=False).last_hidden_state[0]


def test_prefill_positions_are_the_models_and_steps_continue_after_their_maximum(policy, inputs):
    """64 image tokens on an 8x8 merged grid span 8 positions: the first generated token sits at
    the prompt's largest position + 1 (length - 56), not at its length, on all three axes."""
    length = inputs["input_ids"].shape[1]
    with torch.inference_mode():
        decoder = CachedDecoder(policy.loaded.model)
        decoder.prefill(inputs)
    assert decoder.length == length
    assert decoder.next_position == length - 56
    assert policy.loaded.model.model.rope_deltas.tolist() == [[-56]]
    assert decoder.step_positions().tolist() == [[[length - 56]]] * 3


def test_every_cached_step_equals_a_full_forward_pass(policy, inputs):
    tokens = [ACTION_TOKEN_OFFSET + k for k in (7, 7, 1500, 3, 2047)]
    model = policy.loaded.model
    with torch.inference_mode():
        decoder = CachedDecoder(model)
        cached = [decoder.prefill(inputs)] + [decoder.step(t) for t in tokens]
        full = _full_pass(model, inputs, tokens)
    for k, hidden in enumerate(cached):
        torch.testing.assert_close(hidden, full[-len(cached) + k], rtol=1e-4, atol=1e-5)


def test_each_step_passes_positions_and_the_cache_under_the_installed_keyword(policy, inputs, monkeypatch):
    """No deprecated keyword (5.25 warns for past_key_values, which 5.40 drops), nothing inferred."""
    backbone = policy.loaded.model.model
    keyword = decoder_api(type(backbone)).cache_keyword
    calls: list[dict] = []
    forward = backbone.forward

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return forward(*args, **kwargs)

    monkeypatch.setattr(backbone, "forward", spy)
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("error", FutureWarning)
        generated = constrained_greedy(policy.loaded.model, inputs, policy.processor, policy._head, policy.max_new_tokens)
    steps = calls[1:]
    assert len(steps) == len(generated) - 1  # no step after <|im_end|>
    first = inputs["input_ids"].shape[1] - 56
    for k, call in enumerate(steps):
        assert call.get(keyword) is not None and call["use_cache"] is True
        assert call["position_ids"].shape == (3, 1, 1)
        assert call["position_ids"].flatten().tolist() == [first + k] * 3
        assert "past_key_values" not in call or keyword == "past_key_values"
    assert calls[0]["position_ids"].shape == (3, 1, inputs["input_ids"].shape[1])


def test_a_batch_is_refused(policy, inputs):
    from nora_ros.errors import PolicyError

    batch = {k: torch.cat([v, v]) if k in ("input_ids", "attention_mask", "mm_token_type_ids") else v
             for k, v in inputs.items()}
    with pytest.raises(PolicyError, match="one sequence"):
        CachedDecoder(policy.loaded.model).prefill(batch)
