"""The simulated world: MuJoCo model and data, seeded resets, stepping in sim time, rendering.

Time is the simulator's own (``world.time``, seconds of simulated time since the world was
created; it keeps running across resets so consumers that require monotonic stamps, like the
safety filter and the supervisor, see one clock). Nothing here sleeps or reads the wall clock, so a run is deterministic for a seed and a caller may step faster than real
time or pace itself to it. Controllers (the :class:`~nora_ros.sim.arm.MujocoArm`) register with
:meth:`SimWorld.add_controller` and set actuator targets before every physics step.
"""

from __future__ import annotations

import os
import weakref


def configure_gl() -> None:
    """Default MuJoCo to CPU offscreen rendering (OSMesa) unless the caller chose a backend.

    Must run before ``mujoco`` is first imported; importing this module does it.
    """
    os.environ.setdefault("MUJOCO_GL", "osmesa")
    if os.environ["MUJOCO_GL"] == "osmesa":
        os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")


configure_gl()

from collections.abc import Mapping  # noqa: E402
from typing import Protocol  # noqa: E402

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402

from nora_ros.actions import bridge_state_to_pose  # noqa: E402
from nora_ros.camera.frame import Frame  # noqa: E402
from nora_ros.errors import ArmError, ConfigurationError, InvalidInputError  # noqa: E402
from nora_ros.robot.kinematics import WidowXModel  # noqa: E402
from nora_ros.sim import scene  # noqa: E402
from nora_ros.sim.tasks import DEFAULT_TASK, Outcome, Placement, Task, get_task, sample_layout  # noqa: E402

START_STATE = (0.25, 0.0, 0.15, 0.0, 0.0, 0.0)
"""Bridge state ``[x, y, z, roll, pitch, yaw]`` where every trial starts: gripper pointing down
15 cm above the table, in view of the camera, like the raised start of Bridge episodes."""

SETTLE_TIME = 0.3
"""Seconds of physics run at reset so objects rest on the table before time 0."""


class Controller(Protocol):
    """Something that sets actuator targets from the sim time before each physics step."""

    def on_reset(self) -> None:
        """The world was reset: drop targets, adopt the new state."""

    def before_step(self, time: float) -> None:
        """Set ``data.ctrl`` for the step that starts at ``time``."""


