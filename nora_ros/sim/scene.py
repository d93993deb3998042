"""The MJCF of the simulated scene, built in code from the wx250s kinematics (DESIGN.md 6).

The arm is built from the product-of-exponentials description, not from a mesh URDF: every
screw axis ``(omega; v)`` gives a joint axis through the point ``omega x v``, the home pose
has identity rotation, so each body is a plain offset and MuJoCo's forward kinematics equals
``FKinSpace(M, Slist, q)`` by construction (a test checks it against nora_ros.robot.kinematics).
Geometry is primitive (capsules, boxes): what matters for the policy is where things are and
that the gripper really grasps, not the looks.

Collision groups: arm geoms (contype 2, conaffinity 1) collide with the world and objects
(contype 1, conaffinity 3) but not with each other, so no self-collision tuning is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nora_ros.errors import ConfigurationError
from nora_ros.robot.kinematics import FINGER_LOWER, FINGER_UPPER, ROBOT_MODELS, WidowXModel

# ----------------------------------------------------------------------------- arm facts
# Screw axes, home pose, joint limits, finger travel and the velocity limit come from
# nora_ros.robot.kinematics, the one place those facts live (DESIGN.md 6).

FINGER_JOINTS = ("left_finger", "right_finger")
FINGER_RANGE = (FINGER_LOWER, FINGER_UPPER)
"""Finger joint travel in metres (each finger, from the gripper centre line)."""

FINGER_INNER_OFFSET = 0.012
"""The pad's inner face sits this far inside the finger joint position, so the gap between the
pads is ``2 * (finger - offset)``: 6 mm closed, 50 mm open, wide enough for a carrot."""

TABLE_HEIGHT = 0.0
"""The table top is the arm's base plane (z = 0), as on the Bridge toy kitchens."""

# objects: sizes in metres
CARROT_RADIUS = 0.015
CARROT_HALF_LENGTH = 0.036
POT_INNER_RADIUS = 0.064
POT_WALL = 0.005
POT_HEIGHT = 0.065
POT_BOTTOM = 0.008
PLATE_RADIUS = 0.075
PLATE_HALF_HEIGHT = 0.006

OBJECTS = ("carrot", "pot", "plate")

COLORS = {
    "arm": (0.12, 0.12, 0.13, 1.0),
    "finger": (0.25, 0.25, 0.27, 1.0),
    "carrot": (1.0, 0.45, 0.05, 1.0),
    "carrot_leaf": (0.2, 0.6, 0.15, 1.0),
    "pot": (0.3, 0.4, 0.65, 1.0),
    "plate": (0.95, 0.92, 0.6, 1.0),
    "table": (0.55, 0.36, 0.22, 1.0),
    "wall": (0.55, 0.58, 0.62, 1.0),
}


@dataclass(frozen=True)
class SceneConfig:
    """What can be tuned in the scene. Defaults follow BridgeData V2's setup.

    ``camera_pos`` / ``camera_forward`` / ``camera_up`` place the fixed third-person camera in
    the arm's base frame: the calibrated Bridge camera of SimplerEnv (over the arm's right
    shoulder, looking forward-left and down at the table), ``camera_fovy`` from the Logitech C920
    intrinsics (fy = 623.6 px at 480 rows). ``timestep`` is the physics step (s): 2 ms keeps
    grasps stable at a cost of 100 steps per 0.2 s action. ``shadows`` and
    ``antialias_samples`` (multisampling) are off by default: on OSMesa's CPU rasterizer 4x
    multisampling makes a 480x640 frame 3 to 5 times slower, and the policy sees the image
    downscaled to 224x224 anyway.
    """

    robot_model: str = "wx250s"
    timestep: float = 0.002
    image_height: int = 480
    image_width: int = 640
    camera_pos: tuple[float, float, float] = (0.0, -0.16, 0.36)
    camera_forward: tuple[float, float, float] = (0.635, 0.351, -0.689)
    camera_up: tuple[float, float, float] = (0.603, 0.333, 0.725)
    camera_fovy: float = 42.1
    finger_friction: float = 1.5
    object_friction: float = 1.0
    shadows: bool = False
    antialias_samples: int = 0

    def __post_init__(self) -> None:
        if self.robot_model not in ROBOT_MODELS:
            raise ConfigurationError(f"robot_model must be one of {ROBOT_MODELS}, got '{self.robot_model}'")
        if not (0.0 < self.timestep <= 0.01):
            raise ConfigurationError(f"timestep must be in (0, 0.01] s for stable grasps, got {self.timestep}; 0.002 is the default")
        if self.image_height < 16 or self.image_width < 16:
            raise ConfigurationError(f"image size must be at least 16x16, got {self.image_height}x{self.image_width}")
        if not (1.0 < self.camera_fovy < 170.0):
            raise ConfigurationError(f"camera_fovy must be in degrees between 1 and 170, got {self.camera_fovy}")
        f, u = np.asarray(self.camera_forward, float), np.asarray(self.camera_up, float)
        if np.linalg.norm(np.cross(f, u)) < 1e-3:
            raise ConfigurationError("camera_forward and camera_up must not be parallel")
        if self.antialias_samples not in (0, 1, 2, 4, 8):
            raise ConfigurationError(f"antialias_samples must be 0, 1, 2, 4 or 8, got {self.antialias_samples}")
        for name in ("finger_friction", "object_friction"):
            if not getattr(self, name) > 0.0:
                raise ConfigurationError(f"{name} must be positive, got {getattr(self, name)}")

    def camera_xyaxes(self) -> np.ndarray:
        """MuJoCo's ``xyaxes`` (image right, image up) for the camera: it looks along -z."""
        f = np.asarray(self.camera_forward, float)
        f = f / np.linalg.norm(f)
        right = np.cross(f, np.asarray(self.camera_up, float))
        right /= np.linalg.norm(right)
        up = np.cross(right, f)
        return np.concatenate([right, up])


