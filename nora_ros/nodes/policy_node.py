"""policy_node: camera frames + trial status in, end-effector commands out.

Callbacks only store the latest image and trial status; a control timer at
``control_rate_hz`` runs :class:`nora_ros.control.policy_loop.PolicyLoop` (inference in a worker
thread that the timer polls, never waits for) and publishes ``cmd`` while the trial is
RUNNING, zero velocity when no valid action is due. Each new chunk goes out on
``action_chunk``; a policy that fails ``max_policy_failures`` times in a row ends the trial
through ``trial/fault``. The model is loaded at start (minutes for NORA on a GPU); the
node serves nothing until it is ready.

Several models (an evaluation plan): the service ``policy/select_model`` (nora_ros/SelectModel)
switches model between trials, answered once the model serves; models stay loaded while memory
allows (:class:`nora_ros.policy.model_cache.ModelCache`). It runs in its own thread (a load takes
long; the control timer and callbacks stay serial in the node's default group) and is refused
while a trial runs. During a switch, and after a failed load left no model, a running trial is
ended through ``trial/fault`` with the reason instead of running another model.

Serves: policy/select_model (nora_ros/SelectModel).
Subscribes: camera/image_raw (sensor_msgs/Image, sensor QoS; or camera/image_raw/compressed
with compressed_image), trial/status (nora_ros/TrialStatus, latched).
Publishes: cmd (nora_ros/EndEffectorCommand), action_chunk (nora_ros/ActionChunk),
trial/fault (std_msgs/String), /diagnostics.

Several arms, one GPU: with ``robots: [left, right]`` the node serves each robot namespace with
the same topics under ``<robot>/`` (``left/camera/image_raw``, ``left/trial/status`` in,
``left/cmd``, ``left/action_chunk``, ``left/trial/fault`` out), one model loaded once: each robot
has its own :class:`PolicyLoop` (scheduler, trial, chunks), and their observations that are
ready together run as one batch (:class:`nora_ros.policy.batching.BatchingInference`). Each arm
keeps its own safety node.
"""

from __future__ import annotations

import dataclasses
import threading

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from nora_ros.control.policy_loop import LoopConfig, PolicyLoop, check_mode
from nora_ros.diagnostics import DiagnosticReport, Level, RateMeter, rate_check
from nora_ros.errors import NoraError
from nora_ros.interface.convert import (
    chunk_to_msg,
    command_to_msg,
    compressed_to_frame,
    ground_truth_from_json,
    image_to_frame,
    trial_state_name,
)
from nora_ros.interface.node_specs import check_robots, policy_config, policy_params
from nora_ros.interface.params import values_for
from nora_ros.msg import ActionChunk, EndEffectorCommand, TrialStatus
from nora_ros.nodes import common
from nora_ros.policy.batching import BatchingInference
from nora_ros.policy.factory import make_policy
from nora_ros.policy.model_cache import ModelCache, device_memory, nora_bytes
from nora_ros.policy.nora.config import AUTO_VARIANT
from nora_ros.policy.worker import ThreadedInference
from nora_ros.srv import SelectModel