class SimWorld:
    """The MuJoCo scene with a task: reset from a seed, step, render, report ground truth.

    ``task`` names an entry of :data:`nora_ros.sim.tasks.TASKS`. The arm starts at
    :data:`START_STATE` with the gripper open and the objects placed at random from the seed.
    ``kinematics`` is the arm's :class:`~nora_ros.robot.kinematics.WidowXModel` (limits, FK, IK).
    """

    def __init__(self, task: str | Task = DEFAULT_TASK, config: scene.SceneConfig | None = None, seed: int = 0):
        self.config = config or scene.SceneConfig()
        self.task = get_task(task) if isinstance(task, str) else task
        try:
            self.model = mujoco.MjModel.from_xml_string(scene.build_mjcf(self.config))
        except ValueError as exc:
            raise ConfigurationError(f"the simulated scene does not compile: {exc}") from exc
        self.data = mujoco.MjData(self.model)
        self.kinematics = WidowXModel.from_name(self.config.robot_model)
        names = self.kinematics.joint_names
        start = self.kinematics.ik(bridge_state_to_pose(START_STATE), self.kinematics.home_joints)
        if not start.success:
            raise ConfigurationError(f"START_STATE {START_STATE} is not reachable: {start.reason}")
        self.start_joints = np.array(start.joints)
        m = self.model
        self.arm_qpos = np.array([m.joint(n).qposadr[0] for n in names])
        self.arm_qvel = np.array([m.joint(n).dofadr[0] for n in names])
        self.finger_qpos = np.array([m.joint(n).qposadr[0] for n in scene.FINGER_JOINTS])
        self.arm_actuators = np.array([m.actuator(n).id for n in names])
        self.finger_actuators = np.array([m.actuator(n).id for n in scene.FINGER_JOINTS])
        self.ee_site = m.site("ee").id
        self.camera_id = m.camera("bridge").id
        self._body_ids = {n: m.body(n).id for n in scene.OBJECTS}
        self._finger_bodies = {m.body(f"{n}_link").id for n in scene.FINGER_JOINTS}
        self._controllers: list[Controller] = []
        self._renderer: mujoco.Renderer | None = None
        self._step_carry = 0.0
        self.seed = seed
        self.layout: dict[str, Placement] = {}
        self.reset(seed)

    # ------------------------------------------------------------------ lifecycle

    @property
    def time(self) -> float:
        """Seconds of simulated time since the world was created (monotonic across resets)."""
        return float(self.data.time)

    @property
    def trial_time(self) -> float:
        """Seconds of simulated time since the last reset."""
        return float(self.data.time) - self.trial_start

    @property
    def timestep(self) -> float:
        return float(self.model.opt.timestep)

    def add_controller(self, controller: Controller) -> None:
        """Call ``controller.before_step`` before every physics step from now on."""
        self._controllers.append(controller)

    def reset(self, seed: int | None = None, task: str | Task | None = None) -> None:
        """Start a new trial: arm at the start pose, gripper open, objects placed from ``seed``."""
        if task is not None:
            self.task = get_task(task) if isinstance(task, str) else task
        if seed is not None:
            self.seed = int(seed)
        rng = np.random.default_rng(self.seed)
        m, d = self.model, self.data
        now = float(d.time)  # 0 for a fresh world; later trials carry the clock on
        mujoco.mj_resetData(m, d)
        d.qpos[self.arm_qpos] = self.start_joints
        d.qpos[self.finger_qpos] = scene.FINGER_RANGE[1]
        d.ctrl[self.arm_actuators] = self.start_joints
        d.ctrl[self.finger_actuators] = scene.FINGER_RANGE[1]
        self.layout = sample_layout(rng)
        rest_z = {"carrot": scene.CARROT_RADIUS, "pot": 0.0, "plate": 0.0}
        for name, place in self.layout.items():
            adr = m.joint(name).qposadr[0]
            d.qpos[adr : adr + 3] = (place.x, place.y, scene.TABLE_HEIGHT + rest_z[name] + 0.001)
            d.qpos[adr + 3 : adr + 7] = Rotation.from_euler("z", place.yaw).as_quat()[[3, 0, 1, 2]]  # w first (scalar_first needs scipy 1.14)
        mujoco.mj_forward(m, d)
        for _ in range(round(SETTLE_TIME / self.timestep)):
            mujoco.mj_step(m, d)
        d.time = now  # the settling is not part of the trial; the clock carries on
        self.trial_start = now
        self._step_carry = 0.0
        mujoco.mj_forward(m, d)
        for c in self._controllers:
            c.on_reset()

    def step(self, dt: float) -> None:
        """Advance the simulation by ``dt`` seconds.

        Whole physics steps are taken; the fraction of a step left over is carried to the next
        call, so a 30 Hz loop (33.3 ms = 16.7 steps of 2 ms) keeps sim time in step with its
        ticks on average. :attr:`time` is always the exact simulated time.
        """
        if not (dt >= 0.0 and np.isfinite(dt)):
            raise InvalidInputError(f"step duration must be a non-negative number of seconds, got {dt}")
        m, d = self.model, self.data
        wanted = dt + self._step_carry
        n = int(wanted / self.timestep + 1e-9)
        self._step_carry = max(wanted - n * self.timestep, 0.0)
        bad = self._instabilities()
        for _ in range(n):
            for c in self._controllers:
                c.before_step(float(d.time))
            mujoco.mj_step(m, d)
        # MuJoCo resets the data itself when the accelerations blow up: never hide that
        if self._instabilities() != bad or not np.all(np.isfinite(d.qpos)):
            raise ArmError(f"the simulation diverged near t={self.time:.3f} s (unstable physics); reset the world")

    def _instabilities(self) -> int:
        """How often MuJoCo found NaN/huge positions, velocities or accelerations (and reset)."""
        w = self.data.warning
        kinds = (mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL, mujoco.mjtWarning.mjWARN_BADQACC)
        return sum(int(w[k].number) for k in kinds)

    def close(self) -> None:
        """Free the renderer's GL context (the model and data are plain memory)."""
        if self._renderer is not None:
            self._renderer_finalizer()
            self._renderer = None

    def __enter__(self) -> SimWorld:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ measurements

    def arm_joints(self) -> np.ndarray:
        return self.data.qpos[self.arm_qpos].copy()

    def arm_velocities(self) -> np.ndarray:
        return self.data.qvel[self.arm_qvel].copy()

    def finger_positions(self) -> np.ndarray:
        return self.data.qpos[self.finger_qpos].copy()

    def gripper_opening(self) -> float:
        """Mean finger position mapped to [0, 1] (1 = open), like the robot's reading."""
        lo, hi = scene.FINGER_RANGE
        return float(np.clip((np.mean(self.finger_positions()) - lo) / (hi - lo), 0.0, 1.0))

    def ee_pose(self) -> np.ndarray:
        """4x4 pose of the end-effector site in the base frame (equals the wx250s FK)."""
        d = self.data
        t = np.eye(4)
        t[:3, :3] = d.site_xmat[self.ee_site].reshape(3, 3)
        t[:3, 3] = d.site_xpos[self.ee_site]
        return t

    def object_pose(self, name: str) -> np.ndarray:
        """4x4 pose of object ``name`` (``carrot``, ``pot``, ``plate``) in the base frame."""
        if name not in self._body_ids:
            raise InvalidInputError(f"unknown object '{name}'; objects are {scene.OBJECTS}")
        b = self._body_ids[name]
        t = np.eye(4)
        t[:3, :3] = self.data.xmat[b].reshape(3, 3)
        t[:3, 3] = self.data.xpos[b]
        return t

    def _contact_bodies(self) -> list[tuple[int, int]]:
        d, m = self.data, self.model
        return [(int(m.geom_bodyid[c.geom1]), int(m.geom_bodyid[c.geom2])) for c in d.contact[: d.ncon]]

    def touching(self, body_a: str, body_b: str) -> bool:
        """Whether any geom of body ``body_a`` is in contact with one of ``body_b``."""
        a, b = self.model.body(body_a).id, self.model.body(body_b).id
        return any({x, y} == {a, b} for x, y in self._contact_bodies())

    def is_grasped(self, name: str) -> bool:
        """Whether object ``name`` touches both fingers (it is held, not resting)."""
        b = self._body_ids[name]
        touched = {y if x == b else x for x, y in self._contact_bodies() if b in (x, y)}
        return self._finger_bodies <= touched

    def success(self) -> Outcome:
        """The current task's verdict on the physics state now."""
        return self.task.check(self)

    def ground_truth(self) -> dict[str, object]:
        """Everything a scripted policy may read, as plain arrays (copied)."""
        return {
            "sim_time": self.time,
            "trial_time": self.trial_time,
            "task": self.task.name,
            "instruction": self.task.instruction,
            "objects": {n: self.object_pose(n) for n in scene.OBJECTS},
            "ee_pose": self.ee_pose(),
            "joints": self.arm_joints(),
            "gripper": self.gripper_opening(),
            "grasped": {n: self.is_grasped(n) for n in scene.OBJECTS},
        }

    # ------------------------------------------------------------------ camera

    def render(self) -> np.ndarray:
        """The Bridge-like camera's view now: ``(H, W, 3)`` uint8 RGB (480x640 by default)."""
        if self._renderer is None:
            try:
                self._renderer = mujoco.Renderer(self.model, self.config.image_height, self.config.image_width)
            except Exception as exc:  # GL backends raise assorted types
                raise ConfigurationError(
                    f"cannot create an offscreen renderer with MUJOCO_GL={os.environ.get('MUJOCO_GL')}: {exc}. "
                    "On Debian/Ubuntu install libosmesa6 and set MUJOCO_GL=osmesa before importing mujoco."
                ) from exc
            # free the GL context when the world goes away or, at the latest, at interpreter exit
            # (MuJoCo's own __del__ then runs after OpenGL is torn down and raises)
            self._renderer_finalizer = weakref.finalize(self, self._renderer.close)
        self._renderer.update_scene(self.data, camera=self.camera_id)
        return self._renderer.render().copy()

    def project(self, point: np.ndarray) -> tuple[float, float]:
        """Pixel (row, column) where the camera sees base-frame ``point`` (pinhole model).

        For labels and tests: which part of the image a moving object should change.
        """
        d = self.data
        cam_pos = d.cam_xpos[self.camera_id]
        cam_rot = d.cam_xmat[self.camera_id].reshape(3, 3)  # columns: image right, image up, backwards
        local = cam_rot.T @ (np.asarray(point, dtype=np.float64) - cam_pos)
        if local[2] >= 0.0:
            raise InvalidInputError(f"point {np.round(point, 3).tolist()} is behind the camera")
        h, w = self.config.image_height, self.config.image_width
        f = 0.5 * h / np.tan(np.radians(self.model.cam_fovy[self.camera_id]) / 2.0)
        col = w / 2.0 + f * local[0] / -local[2]
        row = h / 2.0 - f * local[1] / -local[2]
        return float(row), float(col)

    def observation(self, render: bool = True) -> Frame:
        """A camera :class:`Frame` stamped with sim time, ground truth in ``extras``.

        ``render=False`` skips the (costly) image and sends a 1x1 black placeholder, for loops
        whose policy reads only the ground truth; ``extras["rendered"]`` says which it is.
        """
        image = self.render() if render else np.zeros((1, 1, 3), dtype=np.uint8)
        extras: Mapping[str, object] = {**self.ground_truth(), "rendered": render}
        return Frame(image=image, stamp=self.time, encoding="rgb8", frame_id="sim_camera", extras=extras)
