"""rtc end to end without ROS: the policy loop, the real VirtualInference worker and the tiny
NORA-1.5 checkpoint's guided flow sampler."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from nora_ros.camera.frame import Frame  # noqa: E402
from nora_ros.control.policy_loop import LoopConfig, PolicyLoop  # noqa: E402
from nora_ros.policy.worker import VirtualInference  # noqa: E402


@pytest.fixture(scope="module")
def nora15(tmp_path_factory):
    from nora_ros.policy.nora.config import NoraConfig
    from nora_ros.policy.nora.flow_policy import Nora15Policy
    from nora_ros.policy.nora.tiny15 import build_tiny_nora15_checkpoint

    path = build_tiny_nora15_checkpoint(tmp_path_factory.mktemp("tiny15_loop") / "ckpt")
    return Nora15Policy(NoraConfig(model=str(path), device="cpu", seed=1))


def test_rtc_guides_each_chunk_by_the_executing_one_and_never_holds_once_started(nora15):
    """10 Hz, 250 ms latency, a new inference every 2 steps: from the second chunk on each is
    sampled with a guide (two frozen steps: 0.25 s rounds up to 2 steps of 0.2 s) and takes over
    at its due action; the arm never waits for a chunk once the first has arrived."""
    loop = PolicyLoop(VirtualInference(nora15, 0.25),
                      LoopConfig(control_rate_hz=10.0, camera_rate_hz=10.0, execution_mode="rtc", execute_steps=2,
                                 max_chunk_age=2.0))
    rng = np.random.default_rng(0)
    loop.on_trial(1, "RUNNING", "put the carrot in the pot", now=0.0)
    ticks, chunks = [], []
    for k in range(30):
        t = round(0.1 * k, 9)
        loop.on_frame(Frame(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), t, "rgb8"))
        out = loop.tick(t)
        ticks.append(out)
        if out.chunk is not None:
            chunks.append(out.chunk)
    assert len(chunks) >= 5
    assert "rtc" not in chunks[0].metadata  # nothing executed yet: no guide
    guided = [c.metadata["rtc"] for c in chunks[1:]]
    assert all(g["frozen_steps"] == 2 and g["execution_horizon"] >= 1 for g in guided), guided
    first = next(i for i, o in enumerate(ticks) if not o.hold_reason)
    assert all(not o.hold_reason for o in ticks[first:]), [o.hold_reason for o in ticks[first:]]
    assert loop.scheduler.skipped >= len(chunks) - 1  # each late chunk skips the steps run meanwhile
