"""FAST+ tokenizer: round trips on real Bridge actions, every decode failure, save/load, and the
length-aware constraint that NORA's constrained decoding builds on."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from conftest import shared_data_path
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.fft import dct, idct
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from nora_ros.actions import NormStats
from nora_ros.errors import ConfigurationError, FastDecodeError, InvalidInputError
from nora_ros.policy.fast.codec import coefficient_bounds
from nora_ros.policy.fast.constraint import FastConstraint, FastState
from nora_ros.policy.fast.tokenizer import FastTokenizer

ROUNDING_BOUND = 0.05
"""Half a rounding step at scale 10, in normalized units: the most rounding moves a coefficient."""

FIT_VOCAB = 512


def _windows(actions: np.ndarray, horizon: int) -> list[np.ndarray]:
    return [actions[i : i + horizon] for i in range(len(actions) - horizon + 1)]


@pytest.fixture(scope="module")
def normalized_episodes() -> list[np.ndarray]:
    """Every real Bridge episode's actions in the model's space: bridge_orig-normalized, clipped."""
    folder = shared_data_path("octo_bridge_debug", "extracted_train")
    stats = NormStats.from_json(shared_data_path("norm_stats", "bridge_orig_action_stats.json"), "bridge_orig")
    files = sorted(folder.glob("episode_*.npz"))
    assert len(files) == 25
    return [np.clip(stats.normalize(np.load(f)["action"]), -1.0, 1.0) for f in files]


@pytest.fixture(scope="module")
def fast(normalized_episodes) -> FastTokenizer:
    """A table fitted once on the real episodes' T = 1 and T = 5 chunks."""
    chunks = [w for ep in normalized_episodes for t in (1, 5) for w in _windows(ep, t)]
    return FastTokenizer.fit(chunks, vocab_size=FIT_VOCAB)


def _synthetic_chunks(count: int = 400, seed: int = 7) -> list[np.ndarray]:
    """Smooth random walks in [-1, 1], T = 1 and 5: a stand-in table fit that needs no data."""
    rng = np.random.default_rng(seed)
    return [
        np.clip(np.cumsum(rng.normal(0.0, 0.15, (t, 7)), axis=0), -1.0, 1.0)
        for t in rng.choice([1, 5], size=count)
    ]


@pytest.fixture(scope="module", params=["synthetic", "real-bridge"])
def table(request) -> FastTokenizer:
    """Tests of behaviour that holds for any table run on a synthetic fit (always) and on the
    real-episode fit (skipped when ../shared/data is absent)."""
    if request.param == "real-bridge":
        return request.getfixturevalue("fast")
    return FastTokenizer.fit(_synthetic_chunks(), vocab_size=FIT_VOCAB)


@pytest.fixture(scope="module")
def byte_token(table) -> dict[int, int]:
    """Byte value -> id of the single-byte token that spells it."""
    return {table.token_bytes(i)[0]: i for i in range(table.vocab_size) if len(table.token_bytes(i)) == 1}


def _ids_for_bytes(byte_token: dict[int, int], data: bytes) -> list[int]:
    return [byte_token[b] for b in data]


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(("horizon", "expected_chunks"), [(1, 250), (5, 150)])
def test_round_trip_on_every_real_bridge_episode_is_within_the_rounding_bound(
    fast, normalized_episodes, horizon, expected_chunks
):
    chunks = [w for ep in normalized_episodes for w in _windows(ep, horizon)]
    assert len(chunks) == expected_chunks
    worst_coef = worst_action = 0.0
    for chunk in chunks:
        ids = fast.encode(chunk)
        assert ids and all(0 <= i < fast.vocab_size for i in ids)
        out = fast.decode(ids, horizon, 7)
        assert out.shape == (horizon, 7) and out.dtype == np.float64
        coef_err = np.abs(dct(out, axis=0, norm="ortho") - dct(chunk, axis=0, norm="ortho")).max()
        assert coef_err <= ROUNDING_BOUND + 1e-9
        # Orthonormal DCT: each dimension's action error has the L2 norm of its coefficient
        # error, so no action moves by more than 0.05 * sqrt(T).
        act_err = np.abs(out - chunk).max()
        assert act_err <= ROUNDING_BOUND * math.sqrt(horizon) + 1e-9
        # And it is exactly the FAST pipeline: round half to even at scale 10, inverse DCT.
        expected = idct(np.around(dct(chunk, axis=0, norm="ortho") * 10) / 10, axis=0, norm="ortho")
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
        worst_coef, worst_action = max(worst_coef, coef_err), max(worst_action, act_err)
    # Real data does get rounded (the bound is not met trivially by an identity).
    assert worst_coef > 0.02 and worst_action > 0.01


