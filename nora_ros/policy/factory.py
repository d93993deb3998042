"""Which policy a configuration names: the one place that knows the kinds of policy.

The nodes, the runner's commands and the replay tools ask here instead of branching on model
names themselves (a node never says ``if model == "scripted"``).
"""

from __future__ import annotations

from nora_ros.policy.base import Policy
from nora_ros.policy.nora.config import AUTO_VARIANT, NoraConfig

REPLAY_PREFIX = "replay:"
SCRIPTED = "scripted"


def make_policy(config: NoraConfig) -> Policy:
    """The policy ``config.model`` names: ``scripted`` is the simulator's scripted expert (it reads
    the sim node's ground truth: :attr:`Policy.needs_ground_truth`), ``replay:EPISODE.npz``
    replays a recorded episode (chunks of the variant's horizon; ``auto``: one action), anything else is a NORA
    checkpoint (folder or hub ID) loaded with ``config``. Loading NORA blocks (minutes on a GPU)."""
    model = config.model
    if model == SCRIPTED:
        from nora_ros.sim.expert import ScriptedExpertPolicy  # reads the simulator's ground truth

        return ScriptedExpertPolicy()
    if model.startswith(REPLAY_PREFIX):
        from nora_ros.policy.replay import ReplayPolicy

        horizon = 1 if config.variant == AUTO_VARIANT else config.horizon
        return ReplayPolicy.from_npz(model[len(REPLAY_PREFIX):], horizon=horizon)
    from nora_ros.policy.nora.checkpoint import resolve_checkpoint, resolve_variant
    from nora_ros.policy.nora.policy import NoraPolicy

    config = resolve_variant(config, resolve_checkpoint(model))
    if config.variant == "nora-1.5":
        from nora_ros.policy.nora.flow_policy import nora15_policy  # flow head, or NoraPolicy for action_head fast

        return nora15_policy(config)
    return NoraPolicy(config)
