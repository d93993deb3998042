"""``accelerate: on``: the static-cache, compiled decode step gives the eager path's tokens.

On a CPU the accelerated path is the static cache + ``torch.compile`` (inductor's default mode;
CUDA graphs need a GPU: ``scripts/gpu_bench.sh``). Each accelerated policy compiles once at load
(about 20 s for the tiny checkpoint on 2 cores) and is reused for all frames of its test.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import SHARED_DATA
from conftest_nora import tiny_checkpoint, tiny_checkpoint_long  # noqa: F401  (session fixtures)

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from nora_ros.camera.frame import Frame  # noqa: E402
from nora_ros.errors import ConfigurationError  # noqa: E402
from nora_ros.policy.nora import accel  # noqa: E402
from nora_ros.policy.nora.checkpoint import load_nora  # noqa: E402
from nora_ros.policy.nora.config import NoraConfig  # noqa: E402
from nora_ros.policy.nora.flow import FlowResult  # noqa: E402
from nora_ros.policy.nora.policy import NoraPolicy  # noqa: E402
from nora_ros.policy.nora.qwen_vocab import IM_END_ID  # noqa: E402

FRAMES = SHARED_DATA / "simpler_real_bridge_frames"
N_FRAMES = 50
INSTRUCTIONS = ("put the carrot on the plate", "stack the green block on the yellow block", "open the drawer")


def real_frames(n: int = N_FRAMES) -> list[Frame]:
    """``n`` real 480x640 WidowX frames: the two episode videos' frames, then the still images."""
    cv2 = pytest.importorskip("cv2")
    if not FRAMES.is_dir():
        pytest.skip(f"{FRAMES} is absent (real frames for the equality test)")
    images: list[np.ndarray] = []
    for video in sorted(FRAMES.glob("*.mp4")):
        cap = cv2.VideoCapture(str(video))
        while len(images) < n:
            ok, bgr = cap.read()
            if not ok:
                break
            images.append(np.ascontiguousarray(bgr[..., ::-1]))
        cap.release()
    for png in sorted(FRAMES.glob("*.png")):
        if len(images) < n:
            images.append(np.ascontiguousarray(cv2.imread(str(png), cv2.IMREAD_COLOR)[..., ::-1]))
    if len(images) < n:
        pytest.skip(f"only {len(images)} real frames in {FRAMES}, {n} wanted")
    return [Frame(img, float(i), "rgb8") for i, img in enumerate(images)]


def _pair(checkpoint, variant: str) -> tuple[NoraPolicy, NoraPolicy]:
    # horizon_margin 0: the random tiny weights would otherwise be refused as a horizon mismatch
    # for some frames; the tokens are what is compared.
    config = NoraConfig(model=str(checkpoint), variant=variant, device="cpu", horizon_margin=0.0)
    loaded = load_nora(config)
    eager = NoraPolicy(config, loaded=loaded)
    fast = NoraPolicy(dataclasses.replace(config, accelerate="on"), loaded=loaded)
    return eager, fast


@pytest.mark.parametrize("variant", ["nora", "nora-long"])
def test_accelerated_tokens_equal_eager_on_50_real_frames(variant, tiny_checkpoint, tiny_checkpoint_long):  # noqa: F811
    eager, fast = _pair(tiny_checkpoint if variant == "nora" else tiny_checkpoint_long, variant)
    assert eager.accel.enabled is False and "auto" in eager.accel.reason
    assert fast.accel.enabled, fast.accel.reason
    assert fast._decoder is not None and fast._decoder.compiled
    for i, frame in enumerate(real_frames()):
        instruction = INSTRUCTIONS[i % len(INSTRUCTIONS)]
        a = eager.act(frame, instruction)
        wanted = (eager.processor.wanted_more, eager.processor.wanted_end)
        b = fast.act(frame, instruction)
        assert b.token_ids == a.token_ids, f"frame {i}"
        np.testing.assert_array_equal(b.actions, a.actions)
        np.testing.assert_allclose((fast.processor.wanted_more, fast.processor.wanted_end), wanted, rtol=1e-5)
        assert len(fast.last_token_seconds) == len(b.token_ids) == len(eager.last_token_seconds)


