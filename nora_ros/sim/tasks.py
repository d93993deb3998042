"""Simulated tasks: their instructions, seeded object layouts, and success checks from physics.

A success check reads only the physics state (object poses, contacts), never the policy, so
the supervisor can score any policy the same way. "In the pot" and "on the plate" both also
require that the gripper has let go: holding the carrot above the pot is not success.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from nora_ros.errors import ConfigurationError
from nora_ros.sim import scene


class PhysicsState(Protocol):
    """What a success check may read (``SimWorld`` provides it)."""

    def object_pose(self, name: str) -> np.ndarray: ...

    def touching(self, body_a: str, body_b: str) -> bool: ...

    def is_grasped(self, name: str) -> bool: ...


@dataclass(frozen=True)
class Outcome:
    """A success check's verdict and why, in words an operator can read in the results file."""

    success: bool
    reason: str


@dataclass(frozen=True)
class Placement:
    """Where an object starts: base-frame position on the table (m) and yaw (rad)."""

    x: float
    y: float
    yaw: float


@dataclass(frozen=True)
class Region:
    """An axis-aligned box on the table where an object's centre may be placed."""

    x: tuple[float, float]
    y: tuple[float, float]

    def __post_init__(self) -> None:
        if not (self.x[0] <= self.x[1] and self.y[0] <= self.y[1]):
            raise ConfigurationError(f"region bounds must be (low, high), got x={self.x} y={self.y}")


WORKSPACE_BOUNDS = np.array([[0.1, -0.20, -0.01], [0.45, 0.25, 0.30]])
"""Bridge/OpenVLA end-effector workspace (m), DESIGN.md 6: every object is placed inside it."""

REGIONS: Mapping[str, Region] = {
    "carrot": Region(x=(0.17, 0.40), y=(-0.17, 0.21)),
    "pot": Region(x=(0.20, 0.38), y=(-0.15, 0.19)),
    "plate": Region(x=(0.20, 0.38), y=(-0.15, 0.19)),
}
"""Where object centres are drawn: inside the Bridge workspace, far enough from its edges that
the gripper pointing down reaches every point (the wx250s cannot point down near its base)."""

MIN_DISTANCE: Mapping[frozenset[str], float] = {
    frozenset({"carrot", "pot"}): 0.14,
    frozenset({"carrot", "plate"}): 0.13,
    frozenset({"pot", "plate"}): 0.165,
}
"""Minimum centre distances (m) so objects never overlap and the open gripper fits beside them."""


@dataclass(frozen=True)
class Task:
    """A pick-and-place task: move ``obj`` ``relation`` (``"in"`` / ``"on"``) ``target``."""

    name: str
    instruction: str
    obj: str
    relation: str
    target: str

    def __post_init__(self) -> None:
        if self.obj not in scene.OBJECTS or self.target not in scene.OBJECTS or self.obj == self.target:
            raise ConfigurationError(f"task '{self.name}': objects must be two of {scene.OBJECTS}, got {self.obj}, {self.target}")
        if self.relation not in ("in", "on"):
            raise ConfigurationError(f"task '{self.name}': relation must be 'in' or 'on', got '{self.relation}'")

    def check(self, state: PhysicsState) -> Outcome:
        """Score the current physics state."""
        if self.relation == "in":
            return in_pot(state, self.obj, self.target)
        return on_plate(state, self.obj, self.target)

    def release_height(self) -> float:
        """Height (m, base frame) of the object's centre where a policy should let go."""
        if self.relation == "in":
            return scene.POT_HEIGHT + 0.035
        return 2 * scene.PLATE_HALF_HEIGHT + scene.CARROT_RADIUS + 0.03


TASKS: Mapping[str, Task] = {
    "carrot_in_pot": Task("carrot_in_pot", "put the carrot in the pot", "carrot", "in", "pot"),
    "carrot_on_plate": Task("carrot_on_plate", "put the carrot on the plate", "carrot", "on", "plate"),
}
DEFAULT_TASK = "carrot_in_pot"


def get_task(name: str) -> Task:
    """The task called ``name``, or a :class:`ConfigurationError` listing the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigurationError(f"unknown sim task '{name}'; known tasks: {sorted(TASKS)}") from None


def sample_layout(rng: np.random.Generator, max_tries: int = 1000) -> dict[str, Placement]:
    """Draw non-overlapping placements for every object (rejection sampling in :data:`REGIONS`).

    The carrot's yaw is uniform over a half turn (it is symmetric); pot and plate yaw do not
    matter for the tasks but are drawn too so renders differ.
    """
    for _ in range(max_tries):
        layout = {
            name: Placement(
                float(rng.uniform(*REGIONS[name].x)),
                float(rng.uniform(*REGIONS[name].y)),
                float(rng.uniform(-math.pi / 2, math.pi / 2)),
            )
            for name in scene.OBJECTS
        }
        if all(
            math.dist((layout[a].x, layout[a].y), (layout[b].x, layout[b].y)) >= d
            for pair, d in MIN_DISTANCE.items()
            for a, b in [tuple(sorted(pair))]
        ):
            return layout
    raise ConfigurationError(f"could not place the objects without overlap in {max_tries} tries; widen REGIONS")


def in_pot(state: PhysicsState, obj: str, pot: str = "pot") -> Outcome:
    """``obj``'s centre inside the pot's inner cylinder (below the rim) and not in the gripper."""
    p = state.object_pose(obj)[:3, 3]
    pot_pose = state.object_pose(pot)
    local = pot_pose[:3, :3].T @ (p - pot_pose[:3, 3])
    r = float(np.hypot(local[0], local[1]))
    if r > scene.POT_INNER_RADIUS:
        return Outcome(False, f"{obj} is {r * 100:.1f} cm from the pot's axis (inside is < {scene.POT_INNER_RADIUS * 100:.1f} cm)")
    if not (0.0 < local[2] < scene.POT_HEIGHT):
        return Outcome(False, f"{obj} is above the pot ({local[2] * 100:.1f} cm over its base), not in it")
    if state.is_grasped(obj):
        return Outcome(False, f"{obj} is in the pot but still held by the gripper")
    return Outcome(True, f"{obj} is in the pot")


def on_plate(state: PhysicsState, obj: str, plate: str = "plate") -> Outcome:
    """``obj`` resting on the plate: touching it, centre over it, and not in the gripper."""
    p = state.object_pose(obj)[:3, 3]
    c = state.object_pose(plate)[:3, 3]
    r = float(np.hypot(*(p[:2] - c[:2])))
    if r > scene.PLATE_RADIUS:
        return Outcome(False, f"{obj} is {r * 100:.1f} cm from the plate's centre (plate radius {scene.PLATE_RADIUS * 100:.1f} cm)")
    if not state.touching(obj, plate):
        return Outcome(False, f"{obj} is over the plate but not resting on it")
    if state.is_grasped(obj):
        return Outcome(False, f"{obj} is on the plate but still held by the gripper")
    return Outcome(True, f"{obj} is on the plate")
