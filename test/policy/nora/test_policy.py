"""NoraPolicy end to end on the tiny random-weight checkpoint, and the decoding safety net."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SHARED_DATA
from conftest_nora import tiny_checkpoint, tiny_checkpoint_long  # noqa: F401  (session fixtures)

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from nora_ros.actions import NormStats  # noqa: E402
from nora_ros.camera.frame import Frame  # noqa: E402
from nora_ros.errors import FastDecodeError, InvalidInstructionError, PolicyError  # noqa: E402
from nora_ros.policy.fast.constraint import FastConstraint  # noqa: E402
from nora_ros.policy.nora.checkpoint import load_nora  # noqa: E402
from nora_ros.policy.nora.config import NoraConfig  # noqa: E402
from nora_ros.policy.nora.decoding import FastConstraintProcessor  # noqa: E402
from nora_ros.policy.nora.policy import NoraPolicy, finish_actions  # noqa: E402
from nora_ros.policy.nora.qwen_vocab import ACTION_TOKEN_OFFSET, IM_END_ID, VOCAB_SIZE  # noqa: E402

STAGES = ("preprocess", "prefill", "decode", "fast_decode", "unnormalize", "total")


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint):  # noqa: F811
    return load_nora(NoraConfig(model=str(tiny_checkpoint), device="cpu"))


@pytest.fixture(scope="module")
def policies(tiny_checkpoint, tiny_checkpoint_long, loaded):  # noqa: F811
    long = NoraConfig(model=str(tiny_checkpoint_long), device="cpu")
    return {
        "nora": NoraPolicy(NoraConfig(model=str(tiny_checkpoint), variant="nora", device="cpu"), loaded=loaded),
        "nora-long": NoraPolicy(long, loaded=load_nora(long)),
    }


def _instructions() -> list[str]:
    """Real Bridge instructions where ../shared/data has them, else a few of the same kind."""
    folder = SHARED_DATA / "octo_bridge_debug" / "extracted_train"
    found = []
    for path in sorted(folder.glob("episode_*.npz"))[:10] if folder.is_dir() else []:
        text = np.load(path)["language_instruction"]
        text = text.reshape(-1)[0]
        text = text.decode() if isinstance(text, bytes) else str(text)
        if text.strip():
            found.append(text)
    return found or ["put the carrot on the plate", "open the drawer", "Move the Spoon to the left"]


@pytest.mark.parametrize(("variant", "horizon"), [("nora", 1), ("nora-long", 5)])
def test_200_of_200_chunks_decode_to_finite_actions_in_range(policies, variant, horizon):
    policy = policies[variant]
    stats: NormStats = policy.loaded.norm_stats
    rng = np.random.default_rng(horizon)
    instructions = _instructions()
    decoded = 0
    for i in range(200):
        image = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
        chunk = policy.act(Frame(image, float(i)), instructions[i % len(instructions)])
        a = chunk.actions
        assert a.shape == (horizon, 7) and np.all(np.isfinite(a))
        m = stats.mask
        assert np.all(a[:, m] >= stats.q01[m] - 1e-12) and np.all(a[:, m] <= stats.q99[m] + 1e-12)
        assert np.all((a[:, 6] >= 0.0) & (a[:, 6] <= 1.0))
        ids = chunk.token_ids
        assert ids[-1] == IM_END_ID
        assert all(ACTION_TOKEN_OFFSET <= t < VOCAB_SIZE for t in ids[:-1])
        assert len(ids) <= policy.max_new_tokens
        decoded += 1
    assert decoded == 200


def test_chunk_carries_timings_ids_and_stamp(policies):
    policy = policies["nora-long"]
    image = np.random.default_rng(7).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    chunk = policy.act(Frame(image[..., ::-1].copy(), 12.5, encoding="bgr8"), "put the carrot on the plate")
    assert chunk.horizon == 5 and chunk.step_period == 0.2 and chunk.stamp == 12.5
    assert chunk.model_id == policy.config.model
    assert set(STAGES) <= set(chunk.timings)
    assert all(chunk.timings[s] >= 0.0 for s in STAGES)
    parts = sum(chunk.timings[s] for s in STAGES[:-1])
    assert parts == pytest.approx(chunk.timings["total"], rel=1e-6, abs=1e-6)
    # The normalized chunk is re-derivable from the logged ids.
    again = policy.loaded.fast.decode([t - ACTION_TOKEN_OFFSET for t in chunk.token_ids[:-1]], 5)
    expected, _ = finish_actions(again, policy.loaded.norm_stats)
    np.testing.assert_allclose(chunk.actions, expected)


@pytest.mark.parametrize(("instruction", "match"), [("", "empty"), ("y" * 300, "at most 256"), ("a\tb", "non-printable")])
def test_bad_instruction_is_refused_before_the_model_runs(policies, instruction, match):
    policy = policies["nora"]
    image = np.zeros((224, 224, 3), np.uint8)
    with pytest.raises(InvalidInstructionError, match=match):
        policy.act(Frame(image, 0.0), instruction)
    with pytest.raises(InvalidInstructionError, match=match):
        policy.reset(instruction)


def test_own_greedy_loop_chooses_what_generate_with_the_processor_chooses(policies):
    """The restricted output layer and own loop must not change a single greedy choice."""
    from transformers import GenerationConfig, LogitsProcessorList

    policy = policies["nora-long"]
    rng = np.random.default_rng(11)
    for i in range(4):
        frame = Frame(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8), float(i))
        ours = policy.act(frame, "put the carrot on the plate").token_ids
        inputs = policy.model_inputs(frame, "put the carrot on the plate")
        policy.processor.begin(inputs["input_ids"].shape[1])
        gen = GenerationConfig(do_sample=False, max_new_tokens=policy.max_new_tokens, eos_token_id=IM_END_ID, pad_token_id=0)
        with torch.inference_mode():
            out = policy.loaded.model.generate(**inputs, generation_config=gen,
                                               logits_processor=LogitsProcessorList([policy.processor]))
        assert tuple(out[0, inputs["input_ids"].shape[1]:].tolist()) == ours


def test_image_tokens_get_3d_rotary_positions(policies):
    """64 image tokens on an 8x8 merged grid span 8 positions, not 64: rope delta 8 - 64 = -56."""
    policy = policies["nora"]
    policy.act(Frame(np.zeros((224, 224, 3), np.uint8), 0.0), "put the carrot on the plate")
    assert policy.loaded.model.model.rope_deltas.tolist() == [[-56]]


def test_constraint_processor_only_ever_spells_decodable_chunks(loaded):
    """Random logits through the processor: every greedy sequence decodes, for T = 1 and 5."""
    rng = np.random.default_rng(0)
    for horizon in (1, 5):
        constraint = FastConstraint(loaded.fast, horizon)
        proc = FastConstraintProcessor(constraint)
        bound = constraint.max_tokens + 1
        for _ in range(40):
            proc.begin(3)
            ids = torch.tensor([[1, 2, 3]])
            for _step in range(bound):
                scores = torch.zeros(1, VOCAB_SIZE)
                scores[0, ACTION_TOKEN_OFFSET:] = torch.from_numpy(rng.normal(size=VOCAB_SIZE - ACTION_TOKEN_OFFSET))
                scores[0, IM_END_ID] += 3.0  # a model eager to stop early must not end a chunk short
                nxt = int(torch.argmax(proc(ids, scores), dim=-1))
                ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
                if nxt == IM_END_ID:
                    break
            gen = ids[0, 3:].tolist()
            assert gen[-1] == IM_END_ID and not proc.dead_end
            out = loaded.fast.decode([t - ACTION_TOKEN_OFFSET for t in gen[:-1]], horizon)
            assert out.shape == (horizon, 7) and np.all(np.isfinite(out))


def test_processor_masks_everything_but_allowed_tokens(loaded):
    constraint = FastConstraint(loaded.fast, 1)
    proc = FastConstraintProcessor(constraint)
    proc.begin(2)
    out = proc(torch.tensor([[5, 6]]), torch.zeros(1, VOCAB_SIZE + 64))  # padded output layer
    finite = torch.isfinite(out[0]).numpy()
    allowed = np.asarray(constraint.allowed(constraint.start()))
    assert not finite[:ACTION_TOKEN_OFFSET].any() and not finite[IM_END_ID]  # no text, no early end
    np.testing.assert_array_equal(finite[ACTION_TOKEN_OFFSET : ACTION_TOKEN_OFFSET + allowed.size], allowed)
    assert not finite[ACTION_TOKEN_OFFSET + allowed.size :].any()
    assert proc.first_call is not None


@pytest.mark.parametrize(
    ("tokens", "match"),
    [
        ([], "did not finish"),
        ([ACTION_TOKEN_OFFSET + 3] * 3, "did not finish"),
        ([ACTION_TOKEN_OFFSET + 3, 1000, IM_END_ID], "non-action token"),
        ([ACTION_TOKEN_OFFSET + 3, IM_END_ID], "does not decode"),
    ],
)
def test_malformed_generations_raise_policy_error_never_motion(policies, tokens, match):
    policy = policies["nora-long"]
    with pytest.raises(PolicyError, match=match) as info:
        policy.decode_tokens(tokens)
    if "does not decode" in match:
        assert isinstance(info.value.__cause__, FastDecodeError)


def test_unnormalize_follows_the_mask_and_reports_clipping():
    stats = NormStats(q01=[-1.0, -2, -3, -4, -5, -6, 0], q99=[1.0, 2, 3, 4, 5, 6, 1], mask=[True] * 6 + [False])
    a, report = finish_actions(np.array([[0.5, -0.5, 0.0, 1.0, -1.0, 0.25, 0.75]]), stats)
    np.testing.assert_allclose(a, [[0.5, -1.0, 0.0, 4.0, -5.0, 1.5, 0.75]])  # gripper kept as produced
    assert report == {}
    a, report = finish_actions(np.array([[1.5, 0.0, 0.0, 0.0, 0.0, -3.0, 1.2]]), stats)
    np.testing.assert_allclose(a, [[1.0, 0.0, 0.0, 0.0, 0.0, -6.0, 1.0]])
    assert report["clipped_normalized"] == {"count": 2, "dims": [0, 5], "max_abs": 3.0}
    assert report["clipped_gripper"]["values"] == [1.2]


def test_infer_cli_prints_one_json_object(tiny_checkpoint, tmp_path, capsys):  # noqa: F811
    from PIL import Image

    from nora_ros.cli import main

    image = tmp_path / "frame.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(image)
    rc = main(["infer", "--model", str(tiny_checkpoint), "--image", str(image),
               "--instruction", "put the carrot on the plate", "--json", "--device", "cpu"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert np.array(out["actions"]).shape == (1, 7)
    assert out["step_period"] == 0.2 and out["model"] == str(tiny_checkpoint)
    assert set(STAGES) <= set(out["timings"]) and out["token_ids"][-1] == IM_END_ID


def test_infer_cli_reports_a_missing_image_as_an_error(tiny_checkpoint, tmp_path, capsys):  # noqa: F811
    from nora_ros.cli import main

    rc = main(["infer", "--model", str(tiny_checkpoint), "--image", str(tmp_path / "nope.png"), "--instruction", "x"])
    assert rc == 1
    assert "nope.png does not exist" in capsys.readouterr().err


def test_clipping_warnings_are_throttled_with_a_count(policies, caplog):
    """A model that keeps leaving the training range would warn every chunk: at most one warning
    per CLIP_LOG_PERIOD, saying how many chunks were clipped in between."""
    import logging

    from nora_ros.policy.nora import policy as nora

    policy = policies["nora"]
    report = {"clipped_gripper": {"values": [-0.5], "range": [0.0, 1.0]}}
    policy._clip_logged_at, policy._clipped_unlogged = -np.inf, 0
    with caplog.at_level(logging.WARNING, logger=nora.__name__):
        for k in range(12):  # 12 chunks at 5 Hz in 2.2 s: the first warns, 11 wait
            policy._log_clipping(report, 100.0 + 0.2 * k)
        policy._log_clipping(report, 100.0 + nora.CLIP_LOG_PERIOD + 0.1)
    warnings = [r.getMessage() for r in caplog.records if "clipped to the training range" in r.getMessage()]
    assert len(warnings) == 2
    assert "more chunks" not in warnings[0] and "(11 more chunks clipped since the last warning)" in warnings[1]
