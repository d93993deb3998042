"""sim_node: the MuJoCo world in place of the robot and its camera (sim.launch.py).

Owns :class:`nora_ros.sim.world.SimWorld` and a :class:`nora_ros.sim.arm.MujocoArm`. Timers
advance the physics (``physics_rate_hz``), render the camera (``camera_rate_hz``, 480x640 rgb8
on the CPU) and publish joint states (``joint_state_rate_hz``, the arm joints plus
``left_finger``/``right_finger`` in metres, as the xs driver does). Joint targets arrive as
``trajectory_msgs/JointTrajectory`` on ``sim/joint_command`` (the last point, reached after its
``time_from_start``), the gripper as ``std_msgs/Float64`` on ``sim/gripper_command`` (1 open):
standard types, so the safety node's topic arm drives it exactly as it would a driver.

Trials: on RESETTING the world is laid out again from ``seed + trial_id`` (arm at the start
pose, gripper open). With ``auto_score`` the sim's own success check scores the trial on
``trial/score``: ``success`` as soon as the task succeeds while RUNNING, and ``success`` or
``failure`` when the trial awaits a score. With each image, ``sim/ground_truth``
(std_msgs/String, JSON: object and end-effector poses, grasp state) feeds the scripted expert
policy (``model: scripted``), which needs no GPU.
"""

from __future__ import annotations

import time

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64, String
from trajectory_msgs.msg import JointTrajectory

from nora_ros.diagnostics import DiagnosticReport, LatencyMeter, Level, RateMeter
from nora_ros.errors import InvalidInputError, NoraError
from nora_ros.interface.convert import (
    array_to_image,
    camera_info,
    ground_truth_to_json,
    joint_state_msg,
    trajectory_target,
    trial_state_name,
)
from nora_ros.interface.node_specs import SIM_PARAMS
from nora_ros.msg import TrialStatus
from nora_ros.nodes import common
from nora_ros.sim.arm import MujocoArm
from nora_ros.sim.world import SimWorld

FINGERS = ("left_finger", "right_finger")


