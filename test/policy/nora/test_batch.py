"""Batched inference (several robots, one forward pass) equals one observation at a time.

4 robots with different real frames and instructions of different lengths (so the prompts are
left-padded by different amounts): NORA and NORA-Long tokens identical to ``act`` one by one;
NORA-1.5's normalized actions within :data:`FLOW_TOLERANCE` of one policy per robot (measured
2.4e-7 max on the tiny checkpoint, float32 CPU), each robot's noise its own.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED_DATA
from conftest_nora import tiny_checkpoint, tiny_checkpoint_long  # noqa: F401  (session fixtures)

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from nora_ros.camera.frame import Frame  # noqa: E402
from nora_ros.errors import PolicyError  # noqa: E402
from nora_ros.policy.nora.batch import BatchedDecoder, flow_sample_batch, left_pad  # noqa: E402
from nora_ros.policy.nora.checkpoint import load_nora  # noqa: E402
from nora_ros.policy.nora.config import NoraConfig  # noqa: E402
from nora_ros.policy.nora.decoding import CachedDecoder  # noqa: E402
from nora_ros.policy.nora.flow_policy import Nora15Policy  # noqa: E402
from nora_ros.policy.nora.policy import NoraPolicy  # noqa: E402

FLOW_TOLERANCE = 1e-5
ROBOTS = ("left", "right", "third", "fourth")
INSTRUCTIONS = ("put the carrot on the plate", "open the drawer",
                "move the spoon to the left side of the towel next to the pot", "Pick up the red cube")


def _frames(n: int = 8) -> list[Frame]:
    """Real 640x480 WidowX frames where ../shared/data has them, else random images."""
    folder = SHARED_DATA / "simpler_real_bridge_frames"
    images = []
    if folder.is_dir():
        from PIL import Image

        for path in sorted(folder.glob("*.png"))[:n]:
            images.append(np.asarray(Image.open(path).convert("RGB")))
    rng = np.random.default_rng(4)
    while len(images) < n:
        images.append(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))
    return [Frame(np.ascontiguousarray(img), float(i)) for i, img in enumerate(images)]


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    return _frames()


@pytest.fixture(scope="module")
def nora_policies(tiny_checkpoint, tiny_checkpoint_long):  # noqa: F811
    long = NoraConfig(model=str(tiny_checkpoint_long), device="cpu")
    short = NoraConfig(model=str(tiny_checkpoint), variant="nora", device="cpu")
    return {"nora": NoraPolicy(short, loaded=load_nora(short)), "nora-long": NoraPolicy(long, loaded=load_nora(long))}


def test_left_padded_prefill_and_steps_give_each_row_its_own_positions_and_states(nora_policies, frames):
    """The hidden states of every row, after the prefill and after each of 6 decoded tokens (rows
    fed different tokens), match the same prompt decoded alone."""
    policy = nora_policies["nora"]
    rows = [policy.model_inputs(f, s) for f, s in zip(frames[:4], INSTRUCTIONS, strict=True)]
    assert len({int(r["input_ids"].shape[1]) for r in rows}) > 1, "the prompts must differ in length"
    tokens = [[151665 + 97 * (i + 1) * (k + 1) % 2048 for k in range(6)] for i in range(4)]
    with torch.inference_mode():
        batched = BatchedDecoder(policy.loaded.model)
        states = [batched.prefill(left_pad(rows))]
        for k in range(6):
            states.append(batched.step([t[k] for t in tokens]))
        for i, row in enumerate(rows):
            single = CachedDecoder(policy.loaded.model)
            alone = [single.prefill(row)]
            assert int(batched.next_positions[i]) - 6 == single.next_position
            alone += [single.step(t) for t in tokens[i]]
            for k, (b, a) in enumerate(zip(states, alone, strict=True)):
                torch.testing.assert_close(b[i], a, rtol=0, atol=1e-5, msg=f"row {i}, step {k}")


@pytest.mark.parametrize("variant", ["nora", "nora-long"])
def test_batched_tokens_equal_one_by_one_tokens_for_4_robots(nora_policies, frames, variant):
    policy = nora_policies[variant]
    for start in (0, 4):  # two batches: 8 different frames
        batch_frames = frames[start:start + 4]
        alone = [policy.act(f, s) for f, s in zip(batch_frames, INSTRUCTIONS, strict=True)]
        together = policy.act_batch(batch_frames, list(INSTRUCTIONS), list(ROBOTS))
        assert len(together) == 4
        for i, (a, b) in enumerate(zip(alone, together, strict=True)):
            assert not isinstance(b, Exception), b
            assert b.token_ids == a.token_ids, f"row {i}"
            np.testing.assert_array_equal(b.actions, a.actions)
            assert b.stamp == a.stamp and b.metadata["batch_size"] == 4 and b.metadata["batch_row"] == i
            assert {"prefill", "decode", "total"} <= set(b.timings)


def test_a_row_that_fails_to_decode_is_its_error_and_the_others_stand(nora_policies, frames, monkeypatch):
    policy = nora_policies["nora"]
    original = policy.decode_tokens
    calls = []

    def flaky(tokens, processor=None):
        calls.append(len(calls))
        if len(calls) == 2:
            raise PolicyError("malformed chunk (test)")
        return original(tokens, processor)

    monkeypatch.setattr(policy, "decode_tokens", flaky)
    out = policy.act_batch(frames[:3], list(INSTRUCTIONS[:3]))
    assert isinstance(out[1], PolicyError) and "malformed" in str(out[1])
    assert not isinstance(out[0], Exception) and not isinstance(out[2], Exception)


@pytest.fixture(scope="module")
def tiny15(tmp_path_factory):
    from nora_ros.policy.nora.tiny15 import build_tiny_nora15_checkpoint

    return build_tiny_nora15_checkpoint(tmp_path_factory.mktemp("tiny15_batch") / "ckpt")


def test_batched_flow_equals_one_policy_per_robot(tiny15, frames):
    config = NoraConfig(model=str(tiny15), device="cpu", seed=3)
    shared = Nora15Policy(config)
    # One policy of its own per robot, one observation at a time: what each robot would get alone.
    own = {r: Nora15Policy(config, loaded=shared.loaded) for r in ROBOTS}
    worst = 0.0
    for step in range(3):
        batch_frames = [frames[(step + i) % len(frames)] for i in range(4)]
        expected = [own[r].run(f, s).normalized for r, f, s in zip(ROBOTS, batch_frames, INSTRUCTIONS, strict=True)]
        # The batch in another order each step: a robot's noise must not depend on its row.
        order = np.roll(np.arange(4), step)
        got = flow_sample_batch(shared, [batch_frames[i] for i in order], [INSTRUCTIONS[i] for i in order],
                                [ROBOTS[i] for i in order])
        for row, i in enumerate(order):
            assert got.noise_index[row] == step
            diff = float(np.abs(got.normalized[row] - expected[i]).max())
            worst = max(worst, diff)
    assert worst <= FLOW_TOLERANCE, worst


def test_flow_act_batch_chunks_and_reset_robot_restarts_only_that_robot(tiny15, frames):
    policy = Nora15Policy(NoraConfig(model=str(tiny15), device="cpu", seed=3))
    first = policy.act_batch(frames[:2], list(INSTRUCTIONS[:2]), ["left", "right"])
    assert [c.metadata["noise_index"] for c in first] == [0, 0]
    policy.reset_robot("left", INSTRUCTIONS[0])
    again = policy.act_batch(frames[:2], list(INSTRUCTIONS[:2]), ["left", "right"])
    assert [c.metadata["noise_index"] for c in again] == [0, 1]
    np.testing.assert_allclose(again[0].actions, first[0].actions, atol=1e-6)
    assert all(c.actions.shape == (5, 7) and c.metadata["batch_size"] == 2 for c in again)
    assert {"prefill", "denoise_0", "total"} <= set(again[0].timings)


def test_the_batching_worker_hands_each_robot_the_chunk_it_would_get_alone(nora_policies, frames):
    """NoraPolicy behind BatchingInference: 4 robots submit, one batch runs, each outcome is its
    robot's one-by-one chunk."""
    import time

    from nora_ros.policy.batching import BatchingInference

    policy = nora_policies["nora-long"]
    alone = [policy.act(f, s).token_ids for f, s in zip(frames[:4], INSTRUCTIONS, strict=True)]
    batching = BatchingInference(policy, ROBOTS, window=1.0)
    try:
        workers = [batching.worker(r) for r in ROBOTS]
        for w, f, s in zip(workers, frames[:4], INSTRUCTIONS, strict=True):
            w.policy.reset(s)
            assert w.submit(f, s)
        outs = []
        for w in workers:
            deadline = time.monotonic() + 30
            out = None
            while out is None and time.monotonic() < deadline:
                out = w.poll()
                time.sleep(0.005)
            outs.append(out)
        assert batching.batch_sizes == {4: 1}
        assert [o.chunk.token_ids for o in outs] == alone
        assert [o.chunk.stamp for o in outs] == [f.stamp for f in frames[:4]]
    finally:
        batching.close()


def test_one_robots_bad_instruction_fails_only_its_row(nora_policies, tiny15, frames):
    from nora_ros.errors import InvalidInstructionError

    policy = nora_policies["nora"]
    instructions = [INSTRUCTIONS[0], "a\tb", INSTRUCTIONS[2]]
    out = policy.act_batch(frames[:3], instructions, ["left", "right", "third"])
    assert isinstance(out[1], InvalidInstructionError)
    assert out[0].token_ids == policy.act(frames[0], INSTRUCTIONS[0]).token_ids
    assert out[2].token_ids == policy.act(frames[2], INSTRUCTIONS[2]).token_ids
    flow = Nora15Policy(NoraConfig(model=str(tiny15), device="cpu", seed=3))
    out = flow.act_batch(frames[:3], instructions, ["left", "right", "third"])
    assert isinstance(out[1], InvalidInstructionError) and out[0].metadata["noise_index"] == 0
    assert flow.noise_for("right").index == 0  # no noise drawn for the refused row, as act would not