def test_disagreeing_paths_fall_back_to_eager_with_the_reason(tiny_checkpoint, monkeypatch, caplog):  # noqa: F811
    monkeypatch.setattr(accel, "accelerated_greedy", lambda *a, **k: [IM_END_ID])  # an injected disagreement
    config = NoraConfig(model=str(tiny_checkpoint), variant="nora", device="cpu", accelerate="on")
    with caplog.at_level("WARNING"):
        policy = NoraPolicy(config)
    assert not policy.accel.enabled and policy._decoder is None
    assert "other tokens than the eager one" in policy.accel.reason
    assert policy.accel.accelerated == (IM_END_ID,) and policy.accel.eager != (IM_END_ID,)
    assert "accelerate: on, but" in caplog.text

    def broken(*a, **k):
        raise RuntimeError("no kernel for this")

    monkeypatch.setattr(accel, "accelerated_greedy", broken)
    policy = NoraPolicy(config)
    assert not policy.accel.enabled and "failed at load (RuntimeError: no kernel for this)" in policy.accel.reason


def test_accelerate_parameter_is_validated_and_auto_is_off_until_gpu_figures():
    with pytest.raises(ConfigurationError, match="accelerate must be one of"):
        NoraConfig(accelerate="fast")
    assert NoraConfig().accelerate == "auto"
    assert accel.accelerate_wanted("auto", "cuda")[0] is False  # until GPU figures exist (issue 16)
    assert accel.accelerate_wanted("auto", "cpu") == (False, accel.accelerate_wanted("auto", "cpu")[1])
    assert accel.accelerate_wanted("on", "cpu")[0] and not accel.accelerate_wanted("off", "cuda")[0]
    assert accel.compile_mode("cpu") == "default" and accel.compile_mode("cuda") == "reduce-overhead"


def test_accelerate_is_a_declared_read_only_choice_of_the_policy_node():
    from nora_ros.interface.node_specs import policy_params

    spec = {s.name: s for s in policy_params()}["accelerate"]
    assert spec.default == "auto" and set(spec.choices) == {"auto", "off", "on"}
    assert spec.read_only and "issue 16" in spec.description


@pytest.fixture(scope="module")
def tiny15(tmp_path_factory):
    from nora_ros.policy.nora.tiny15 import build_tiny_nora15_checkpoint

    return build_tiny_nora15_checkpoint(tmp_path_factory.mktemp("tiny15_accel") / "ckpt")


def test_nora15_accelerated_actions_within_tolerance_of_eager(tiny15):
    from nora_ros.policy.nora.flow_policy import Nora15Policy
    from nora_ros.policy.nora.nora15 import load_nora15

    config = NoraConfig(model=str(tiny15), variant="nora-1.5", device="cpu", seed=4)
    loaded = load_nora15(config)
    eager = Nora15Policy(config, loaded=loaded)
    fast = Nora15Policy(dataclasses.replace(config, accelerate="on"), loaded=loaded)
    assert fast.accel.enabled and fast.accel.difference <= accel.FLOW_TOLERANCE["float32"], fast.accel.reason
    eager.reset(INSTRUCTIONS[0])
    fast.reset(INSTRUCTIONS[0])
    for frame in real_frames(10):
        a, b = eager.run(frame, INSTRUCTIONS[0]), fast.run(frame, INSTRUCTIONS[0])
        assert a.noise_index == b.noise_index
        np.testing.assert_allclose(b.normalized, a.normalized, atol=accel.FLOW_TOLERANCE["float32"], rtol=0)
        assert [k for k in b.chunk.timings if k.startswith("denoise_")] == [f"denoise_{i}" for i in range(10)]