class RobotChannel:
    """One robot's topics and :class:`PolicyLoop` inside the policy node (``prefix`` ``""`` for the
    node's own namespace, ``"left/"`` for robot ``left``): callbacks store, :meth:`tick` acts."""

    def __init__(self, shell: PolicyNode, name: str, worker, loop_config: LoopConfig):
        node, p = shell.node, shell.params
        self.shell = shell
        self.name = name
        self.prefix = f"{name}/" if name else ""
        self.worker = worker
        self.loop = PolicyLoop(worker, loop_config)
        t = self.prefix
        self.cmd_pub = node.create_publisher(EndEffectorCommand, t + "cmd", common.qos(common.COMMAND))
        self.chunk_pub = node.create_publisher(ActionChunk, t + "action_chunk", common.qos(common.COMMAND))
        self.fault_pub = node.create_publisher(String, t + "trial/fault", common.qos(common.COMMAND))
        if p["compressed_image"]:
            self.image_sub = node.create_subscription(CompressedImage, t + "camera/image_raw/compressed",
                                                      self._on_compressed, common.qos(common.SENSOR))
        else:
            self.image_sub = node.create_subscription(Image, t + "camera/image_raw", self._on_image,
                                                      common.qos(common.SENSOR))
        self.trial_sub = node.create_subscription(TrialStatus, t + "trial/status", self._on_trial,
                                                  common.qos(common.LATCHED))
        self._truth: dict | None = None
        self.truth_sub = None
        self._watch_truth(shell.policy)
        # Each arm has its own base frame: the robot's name as Interbotix's robot_name prefix
        # (base_frame wx250s/base_link serves robot left as left/base_link).
        self.frame_id = f"{name}/{p['base_frame'].rsplit('/', 1)[-1]}" if name else p["base_frame"]
        self.frames = RateMeter()
        self.commands = RateMeter()
        self.image_errors = 0
        self.last_image_error = ""
        self.last_hold_reason = ""
        self._refused_trial = 0

    def _watch_truth(self, policy) -> None:
        if policy.needs_ground_truth and self.truth_sub is None:
            # A scripted expert sees what a camera cannot: the sim node's ground truth.
            self.truth_sub = self.shell.node.create_subscription(String, self.prefix + "sim/ground_truth",
                                                                 self._on_truth, common.qos(common.COMMAND))

    def set_worker(self, worker) -> None:
        """Serve another model (between trials: the loop holds no chunk of the old one)."""
        self._watch_truth(worker.policy)
        self.worker = worker
        self.loop.worker = worker

    def refuse(self, reason: str) -> None:
        """No model can act now: a running trial ends as a fault (once), nothing is published."""
        if self.loop.running and self._refused_trial != self.loop.trial_id:
            self._refused_trial = self.loop.trial_id
            self.shell.node.get_logger().error(f"{self.prefix}{reason}")
            self.fault_pub.publish(String(data=reason))

    # ------------------------------------------------------------------ callbacks: store only
    def _on_image(self, msg) -> None:
        self._store(image_to_frame, msg)

    def _on_compressed(self, msg) -> None:
        self._store(compressed_to_frame, msg)

    def _store(self, convert, msg) -> None:
        node = self.shell.node
        try:
            frame = convert(msg)
        except NoraError as exc:  # wrong encoding, bad step: this frame is not used; say why
            self.image_errors += 1
            self.last_image_error = str(exc)
            node.get_logger().warning(f"{self.prefix}camera image rejected: {exc}", throttle_duration_sec=5.0)
            return
        if self._truth is not None:
            frame = dataclasses.replace(frame, extras=self._truth)
        self.frames.tick(common.now_seconds(node))
        self.loop.on_frame(frame)

    def _on_truth(self, msg) -> None:
        try:
            _, self._truth = ground_truth_from_json(msg.data)
        except NoraError as exc:
            self.shell.node.get_logger().error(str(exc), throttle_duration_sec=5.0)

    def _on_trial(self, msg) -> None:
        node = self.shell.node
        try:
            state = trial_state_name(msg)
        except NoraError as exc:
            node.get_logger().error(f"{self.prefix}trial status ignored: {exc}")
            return
        self.loop.on_trial(int(msg.trial_id), state, str(msg.instruction), common.now_seconds(node))

    # ------------------------------------------------------------------ the control tick
    def tick(self, now: float) -> None:
        node = self.shell.node
        try:
            out = self.loop.tick(now)
        except Exception as exc:  # noqa: BLE001 - publish nothing (the safety node holds) and say why
            node.get_logger().error(f"{self.prefix}control tick failed: {type(exc).__name__}: {exc}",
                                    throttle_duration_sec=2.0)
            self.loop.last_error = str(exc)
            return
        frame_id = self.frame_id
        if out.chunk is not None:
            self.chunk_pub.publish(chunk_to_msg(out.chunk, ActionChunk, frame_id, out.latency))
        if out.fault:
            node.get_logger().error(f"{self.prefix}{out.fault}")
            self.fault_pub.publish(String(data=out.fault))
        if out.command is not None:
            self.last_hold_reason = out.hold_reason
            self.commands.tick(now)
            self.cmd_pub.publish(command_to_msg(out.command, EndEffectorCommand, frame_id))

    def report(self, now: float) -> DiagnosticReport:
        loop, node = self.loop, self.shell.node
        parts = [rate_check("camera frames", self.frames, now, 1.0, stale_after=2.0)]
        if self.last_image_error:
            parts.append((Level.WARN, f"{self.image_errors} images rejected, last: {self.last_image_error}"))
        if loop.running and loop.failures:
            level = Level.ERROR if loop.failures >= loop.config.max_policy_failures else Level.WARN
            parts.append((level, f"{loop.failures} failed inferences in a row: {loop.last_error}"))
        if loop.running:
            parts.append(rate_check("commands", self.commands, now, loop.config.control_rate_hz, stale_after=1.0))
        values = {
            "model": self.shell.policy.model_id, "trial_id": loop.trial_id, "running": loop.running,
            "latency_median_s": loop.latency.median(), "latency_p90_s": loop.latency.p90(),
            "chunks": loop.chunks, "dropped_chunks": loop.scheduler.dropped,
            "execution_mode": loop.config.execution_mode, "skipped_actions": loop.scheduler.skipped,
            "camera_rate_hz": self.frames.rate(now), "cmd_rate_hz": self.commands.rate(now),
            "hold_reason": self.last_hold_reason or "-", "last_error": loop.last_error or "-"}
        batching = self.shell.batching
        if batching is not None:
            values["batch_sizes"] = " ".join(f"{k}:{v}" for k, v in sorted(batching.batch_sizes.items())) or "-"
        part = f"policy {self.name}" if self.name else "policy"
        return DiagnosticReport.worst(common.report_name(node, part), parts, values)