def test_fitted_table_compresses_real_chunks(fast, normalized_episodes):
    chunks = [w for ep in normalized_episodes for w in _windows(ep, 5)]
    lengths = [len(fast.encode(c)) for c in chunks]
    # 35 coefficients, each a 2-byte character: BPE must spell them in far fewer tokens.
    assert np.mean(lengths) < 35 * 2 * 0.5


def test_encoding_is_dct_scaled_rounded_frequency_major_minus_min_token(table):
    one_step = np.array([[0.24, -0.26, 0.76, -0.74, 1.0, -1.0, 0.0]])
    # T = 1: the orthonormal DCT is the identity; x 10 and rounded.
    expected = [2, -3, 8, -7, 10, -10, 0]
    text = table.tokenizer.decode(table.encode(one_step))
    assert [ord(c) + table.min_token for c in text] == expected
    # T = 2, D = 2: dim 0 = [1, 1] -> DCT (1.414, 0); dim 1 = [1, 0] -> (0.707, 0.707).
    two_steps = np.array([[1.0, 1.0], [1.0, 0.0]])
    text = table.tokenizer.decode(table.encode(two_steps))
    assert [ord(c) + table.min_token for c in text] == [14, 7, 0, 7]  # freq 0 of both dims, then freq 1


def test_our_byte_decoding_agrees_with_the_tokenizers_library(fast, normalized_episodes):
    for chunk in _windows(normalized_episodes[3], 5):
        ids = fast.encode(chunk)
        codes = [ord(c) for c in fast.tokenizer.decode(ids)]
        np.testing.assert_array_equal(np.round(dct(fast.decode(ids, 5), axis=0, norm="ortho") * 10).reshape(-1),
                                      np.array(codes) + fast.min_token)


def test_encode_rejects_bad_chunks_without_clipping(table):
    with pytest.raises(InvalidInputError, match="non-finite value at step 0, dim 2"):
        table.encode(np.array([[0.0, 0.0, np.nan, 0, 0, 0, 0]]))
    with pytest.raises(InvalidInputError, match="outside the normalized range"):
        table.encode(np.array([[0.0, 1.2, 0, 0, 0, 0, 0]]))
    with pytest.raises(InvalidInputError, match="shape"):
        table.encode(np.zeros(7))


def test_fit_validates_its_inputs():
    with pytest.raises(ConfigurationError, match="at least 256"):
        FastTokenizer.fit([np.zeros((1, 7))], vocab_size=100)
    with pytest.raises(InvalidInputError, match="at least one"):
        FastTokenizer.fit([])
    with pytest.raises(InvalidInputError, match="chunk 1"):
        FastTokenizer.fit([np.zeros((1, 7)), np.full((1, 7), np.inf)])


# --------------------------------------------------------------------------- decode failures


def _reason(table, ids, horizon=1, action_dim=7) -> FastDecodeError:
    with pytest.raises(FastDecodeError) as info:
        table.decode(ids, horizon, action_dim)
    return info.value


def test_decode_empty(table):
    err = _reason(table, [])
    assert err.reason == "empty"


def test_decode_token_outside_vocabulary(table):
    err = _reason(table, [5, table.vocab_size])
    assert err.reason == "token" and f"id {table.vocab_size} at position 1" in str(err)
    assert _reason(table, [-1]).reason == "token"
    assert _reason(table, [1.5, 2.0]).reason == "token"


def test_decode_broken_utf8_is_reported_not_replaced(table, byte_token):
    zero = chr(-table.min_token).encode("utf-8")  # coefficient 0: two bytes (U+0162)
    # A sequence that stops inside a character (the lead byte alone).
    err = _reason(table, _ids_for_bytes(byte_token, zero * 6 + zero[:1]))
    assert err.reason == "utf8" and "ends inside a character" in str(err)
    # A continuation byte with no lead byte.
    err = _reason(table, _ids_for_bytes(byte_token, zero * 3 + b"\xa2" + zero * 3))
    assert err.reason == "utf8" and "at byte 6" in str(err)


def test_decode_character_outside_alphabet(table, byte_token):
    zero = chr(-table.min_token).encode("utf-8")
    err = _reason(table, _ids_for_bytes(byte_token, zero * 6 + chr(800).encode("utf-8")))
    assert err.reason == "alphabet" and "U+0320" in str(err)
    # U+FFFD itself (what a lossy decoder would have produced) is no coefficient either.
    assert _reason(table, _ids_for_bytes(byte_token, "\ufffd".encode() + zero * 6)).reason == "alphabet"