class SimNode:
    def __init__(self, node=None):
        self.node = node or Node("sim_node")
        self.params = p = common.declare_parameters(self.node, SIM_PARAMS)
        common.on_set_parameters(self.node, SIM_PARAMS, self._apply)
        self.world = SimWorld(task=p["task"], seed=p["seed"])
        self.arm = MujocoArm(self.world)
        self.names = list(self.world.kinematics.joint_names)
        sensor, cq = common.qos(common.SENSOR), common.qos(common.COMMAND)
        self.image_pub = self.node.create_publisher(Image, "camera/image_raw", sensor)
        self.info_pub = self.node.create_publisher(CameraInfo, "camera/camera_info", sensor)
        self.joint_pub = self.node.create_publisher(JointState, "joint_states", cq)
        self.score_pub = self.node.create_publisher(String, "trial/score", cq)
        self.truth_pub = self.node.create_publisher(String, "sim/ground_truth", cq)
        self.subs = [
            self.node.create_subscription(JointTrajectory, "sim/joint_command", self._on_joints, cq),
            self.node.create_subscription(Float64, "sim/gripper_command", self._on_gripper, cq),
            self.node.create_subscription(TrialStatus, "trial/status", self._on_trial, common.qos(common.LATCHED)),
        ]
        self.trial_id = 0
        self.trial_state = "IDLE"
        self.scored_trial = 0
        self.rejected = 0
        self.last_rejection = ""
        self.render_error = ""
        self.render_time = LatencyMeter()
        self.physics_rate = RateMeter()
        self._dt = common.period(p["physics_rate_hz"])
        self.timers = [
            self.node.create_timer(self._dt, self._physics),
            self.node.create_timer(common.period(p["camera_rate_hz"]), self._camera),
            self.node.create_timer(common.period(p["joint_state_rate_hz"]), self._joint_states),
        ]
        self.diagnostics = common.DiagnosticsPublisher(self.node, self._reports, hardware_id=f"mujoco:{p['task']}")
        self.node.get_logger().info(f"simulated {p['task']} (seed {p['seed']}), camera at {p['camera_rate_hz']} Hz")

    # ------------------------------------------------------------------ commands in
    def _on_joints(self, msg) -> None:
        try:
            names, positions, duration = trajectory_target(msg)
            if sorted(names) != sorted(self.names):
                raise InvalidInputError(f"joint command names {names}; the simulated arm has {self.names}")
            q = [float(positions[names.index(n)]) for n in self.names]
            self.arm.command_joints(q, max(duration, self._dt))
        except NoraError as exc:  # the arm keeps its previous target; say why
            self.rejected += 1
            self.last_rejection = str(exc)
            self.node.get_logger().warning(f"joint command rejected: {exc}", throttle_duration_sec=2.0)

    def _on_gripper(self, msg) -> None:
        try:
            self.arm.command_gripper(float(msg.data))
        except NoraError as exc:
            self.rejected += 1
            self.last_rejection = str(exc)

    def _on_trial(self, msg) -> None:
        state, trial_id = trial_state_name(msg), int(msg.trial_id)
        if state == "RESETTING" and (trial_id != self.trial_id or self.trial_state != "RESETTING"):
            self.world.reset(seed=self.params["seed"] + trial_id)
            self.node.get_logger().info(f"trial {trial_id}: world reset (seed {self.params['seed'] + trial_id})")
        self.trial_id, self.trial_state = trial_id, state
        if state == "AWAITING_SCORE":
            self._auto_score()

    def _auto_score(self) -> None:
        if not self.params["auto_score"] or self.scored_trial == self.trial_id:
            return
        outcome = self.world.success()
        if outcome.success or self.trial_state == "AWAITING_SCORE":
            self.scored_trial = self.trial_id
            verdict = "success" if outcome.success else "failure"
            self.score_pub.publish(String(data=f"{verdict} sim check: {outcome.reason}"))
            self.node.get_logger().info(f"trial {self.trial_id} scored by the sim check: {verdict} ({outcome.reason})")

    # ------------------------------------------------------------------ timers
    def _physics(self) -> None:
        try:
            self.world.step(self._dt)
        except NoraError as exc:
            self.node.get_logger().error(str(exc))
            self.world.reset()
        self.physics_rate.tick(common.now_seconds(self.node))
        if self.trial_state == "RUNNING":
            self._auto_score()  # ends the trial as soon as the task succeeds

    def _camera(self) -> None:
        now = common.now_seconds(self.node)
        t0 = time.perf_counter()
        try:
            image = self.world.render()
        except NoraError as exc:  # no GL backend: say how to fix it, keep the physics running
            self.render_error = str(exc)
            self.node.get_logger().error(f"cannot render the camera: {exc}", throttle_duration_sec=10.0)
            return
        self.render_time.add(time.perf_counter() - t0)
        frame_id = self.params["frame_id"]
        # Ground truth first: the scripted expert pairs it with the next image it receives.
        self.truth_pub.publish(String(data=ground_truth_to_json(self.world.ground_truth(), now)))
        self.image_pub.publish(array_to_image(image, "rgb8", Image, now, frame_id))
        self.info_pub.publish(camera_info(CameraInfo, image.shape[0], image.shape[1], now, frame_id))

    def _joint_states(self) -> None:
        fingers = self.world.finger_positions()
        positions = list(self.world.arm_joints()) + [float(fingers[0]), float(fingers[-1])]
        velocities = list(self.world.arm_velocities()) + [0.0, 0.0]
        self.joint_pub.publish(joint_state_msg(JointState, self.names + list(FINGERS), positions,
                                               common.now_seconds(self.node), velocities))

    def _apply(self, changes: dict) -> None:
        if "auto_score" in changes:
            self.params["auto_score"] = changes["auto_score"]

    def _reports(self, now: float) -> list[DiagnosticReport]:
        rate = self.physics_rate.rate(now)
        parts = []
        if rate < 0.8 * self.params["physics_rate_hz"]:
            parts.append((Level.WARN, f"physics at {rate:.1f} Hz of {self.params['physics_rate_hz']} Hz: slower "
                                      "than real time"))
        if self.last_rejection:
            parts.append((Level.WARN, f"{self.rejected} commands rejected, last: {self.last_rejection}"))
        if self.render_error:
            parts.append((Level.ERROR, self.render_error))
        return [DiagnosticReport.worst(common.report_name(self.node, "sim"), parts, {
            "task": self.params["task"], "trial_id": self.trial_id, "trial_state": self.trial_state,
            "sim_time_s": self.world.time, "physics_rate_hz": rate, "render_median_s": self.render_time.median()})]

    def shutdown(self) -> None:
        for t in self.timers:
            t.cancel()
        self.world.close()


def main(args=None) -> int:
    return common.run(SimNode, args)