# ----------------------------------------------------------------------------- helpers


def joint_anchors(screw_axes: np.ndarray) -> np.ndarray:
    """A point on each joint axis: the projection of the previous joint's anchor.

    For a unit ``omega`` the axis passes through ``omega x v``; projecting the previous anchor
    onto it keeps consecutive bodies short (the body origin may be anywhere on the axis).
    """
    anchors = []
    prev = np.zeros(3)
    for s in screw_axes:
        w, v = s[:3], s[3:]
        q = np.cross(w, v)
        p = q + w * np.dot(prev - q, w)
        anchors.append(p)
        prev = p
    return np.array(anchors)


def _v(x) -> str:
    return " ".join(f"{float(c):.6g}" for c in np.asarray(x, dtype=float).reshape(-1))


def _rgba(name: str) -> str:
    return _v(COLORS[name])


ARM_GEOM = 'contype="2" conaffinity="1" condim="3" group="1"'
WORLD_GEOM = 'contype="1" conaffinity="3"'


def _arm_body_geoms(name: str, has_roll: bool) -> str:
    """Primitive geoms of each link, in that link's frame (origin at its joint anchor)."""
    rgba = _rgba("arm")
    g = f'{ARM_GEOM} rgba="{rgba}" density="800"'
    if name == "waist":
        return f'<geom type="cylinder" pos="0 0 0.085" size="0.045 0.025" {g}/>'
    if name == "shoulder":
        # to the elbow: (0.04975, 0, 0.25) from the shoulder
        return (
            f'<geom type="capsule" fromto="0 0 0 0.04975 0 0.25" size="0.028" {g}/>'
            f'<geom type="cylinder" pos="0 0 0" euler="1.5708 0 0" size="0.035 0.04" {g}/>'
        )
    if name == "elbow":
        length = 0.12 if has_roll else 0.225  # wx250: one rigid forearm
        return f'<geom type="capsule" fromto="0 0 0 {length} 0 0" size="0.025" {g}/>'
    if name == "forearm_roll":
        return f'<geom type="capsule" fromto="0.12 0 0 0.225 0 0" size="0.022" {g}/>'
    if name == "wrist_angle":
        return f'<geom type="cylinder" pos="0 0 0" euler="1.5708 0 0" size="0.025 0.03" {g}/>'
    if name == "wrist_rotate":
        return (
            f'<geom type="capsule" fromto="0.01 0 0 0.05 0 0" size="0.022" {g}/>'
            f'<geom type="box" pos="0.075 0 0" size="0.025 0.045 0.022" {g}/>'
        )
    raise ConfigurationError(f"no geometry for joint '{name}'")