def test_nora15_disagreement_falls_back_to_eager(tiny15, monkeypatch):
    from nora_ros.policy.nora.flow_policy import Nora15Policy

    def off_by_one(self, prefix, noise, sync=None):
        return FlowResult(torch.ones(5, 7), (), ())

    monkeypatch.setattr(accel.FlowAccelerator, "sample", off_by_one)
    policy = Nora15Policy(NoraConfig(model=str(tiny15), variant="nora-1.5", device="cpu", accelerate="on"))
    assert not policy.accel.enabled and policy._flow_accel is None
    assert "moved the probe's normalized actions" in policy.accel.reason


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs (reduce-overhead) need a GPU; run scripts/gpu_bench.sh")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cuda_graph_decoding_gives_the_eager_tokens(dtype, tiny_checkpoint):  # noqa: F811
    config = NoraConfig(model=str(tiny_checkpoint), variant="nora", device="cuda", dtype=dtype, horizon_margin=0.0)
    loaded = load_nora(config)
    eager = NoraPolicy(config, loaded=loaded)
    fast = NoraPolicy(dataclasses.replace(config, accelerate="on"), loaded=loaded)
    # float32 must verify; in bfloat16 the graph's attention kernel (masked, over the static cache)
    # rounds otherwise than eager's, and random tiny weights can sit near a tie: then the check
    # rejects it and the policy decodes eagerly, which is what the tokens below must show either way.
    assert fast.accel.enabled or dtype == "bfloat16", fast.accel.reason
    if fast.accel.enabled:
        assert fast._decoder.mode == "reduce-overhead"
    frames = real_frames(10)
    for i, frame in enumerate(frames):
        assert fast.act(frame, INSTRUCTIONS[i % 3]).token_ids == eager.act(frame, INSTRUCTIONS[i % 3]).token_ids
    # The node runs act in its inference thread (policy/worker.py): CUDA graph trees are per thread,
    # so that thread records its own graphs; the tokens must not change.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        threaded = pool.submit(lambda: [fast.act(f, INSTRUCTIONS[0]).token_ids for f in frames[:5]]).result()
    assert threaded == [eager.act(f, INSTRUCTIONS[0]).token_ids for f in frames[:5]]


def test_gpu_bench_script_is_valid_bash_and_carries_an_accepted_transformers():
    import pathlib
    import re
    import shutil
    import subprocess

    from packaging.specifiers import SpecifierSet

    from nora_ros.policy.nora.compat import TRANSFORMERS_ACCEPTED

    script = pathlib.Path(__file__).resolve().parents[3] / "scripts" / "gpu_bench.sh"
    text = script.read_text()
    if shutil.which("bash"):
        assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    pinned = re.search(r"transformers==([0-9.]+)", text).group(1)
    assert SpecifierSet(TRANSFORMERS_ACCEPTED).contains(pinned), pinned
    for variant in ("nora", "nora-long", "nora-1.5"):
        assert re.search(rf"^bench \d+ {re.escape(variant)}$", text, re.M), variant
    assert "pip install" in text and "--no-index" in text  # never from the network there


def test_a_prompt_longer_than_the_static_cache_decodes_eagerly(tiny_checkpoint, monkeypatch, caplog):  # noqa: F811
    from nora_ros.policy.nora import policy as policy_module

    eager, fast = _pair(tiny_checkpoint, "nora")
    monkeypatch.setattr(policy_module, "STATIC_CACHE_LEN", 40)  # shorter than any NORA prompt
    frame = Frame(np.full((480, 640, 3), 90, dtype=np.uint8), 0.0)
    with caplog.at_level("WARNING"):
        assert fast.act(frame, INSTRUCTIONS[0]).token_ids == eager.act(frame, INSTRUCTIONS[0]).token_ids
        fast.act(frame, INSTRUCTIONS[0])
    assert caplog.text.count("does not fit the accelerated decoder's cache") == 1