def test_decode_wrong_number_of_coefficients(table):
    one_step = table.encode(np.full((1, 7), 0.3))
    err = _reason(table, one_step, horizon=2)
    assert err.reason == "length" and "expected 14 coefficients (2 steps x 7 dims), got 7" in str(err)
    five_steps = table.encode(np.linspace(-0.5, 0.5, 35).reshape(5, 7))
    assert "got 35" in str(_reason(table, five_steps, horizon=1))


def test_decode_coefficient_out_of_range(table):
    # T = 1: the coefficient is the action itself, so 1.1 (11 at scale 10) is beyond [-1, 1]
    # although the alphabet (-35.4 .. 35.4) holds it.
    text = "".join(chr(v - table.min_token) for v in [0, 0, 0, 11, 0, 0, 0])
    err = _reason(table, table.tokenizer.encode(text).ids)
    assert err.reason == "range" and "coefficient 1.1 (frequency 0, dim 3) exceeds 1" in str(err)
    # The edge value itself decodes.
    text = "".join(chr(v - table.min_token) for v in [0, 0, 0, 10, -10, 0, 0])
    np.testing.assert_allclose(table.decode(table.tokenizer.encode(text).ids, 1), [[0, 0, 0, 1, -1, 0, 0]])


def test_coefficient_bounds_are_the_largest_any_chunk_in_range_reaches():
    bound = coefficient_bounds(5, 1, 10.0)
    basis = dct(np.eye(5), axis=0, norm="ortho")
    for k in range(5):
        extreme = np.sign(basis[k])  # the chunk in [-1, 1] maximizing coefficient k
        reached = np.around(dct(extreme, norm="ortho")[k] * 10)
        assert reached == bound[k]
    assert bound[0] == 22  # sqrt(5) = 2.236


# --------------------------------------------------------------------------- save / load


def test_save_load_round_trip(table, tmp_path):
    folder = table.save(tmp_path / "fast")
    assert json.loads((folder / "processor_config.json").read_text())["vocab_size"] == table.vocab_size
    chunks = [c for c in _synthetic_chunks(60, seed=11) if len(c) == 5]
    for source in (folder, folder / "tokenizer.json"):
        loaded = FastTokenizer.load(source)
        assert (loaded.vocab_size, loaded.scale, loaded.min_token, loaded.max_token) == (
            table.vocab_size, table.scale, table.min_token, table.max_token)
        for chunk in chunks:
            ids = table.encode(chunk)
            assert loaded.encode(chunk) == ids
            np.testing.assert_array_equal(loaded.decode(ids, 5), table.decode(ids, 5))


def test_load_without_config_takes_fast_plus_defaults(table, tmp_path):
    table.save(tmp_path / "a")
    (tmp_path / "b").mkdir()
    shutil.copy(tmp_path / "a" / "tokenizer.json", tmp_path / "b" / "tokenizer.json")
    loaded = FastTokenizer.load(tmp_path / "b")
    assert (loaded.scale, loaded.min_token, loaded.max_token) == (10.0, -354, 354)


