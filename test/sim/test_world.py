"""SimWorld: seeded layouts, deterministic stepping, physics success checks, the rendered camera."""

from __future__ import annotations

import math
import os

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("mujoco", reason="the simulator needs the 'sim' extra (pip install -e '.[sim]')")

from nora_ros.actions import pose_to_bridge_state  # noqa: E402
from nora_ros.errors import ArmError, ConfigurationError, InvalidInputError  # noqa: E402
from nora_ros.sim import scene  # noqa: E402
from nora_ros.sim.arm import MujocoArm  # noqa: E402
from nora_ros.sim.tasks import MIN_DISTANCE, WORKSPACE_BOUNDS, get_task, sample_layout  # noqa: E402
from nora_ros.sim.world import START_STATE, SimWorld  # noqa: E402


@pytest.fixture
def world():
    w = SimWorld(seed=3)
    yield w
    w.close()


def _place(world: SimWorld, name: str, xyz, yaw: float = 0.0) -> None:
    adr = world.model.joint(name).qposadr[0]
    dof = world.model.joint(name).dofadr[0]
    world.data.qpos[adr : adr + 3] = xyz
    world.data.qpos[adr + 3 : adr + 7] = [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]
    world.data.qvel[dof : dof + 6] = 0.0


def _render_or_skip(world: SimWorld) -> np.ndarray:
    try:
        return world.render()
    except ConfigurationError as exc:
        pytest.skip(f"no offscreen OpenGL here (install libosmesa6, MUJOCO_GL=osmesa): {exc}")


# ------------------------------------------------------------------ layouts


def test_layouts_stay_in_the_workspace_and_apart():
    for seed in range(200):
        layout = sample_layout(np.random.default_rng(seed))
        for place in layout.values():
            assert WORKSPACE_BOUNDS[0, 0] <= place.x <= WORKSPACE_BOUNDS[1, 0]
            assert WORKSPACE_BOUNDS[0, 1] <= place.y <= WORKSPACE_BOUNDS[1, 1]
        for pair, d in MIN_DISTANCE.items():
            a, b = sorted(pair)
            assert math.dist((layout[a].x, layout[a].y), (layout[b].x, layout[b].y)) >= d


def test_reset_is_deterministic_per_seed_and_differs_between_seeds(world):
    world.reset(11)
    first = {n: world.object_pose(n) for n in scene.OBJECTS}
    world.reset(12)
    other = world.object_pose("carrot")
    world.reset(11)
    for n in scene.OBJECTS:
        np.testing.assert_array_equal(world.object_pose(n), first[n])
    assert np.linalg.norm(other[:3, 3] - first["carrot"][:3, 3]) > 1e-3


def test_reset_puts_the_arm_at_the_start_and_objects_at_rest_on_the_table(world):
    world.reset(5)
    np.testing.assert_allclose(pose_to_bridge_state(world.ee_pose())[:6], START_STATE, atol=2e-3)
    assert world.gripper_opening() > 0.95
    assert world.object_pose("carrot")[2, 3] == pytest.approx(scene.CARROT_RADIUS, abs=2e-3)
    assert world.object_pose("pot")[2, 3] == pytest.approx(0.0, abs=2e-3)
    assert world.object_pose("plate")[2, 3] == pytest.approx(0.0, abs=2e-3)
    assert np.max(np.abs(world.data.qvel)) < 0.05


def test_time_is_sim_time_and_monotonic_across_resets(world):
    t0 = world.time
    world.step(0.2)
    assert world.time == pytest.approx(t0 + 0.2)
    assert world.trial_time == pytest.approx(0.2)
    world.reset(4)
    assert world.time == pytest.approx(t0 + 0.2)
    assert world.trial_time == 0.0
    with pytest.raises(InvalidInputError, match="non-negative"):
        world.step(-0.1)


def test_ticks_that_are_not_whole_physics_steps_keep_sim_time_on_average(world):
    t0 = world.time
    for _ in range(300):
        world.step(1.0 / 30.0)  # 16.7 physics steps of 2 ms each
    assert world.time - t0 == pytest.approx(10.0, abs=1e-6)


def test_unstable_physics_raises_instead_of_silently_resetting(world):
    world.data.qvel[:] = 1e12  # MuJoCo would reset the data itself and carry on
    with pytest.raises(ArmError, match="diverged"):
        world.step(0.02)


def test_same_seed_same_commands_same_trajectory():
    runs = []
    for _ in range(2):
        w = SimWorld(seed=8)
        arm = MujocoArm(w)
        arm.command_joints(w.start_joints + np.array([0.3, 0.2, -0.1, 0.0, 0.1, 0.5]), 0.4)
        arm.command_gripper(0.0)
        w.step(0.6)
        runs.append(w.data.qpos.copy())
    np.testing.assert_array_equal(runs[0], runs[1])


def test_unknown_task_and_object_are_named():
    with pytest.raises(ConfigurationError, match="carrot_in_pot"):
        get_task("stack_blocks")
    w = SimWorld(seed=0)
    with pytest.raises(InvalidInputError, match="banana"):
        w.object_pose("banana")


# ------------------------------------------------------------------ success checks


