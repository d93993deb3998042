"""The simulated scene agrees with the wx250s kinematics and the real limits (DESIGN.md 6)."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

mujoco = pytest.importorskip("mujoco", reason="the simulator needs the 'sim' extra (pip install -e '.[sim]')")

from nora_ros.errors import ConfigurationError  # noqa: E402
from nora_ros.robot.kinematics import WidowXModel  # noqa: E402
from nora_ros.sim import scene  # noqa: E402


def _compile(config: scene.SceneConfig | None = None):
    model = mujoco.MjModel.from_xml_string(scene.build_mjcf(config))
    return model, mujoco.MjData(model)


@pytest.mark.parametrize("robot", ["wx250s", "wx250"])
def test_mujoco_fk_matches_kinematics_fk_for_random_joints(robot):
    model, data = _compile(scene.SceneConfig(robot_model=robot))
    kin = WidowXModel.from_name(robot)
    adr = [model.joint(n).qposadr[0] for n in kin.joint_names]
    site = model.site("ee").id
    rng = np.random.default_rng(7)
    for q in rng.uniform(kin.lower, kin.upper, size=(200, kin.n_joints)):
        data.qpos[adr] = q
        mujoco.mj_kinematics(model, data)
        expected = kin.fk(q)
        assert np.linalg.norm(data.site_xpos[site] - expected[:3, 3]) < 1e-3, q
        np.testing.assert_allclose(data.site_xmat[site].reshape(3, 3), expected[:3, :3], atol=1e-6)


def test_home_pose_is_m():
    model, data = _compile()
    mujoco.mj_kinematics(model, data)
    np.testing.assert_allclose(data.site_xpos[model.site("ee").id], [0.458325, 0.0, 0.36065], atol=1e-9)


def test_joint_and_actuator_ranges_are_the_real_limits():
    model, _ = _compile()
    kin = WidowXModel.from_name("wx250s")
    for i, name in enumerate(kin.joint_names):
        np.testing.assert_allclose(model.joint(name).range, [kin.lower[i], kin.upper[i]], atol=1e-7)
        np.testing.assert_allclose(model.actuator(name).ctrlrange, [kin.lower[i], kin.upper[i]], atol=1e-7)
        assert model.joint(name).type == mujoco.mjtJoint.mjJNT_HINGE
    for name in scene.FINGER_JOINTS:
        np.testing.assert_allclose(model.joint(name).range, [0.015, 0.037])
        np.testing.assert_allclose(model.actuator(name).ctrlrange, [0.015, 0.037])


def test_joint_anchors_lie_on_their_screw_axes():
    kin = WidowXModel.from_name("wx250s")
    anchors = scene.joint_anchors(kin.screw_axes)
    for s, q in zip(kin.screw_axes, anchors, strict=True):
        w, v = s[:3], s[3:]
        np.testing.assert_allclose(-np.cross(w, q), v, atol=1e-12)  # v = -w x q for a point q on the axis


def test_arm_does_not_collide_with_itself_but_with_the_world():
    model, _ = _compile()
    arm_body = model.body("elbow_link").id
    arm_geoms = [g for g in range(model.ngeom) if model.geom_bodyid[g] == arm_body]
    table = model.geom("table").id
    for g in arm_geoms:
        assert model.geom_contype[g] & model.geom_conaffinity[table] or model.geom_contype[table] & model.geom_conaffinity[g]
        assert not (model.geom_contype[g] & model.geom_conaffinity[g])


def test_gap_between_open_and_closed_pads():
    """Open pads clear a carrot with margin; closed pads squeeze it (gap below its diameter)."""
    model, data = _compile()
    left, right = model.geom("left_finger_pad").id, model.geom("right_finger_pad").id
    for q, lo, hi in ((0.037, 0.045, 0.055), (0.015, 0.0, 2 * scene.CARROT_RADIUS - 0.01)):
        data.qpos[[model.joint("left_finger").qposadr[0], model.joint("right_finger").qposadr[0]]] = q
        mujoco.mj_kinematics(model, data)
        gap = abs(data.geom_xpos[left][1] - data.geom_xpos[right][1]) - 2 * model.geom_size[left][1]
        assert lo <= gap <= hi, (q, gap)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("timestep", 0.05, "timestep"),
        ("robot_model", "px100", "robot_model"),
        ("camera_fovy", 0.0, "camera_fovy"),
        ("finger_friction", -1.0, "finger_friction"),
        ("camera_up", (0.635, 0.351, -0.689), "parallel"),
        ("antialias_samples", 3, "antialias_samples"),
    ],
)
def test_bad_scene_config_is_rejected_with_the_field_named(field, value, words):
    with pytest.raises(ConfigurationError, match=words):
        scene.SceneConfig(**{field: value})


def test_camera_axes_are_orthonormal_and_look_forward_down():
    xy = scene.SceneConfig().camera_xyaxes()
    right, up = xy[:3], xy[3:]
    assert abs(np.dot(right, up)) < 1e-9
    np.testing.assert_allclose([np.linalg.norm(right), np.linalg.norm(up)], 1.0)
    view = np.cross(up, right)  # MuJoCo cameras look along -z = up x right
    assert view[0] > 0.5 and view[2] < -0.5