def test_load_reference_style_table_infers_alphabet_from_raw_entries(tmp_path):
    """The FAST+ reference trains with every raw ``chr(i)`` of its alphabet as an initial
    entry; without a config the alphabet end is read from them, and those entries decode to
    their own character (as tokenizers' ByteLevel decoder does)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    alphabet = [chr(i) for i in range(800)]
    trainer = trainers.BpeTrainer(vocab_size=1000, min_frequency=2, special_tokens=[], initial_alphabet=alphabet,
                                  show_progress=False)
    tok.train_from_iterator(["".join(chr(354 + d) for d in (0, 1, -1, 2, 0, 0, 0))] * 5, trainer=trainer)
    tok.save(str(tmp_path / "tokenizer.json"))
    loaded = FastTokenizer.load(tmp_path)
    assert loaded.max_token == 799 - 354
    raw = tok.token_to_id(chr(355))  # a raw entry, not a byte symbol: it means U+0163
    zero = tok.token_to_id(chr(354))
    np.testing.assert_allclose(loaded.decode([raw] + [zero] * 6, 1), [[0.1, 0, 0, 0, 0, 0, 0]])
    assert tok.decode([raw]) == chr(355)


def test_load_rejects_what_is_not_a_fast_table(table, tmp_path):
    with pytest.raises(ConfigurationError, match="does not exist"):
        FastTokenizer.load(tmp_path / "nowhere")
    folder = table.save(tmp_path / "mismatch")
    cfg = json.loads((folder / "processor_config.json").read_text())
    (folder / "processor_config.json").write_text(json.dumps({**cfg, "vocab_size": 2048}))
    with pytest.raises(ConfigurationError, match="vocab_size 2048"):
        FastTokenizer.load(folder)
    (tmp_path / "garbage.json").write_text("{not json")
    with pytest.raises(ConfigurationError, match="cannot be read"):
        FastTokenizer.load(tmp_path / "garbage.json")
    word = Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]"))
    with pytest.raises(ConfigurationError, match="byte-level BPE"):
        FastTokenizer(word)
    prefixed = Tokenizer.from_str(table.tokenizer.to_str())
    prefixed.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    with pytest.raises(ConfigurationError, match="add_prefix_space"):
        FastTokenizer(prefixed)
    with pytest.raises(ConfigurationError, match="scale"):
        FastTokenizer(table.tokenizer, scale=0)


# --------------------------------------------------------------------------- constraint


@pytest.fixture(scope="module")
def constraints(table) -> dict[int, FastConstraint]:
    return {t: FastConstraint(table, t, 7) for t in (1, 5)}


@settings(max_examples=60, deadline=None)
@given(data=st.data(), horizon=st.sampled_from([1, 5]))
def test_any_walk_through_allowed_tokens_decodes_to_exactly_t_by_d_finite_values(constraints, table, data, horizon):
    con = constraints[horizon]
    state, ids = con.start(), []
    while not con.done(state):
        assert len(ids) <= con.max_tokens
        choices = np.flatnonzero(con.allowed(state))
        assert choices.size, f"no token allowed in {state}"
        token = int(choices[data.draw(st.integers(0, choices.size - 1))])
        ids.append(token)
        state = con.advance(state, token)
    assert not con.allowed(state).any()  # done: only end-of-sequence may follow
    out = table.decode(ids, horizon, 7)
    assert out.shape == (horizon, 7) and np.all(np.isfinite(out))


@pytest.mark.parametrize("horizon", [1, 5])
def test_every_real_encoding_is_allowed_step_by_step(fast, normalized_episodes, horizon):
    con = FastConstraint(fast, horizon, 7)
    for ep in normalized_episodes:
        for chunk in _windows(ep, horizon):
            state = con.start()
            for token in fast.encode(chunk):
                assert con.allowed(state)[token]
                state = con.advance(state, token)
            assert con.done(state)


def test_allowed_single_characters_at_start_are_exactly_the_in_range_ones(constraints, table):
    mask = constraints[1].allowed(constraints[1].start())
    checked = 0
    for tid in range(table.vocab_size):
        try:
            text = table.token_bytes(tid).decode("utf-8")
        except UnicodeDecodeError:
            continue
        if len(text) == 1:
            coef = ord(text) + table.min_token
            assert mask[tid] == (abs(coef) <= 10), (tid, coef)
            checked += 1
    assert checked > 20


def test_pending_lead_byte_allows_only_in_range_completions(constraints, table, byte_token):
    con = constraints[1]
    lead = chr(-table.min_token).encode("utf-8")[0]  # 0xC5: characters 320..383, coefficients -34..29
    state = con.advance(con.start(), byte_token[lead])
    assert state == FastState(0, bytes([lead]))
    mask = con.allowed(state)
    for tid in np.flatnonzero(mask):
        assert 0x80 <= table.token_bytes(int(tid))[0] <= 0xBF
    zero, far = chr(354).encode("utf-8")[1], chr(320).encode("utf-8")[1]
    assert mask[byte_token[zero]] and not mask[byte_token[far]]
    state = con.advance(state, byte_token[zero])
    assert state == FastState(1, b"")


def test_no_overshoot_on_the_last_coefficient(constraints, table, byte_token):
    con = constraints[1]
    state = con.start()
    for b in chr(354).encode("utf-8") * 6:
        state = con.advance(state, byte_token[b])
    assert state.count == 6
    for tid in np.flatnonzero(con.allowed(state)):
        chars = table.token_bytes(int(tid)).decode("utf-8", errors="ignore")
        assert len(chars) <= 1


def test_constraint_refuses_disallowed_tokens_and_foreign_states(constraints, byte_token):
    con = constraints[1]
    with pytest.raises(FastDecodeError) as info:
        con.advance(con.start(), byte_token[0x80])  # a continuation byte cannot start
    assert info.value.reason == "constraint"
    with pytest.raises(InvalidInputError):
        con.allowed(FastState(99, b""))
    with pytest.raises(InvalidInputError):
        con.allowed(FastState(0, b"\x80"))


def test_constraint_masks_are_cached_and_read_only(constraints):
    con = constraints[5]
    a = con.allowed(con.start())
    assert con.allowed(con.start()) is a
    with pytest.raises(ValueError):
        a[0] = True