def test_carrot_dropped_in_the_pot_is_success(world):
    world.reset(3)
    pot = world.object_pose("pot")[:3, 3]
    _place(world, "carrot", (pot[0], pot[1], 0.08), yaw=0.4)
    world.step(0.5)
    outcome = world.success()
    assert outcome.success, outcome.reason
    assert world.object_pose("carrot")[2, 3] < scene.POT_HEIGHT


def test_carrot_on_the_table_is_failure_with_distance(world):
    world.reset(3)
    outcome = world.success()
    assert not outcome.success
    assert "cm from the pot's axis" in outcome.reason


def test_carrot_on_plate_task():
    w = SimWorld(task="carrot_on_plate", seed=6)
    assert w.task.instruction == "put the carrot on the plate"
    assert not w.success().success
    plate = w.object_pose("plate")[:3, 3]
    _place(w, "carrot", (plate[0] + 0.02, plate[1] - 0.01, 0.05))
    w.step(0.5)
    outcome = w.success()
    assert outcome.success, outcome.reason
    # resting on the plate, not just above it: lift it in the air over the plate and it fails
    _place(w, "carrot", (plate[0], plate[1], 0.2))
    w.step(0.02)
    assert not w.success().success


def test_carrot_held_inside_the_pot_is_not_success(world):
    """The gripper must have let go: grasped means touching both finger pads."""
    world.reset(3)
    arm = MujocoArm(world)
    ee = world.ee_pose()
    _place(world, "carrot", ee[:3, 3], yaw=math.atan2(ee[1, 2], ee[0, 2]))  # across the open fingers
    arm.command_gripper(0.0)
    world.step(0.4)
    assert world.is_grasped("carrot")
    assert world.object_pose("carrot")[2, 3] > 0.1  # held up in the air, not fallen
    arm.command_gripper(1.0)
    world.step(0.6)
    assert not world.is_grasped("carrot")


# ------------------------------------------------------------------ camera


def _nearest_colour(rgb: np.ndarray) -> str:
    """The scene colour whose hue (normalized RGB: shading only scales it) is closest."""
    names = ("carrot", "pot", "plate", "table", "arm", "wall")
    hue = rgb / np.linalg.norm(rgb)
    return max(names, key=lambda n: float(np.dot(hue, np.array(scene.COLORS[n][:3]) / np.linalg.norm(scene.COLORS[n][:3]))))


def test_render_is_a_480x640_rgb_image_showing_the_objects(world):
    img = _render_or_skip(world)
    assert img.shape == (480, 640, 3) and img.dtype == np.uint8
    for name in ("carrot", "pot", "plate"):
        row, col = world.project(world.object_pose(name)[:3, 3] + np.array([0, 0, 0.005]))
        assert 0 <= row < 480 and 0 <= col < 640, name
        patch = img[int(row) - 2 : int(row) + 3, int(col) - 2 : int(col) + 3].reshape(-1, 3).astype(float)
        assert _nearest_colour(patch.mean(0)) == name, (name, patch.mean(0))
    bare = np.array([0.2, -0.15, 0.0])  # bare table in front, for this seed's layout
    assert all(np.linalg.norm(world.object_pose(n)[:2, 3] - bare[:2]) > 0.1 for n in scene.OBJECTS)
    row, col = world.project(bare)
    assert _nearest_colour(img[int(row), int(col)].astype(float)) == "table"


def test_observation_frame_carries_ground_truth(world):
    frame = world.observation(render=False)
    assert frame.image.shape == (1, 1, 3) and frame.extras["rendered"] is False
    assert frame.stamp == world.time
    np.testing.assert_array_equal(frame.extras["objects"]["carrot"], world.object_pose("carrot"))
    np.testing.assert_array_equal(frame.extras["ee_pose"], world.ee_pose())


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int)).sum(axis=2) > 30


def _near(mask: np.ndarray, rc: tuple[float, float], radius: int = 12) -> float:
    r, c = int(rc[0]), int(rc[1])
    return float(mask[max(r - radius, 0) : r + radius, max(c - radius, 0) : c + radius].mean())


def test_frames_change_where_the_carrot_moves(world):
    before = _render_or_skip(world)
    old = world.object_pose("carrot")[:3, 3]
    new = old + np.array([0.0, 0.08, 0.0])
    _place(world, "carrot", new)
    world.step(0.02)
    after = world.render()
    mask = _changed(before, after)
    assert _near(mask, world.project(old)) > 0.3  # the carrot left here
    assert _near(mask, world.project(new)) > 0.3  # and arrived there
    assert mask.mean() < 0.05  # nothing else changed much
    far = world.project(world.object_pose("plate")[:3, 3])
    assert _near(mask, far) < 0.05


def test_frames_change_where_the_arm_moves(world):
    arm = MujocoArm(world)
    before = _render_or_skip(world)
    pad = world.model.geom("left_finger_pad").id
    old = world.data.geom_xpos[pad].copy()
    target = world.start_joints + np.array([0.35, 0.0, 0.0, 0.0, 0.0, 0.0])  # waist swings left
    arm.command_joints(target, 0.3)
    world.step(0.6)
    new = world.data.geom_xpos[pad].copy()
    assert np.linalg.norm(new - old) > 0.05
    after = world.render()
    mask = _changed(before, after)
    assert _near(mask, world.project(old)) > 0.3  # the finger left here
    assert _near(mask, world.project(new)) > 0.3  # and arrived there
    assert _near(mask, world.project(world.object_pose("pot")[:3, 3]), 10) < 0.05