def _finger(name: str, sign: float, ee_x: float, config: SceneConfig) -> str:
    """One finger: a slide joint along the gripper's y axis, its pad's inner face at
    ``sign * (q - FINGER_INNER_OFFSET)`` from the centre line."""
    half_thick = 0.005
    x0, x1 = 0.095, ee_x + 0.015  # from the gripper housing to 15 mm past the grasp point
    pad_y = sign * (half_thick - FINGER_INNER_OFFSET)
    lo, hi = FINGER_RANGE
    return f"""
        <body name="{name}_link" gravcomp="1">
          <joint name="{name}" type="slide" axis="0 {sign:g} 0" range="{lo} {hi}" damping="4" armature="0.01"/>
          <geom name="{name}_pad" type="box" pos="{(x0 + x1) / 2:.6g} {pad_y:.6g} 0" size="{(x1 - x0) / 2:.6g} {half_thick} 0.012"
                contype="2" conaffinity="1" condim="4" friction="{config.finger_friction} 0.02 0.0001"
                solref="0.004 1" rgba="{_rgba("finger")}" mass="0.03"/>
        </body>"""


def build_mjcf(config: SceneConfig | None = None) -> str:
    """The scene's MJCF: table, wx250s with a parallel gripper, carrot, pot, plate, camera.

    Objects are placed at the origin here; :class:`nora_ros.sim.world.SimWorld` puts them where
    a seeded task wants them.
    """
    config = config or SceneConfig()
    kin = WidowXModel.from_name(config.robot_model)
    if not np.allclose(kin.home_pose[:3, :3], np.eye(3)):
        raise ConfigurationError("the scene builder assumes an identity home rotation (true for the WidowX models)")
    anchors = joint_anchors(kin.screw_axes)
    ee_local = kin.home_pose[:3, 3] - anchors[-1]
    has_roll = "forearm_roll" in kin.joint_names

    # nested arm bodies: each body's pos is its anchor relative to the parent's anchor
    arm_xml = ""
    closing = ""
    prev = np.zeros(3)
    for i, name in enumerate(kin.joint_names):
        w = kin.screw_axes[i, :3]
        lo, hi = kin.lower[i], kin.upper[i]
        arm_xml += f"""
      <body name="{name}_link" pos="{_v(anchors[i] - prev)}" gravcomp="1">
        <joint name="{name}" type="hinge" axis="{_v(w)}" range="{lo:.8g} {hi:.8g}" damping="0.5" armature="0.02"/>
        {_arm_body_geoms(name, has_roll)}"""
        closing += "\n      </body>"
        prev = anchors[i]
    gripper = f"""
        <site name="ee" pos="{_v(ee_local)}" size="0.006" rgba="1 0 0 0.5" group="4"/>
        {_finger("left_finger", 1.0, ee_local[0], config)}
        {_finger("right_finger", -1.0, ee_local[0], config)}"""
    arm_xml += gripper + closing

    actuators = ""
    for i, name in enumerate(kin.joint_names):
        lo, hi = kin.lower[i], kin.upper[i]
        torque = 20.0 if name == "shoulder" else 10.0
        actuators += (
            f'\n    <position name="{name}" joint="{name}" kp="1000" dampratio="1" '
            f'ctrlrange="{lo:.8g} {hi:.8g}" forcerange="{-torque} {torque}"/>'
        )
    for name in FINGER_JOINTS:
        lo, hi = FINGER_RANGE
        actuators += (
            f'\n    <position name="{name}" joint="{name}" kp="600" kv="8" ctrlrange="{lo} {hi}" forcerange="-8 8"/>'
        )

    # pot walls: a ring of boxes
    n_walls = 16
    wall_r = POT_INNER_RADIUS + POT_WALL / 2
    wall_half_w = math.pi * wall_r / n_walls * 1.08
    wall_half_h = (POT_HEIGHT - POT_BOTTOM) / 2
    walls = ""
    for k in range(n_walls):
        a = 2 * math.pi * k / n_walls
        walls += (
            f'\n      <geom type="box" pos="{wall_r * math.cos(a):.5f} {wall_r * math.sin(a):.5f} {POT_BOTTOM + wall_half_h:.5f}" '
            f'euler="0 0 {a:.5f}" size="{POT_WALL / 2} {wall_half_w:.5f} {wall_half_h:.5f}" {WORLD_GEOM} '
            f'friction="{config.object_friction} 0.005 0.0001" rgba="{_rgba("pot")}" mass="0.02"/>'
        )
    handle_x = POT_INNER_RADIUS + POT_WALL + 0.015
    handles = "".join(
        f'\n      <geom type="box" pos="{s * handle_x:.5f} 0 {POT_HEIGHT - 0.01:.5f}" size="0.015 0.02 0.004" '
        f'{WORLD_GEOM} rgba="{_rgba("pot")}" mass="0.01"/>'
        for s in (1, -1)
    )

    xy = config.camera_xyaxes()
    shadow = "true" if config.shadows else "false"
    return f"""<mujoco model="nora_widowx_scene">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{config.timestep}" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <visual>
    <global offwidth="{max(640, config.image_width)}" offheight="{max(480, config.image_height)}"/>
    <quality shadowsize="1024" offsamples="{config.antialias_samples}"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.45 0.45 0.45" specular="0.05 0.05 0.05"/>
  </visual>
  <asset>
    <texture name="sky" type="skybox" builtin="gradient" rgb1="0.75 0.78 0.8" rgb2="0.45 0.47 0.5" width="64" height="64"/>
    <texture name="wood" type="2d" builtin="gradient" rgb1="{_v(COLORS["table"][:3])}" rgb2="0.47 0.3 0.18" width="256" height="256"/>
    <material name="table" texture="wood" texrepeat="2 2" specular="0.1"/>
  </asset>
  <worldbody>
    <light name="key" pos="0.3 -0.4 1.2" dir="0 0.3 -1" diffuse="0.5 0.5 0.5" castshadow="{shadow}"/>
    <geom name="floor" type="plane" pos="0 0 -0.75" size="3 3 0.1" rgba="0.3 0.3 0.32 1" {WORLD_GEOM}/>
    <geom name="table" type="box" pos="0.25 0 -0.02" size="0.42 0.5 0.02" material="table" {WORLD_GEOM} solref="0.005 1"
          friction="{config.object_friction} 0.005 0.0001"/>
    <geom name="back_wall" type="box" pos="0.72 0 0.3" size="0.02 0.9 0.6" rgba="{_rgba("wall")}" contype="0" conaffinity="0"/>
    <geom name="side_wall" type="box" pos="0.25 0.52 0.3" size="0.5 0.02 0.6" rgba="{_rgba("wall")}" contype="0" conaffinity="0"/>
    <camera name="bridge" pos="{_v(config.camera_pos)}" xyaxes="{_v(xy)}" fovy="{config.camera_fovy}"/>
    <body name="base_link">
      <geom type="box" pos="0 0 0.03" size="0.07 0.07 0.03" {ARM_GEOM} rgba="{_rgba("arm")}"/>{arm_xml}
    </body>
    <body name="carrot">
      <freejoint name="carrot"/>
      <geom name="carrot" type="capsule" fromto="{-CARROT_HALF_LENGTH} 0 0 {CARROT_HALF_LENGTH} 0 0" size="{CARROT_RADIUS}"
            {WORLD_GEOM} condim="6" friction="{config.object_friction} 0.02 0.001" solref="0.005 1" mass="0.04" rgba="{_rgba("carrot")}"/>
      <geom type="capsule" fromto="{-CARROT_HALF_LENGTH - 0.01} 0 0 {-CARROT_HALF_LENGTH - 0.03} 0 0.008" size="0.004"
            contype="0" conaffinity="0" mass="0.001" rgba="{_rgba("carrot_leaf")}"/>
    </body>
    <body name="pot">
      <freejoint name="pot"/>
      <geom name="pot_bottom" type="cylinder" pos="0 0 {POT_BOTTOM / 2}" size="{POT_INNER_RADIUS + POT_WALL} {POT_BOTTOM / 2}"
            {WORLD_GEOM} friction="{config.object_friction} 0.005 0.0001" mass="0.25" rgba="{_rgba("pot")}"/>{walls}{handles}
    </body>
    <body name="plate">
      <freejoint name="plate"/>
      <geom name="plate" type="cylinder" pos="0 0 {PLATE_HALF_HEIGHT}" size="{PLATE_RADIUS} {PLATE_HALF_HEIGHT}"
            {WORLD_GEOM} friction="{config.object_friction} 0.005 0.0001" mass="0.2" rgba="{_rgba("plate")}"/>
    </body>
  </worldbody>
  <actuator>{actuators}
  </actuator>
</mujoco>
"""