class PolicyNode:
    def __init__(self, node=None):
        self.node = node or Node("policy_node")
        self.specs = policy_params()
        self.params = common.declare_parameters(self.node, self.specs)
        p = self.params
        loop_config = LoopConfig(**values_for([s for s in self.specs if s.name in LoopConfig.__dataclass_fields__], p))
        robots = check_robots(p["robots"])
        log = self.node.get_logger()
        log.info(f"loading policy {p['model']} ...")
        self.config = policy_config(p)
        self.policy = make_policy(self.config)  # blocking on purpose: nothing to serve before the model is ready
        log.info(f"policy {self.policy.model_id} ready (horizon {self.policy.horizon})")
        self.models = ModelCache(self._load, max_loaded=p["max_loaded_models"], margin=p["memory_margin"],
                                 memory=lambda: device_memory(self._device()),
                                 needed=lambda model: nora_bytes(self.config, model))
        self.models.add(p["model"], self.policy)
        self.robot_names = robots
        self.batching: BatchingInference | None = None
        workers = self._workers(self.policy)
        self.robots = [RobotChannel(self, r, w, loop_config) for r, w in zip(robots or ("",), workers, strict=True)]
        if robots:
            log.info(f"serving {len(robots)} robots with one model: {', '.join(robots)}")
        first = self.robots[0]
        self.worker, self.loop = first.worker, first.loop  # the single robot's (tests, tools)
        self._lock = threading.Lock()  # the timer against a model switch in the service's thread
        self._switching = ""
        self._unavailable = ""
        common.on_set_parameters(self.node, self.specs, self._apply)
        self.timer = self.node.create_timer(loop_config.tick_period, self._tick)
        # The select service loads in its own thread; the timer and callbacks stay in the default
        # (mutually exclusive) group, serial as under a single-threaded executor.
        self.executor = MultiThreadedExecutor(num_threads=2)
        self.select_srv = self.node.create_service(SelectModel, "policy/select_model", self._on_select,
                                                   callback_group=MutuallyExclusiveCallbackGroup())
        self.diagnostics = common.DiagnosticsPublisher(self.node, self._reports, hardware_id=self.policy.model_id)

    @property
    def image_errors(self) -> int:
        return sum(r.image_errors for r in self.robots)

    @property
    def last_image_error(self) -> str:
        return next((r.last_image_error for r in self.robots if r.last_image_error), "")

    # ------------------------------------------------------------------ models
    def _workers(self, policy) -> list:
        if self.robot_names:
            self.batching = BatchingInference(policy, self.robot_names, window=self.params["batch_window"])
            return [self.batching.worker(r) for r in self.robot_names]
        return [ThreadedInference(policy)]

    def _load(self, model: str):
        # A plan's checkpoint declares its own variant (the node's variant parameter is its first model's).
        return make_policy(dataclasses.replace(self.config, model=model, variant=AUTO_VARIANT))

    def _device(self) -> str:
        # Where checkpoints load (asked only for a model with weights, so torch is there).
        return self.config.resolved_device()

    def _on_select(self, request, response):
        model = request.model.strip()
        response.success, switch = False, False
        with self._lock:
            busy = [r.name or "this robot" for r in self.robots if r.loop.running]
            if not model:
                response.message = "model is empty: give a checkpoint folder, a hub ID or scripted"
            elif busy:
                response.message = f"a trial is running on {', '.join(busy)}: select a model between trials"
            elif model == self.models.current:
                response.success, response.message = True, f"{model} is already served"
            else:
                self._switching = f"policy node is loading model {request.model_id or model}: the trial cannot run"
                switch = True
        if switch:
            self._switch(model, request.model_id, response)
        response.served_model_id = self.policy.model_id if not self._unavailable else ""
        return response

    def _switch(self, model: str, label: str, response) -> None:
        log = self.node.get_logger()
        log.info(f"switching to model {label or model} ({model}) ...")
        try:
            selected = self.models.select(model)  # long: minutes for NORA on a GPU
            for robot in self.robots:
                check_mode(robot.loop.config, selected.policy)
        except Exception as exc:  # noqa: BLE001 - any load failure: refused with its reason, never a crash
            response.message = f"cannot serve {model}: {type(exc).__name__}: {exc}"
            log.error(response.message)
            with self._lock:
                self._switching = ""
                if self.models.current is None:  # the served model was unloaded to make room
                    self._unavailable = f"no model loaded ({response.message}); select one with policy/select_model"
            return
        with self._lock:
            old_batching, old_workers = self.batching, [r.worker for r in self.robots]
            self.policy = selected.policy
            for robot, worker in zip(self.robots, self._workers(selected.policy), strict=True):
                robot.set_worker(worker)
            self.worker = self.robots[0].worker
            self._switching = self._unavailable = ""
        for worker in old_workers:
            worker.close(timeout=2.0)
        if old_batching is not None:
            old_batching.close(timeout=2.0)
        response.success, response.message = True, selected.message
        log.info(f"serving {self.policy.model_id} as {label or model}: {selected.message}")

    # ------------------------------------------------------------------ the control timer
    def _tick(self) -> None:
        now = common.now_seconds(self.node)
        with self._lock:
            reason = self._switching or self._unavailable
            for robot in self.robots:  # the robots submit in the same tick, so their observations batch together
                if reason:
                    robot.refuse(reason)
                else:
                    robot.tick(now)

    def _apply(self, changes: dict) -> None:
        fields = {k: v for k, v in changes.items() if k in LoopConfig.__dataclass_fields__}
        if fields:
            # validates; new chunk execution applies from the next chunk on (the current is dropped: hold)
            for robot in self.robots:
                robot.loop.reconfigure(dataclasses.replace(robot.loop.config, **fields))

    def _reports(self, now: float) -> list[DiagnosticReport]:
        return [robot.report(now) for robot in self.robots]

    def shutdown(self) -> None:
        """Stop publishing (the safety nodes hold when commands stop) and release the model."""
        self.timer.cancel()
        if self.batching is not None:
            self.batching.close(timeout=2.0)
        else:
            self.worker.close(timeout=2.0)
        self.models.close()


def main(args=None) -> int:
    return common.run(PolicyNode, args)
