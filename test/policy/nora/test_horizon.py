"""A checkpoint trained on another chunk length never acts silently.

Where its variant is known (hub ID, config.json, the weights) a contradicting variant is refused
at start (test_checkpoint.py). Where it is not, the decoding shows it: the model keeps wanting to
go on after the chunk's T x 7 coefficients, or to end before them. Here a real tiny NORA is made
to want that by construction: one residual dimension held large and positive for every token
(its embedding column and the vision merger's output), and the output rows of the action tokens
and of <|im_end|> pointed along it with opposite signs. The chunk is then refused with a
PolicyError that names the mismatch; the unchanged model passes (random weights: scores differ
by a fraction of a logit, far below the margin).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from conftest_nora import tiny_checkpoint, tiny_checkpoint_long  # noqa: E402, F401

from nora_ros.camera.frame import Frame  # noqa: E402
from nora_ros.errors import PolicyError  # noqa: E402
from nora_ros.policy.nora.checkpoint import load_nora  # noqa: E402
from nora_ros.policy.nora.config import NoraConfig  # noqa: E402
from nora_ros.policy.nora.policy import NoraPolicy  # noqa: E402

DIM = 3
FRAME = Frame(np.full((480, 640, 3), 120, np.uint8), 1.0, "rgb8")


def _policy(checkpoint, variant: str, lean: float | None) -> NoraPolicy:
    """NORA on the tiny checkpoint; ``lean`` > 0 makes it want more action tokens, < 0 want to end."""
    config = NoraConfig(model=str(checkpoint), variant=variant, device="cpu", jpeg_quality=None)
    loaded = load_nora(config)
    policy = NoraPolicy(config, loaded=loaded)
    if lean is not None:
        with torch.no_grad():
            vlm = loaded.model.model
            vlm.language_model.embed_tokens.weight[:, DIM] = 1000.0
            merger_out = vlm.visual.merger.mlp[2]
            merger_out.weight[DIM] = 0.0
            merger_out.bias[DIM] = 1000.0
            policy._head[:-1, DIM] = lean  # the action tokens' rows
            policy._head[-1, DIM] = -lean  # <|im_end|>'s row
    return policy


@pytest.mark.parametrize(("checkpoint", "variant", "lean", "match"), [
    ("tiny_checkpoint", "nora", 50.0,
     r"horizon mismatch: after the chunk's 1 x 7 coefficients the model still wanted to go on"),
    ("tiny_checkpoint_long", "nora-long", -50.0,
     r"horizon mismatch: the model wanted to end before the chunk's 5 x 7 coefficients"),
])
def test_a_model_that_wants_another_horizon_is_refused_with_the_reason(request, checkpoint, variant, lean, match):
    """The checkpoint says one variant (as an undeclared fine-tune would be given one); its
    weights behave like another: the chunk is refused, and the policy loop's failure count
    then ends the trial as a fault."""
    policy = _policy(request.getfixturevalue(checkpoint), variant, lean)
    policy.reset("put the carrot on the plate")
    with pytest.raises(PolicyError, match=match):
        policy.act(FRAME, "put the carrot on the plate")


def test_the_unchanged_random_model_is_far_below_the_margin(tiny_checkpoint):  # noqa: F811
    policy = _policy(tiny_checkpoint, "nora", None)
    policy.reset("put the carrot on the plate")
    chunk = policy.act(FRAME, "put the carrot on the plate")
    assert chunk.actions.shape == (1, 7)
    assert policy.processor.wanted_more < 1.0 and policy.processor.wanted_end < 1.0
