"""safety_node: the only node that commands the arm.

Callbacks store the latest ``cmd`` and trial status; a timer at ``safety.tick_period`` runs
:class:`nora_ros.control.safety_loop.SafetyLoop` (the safety filter, start-pose moves, dry run) and
publishes what was actually sent (``cmd_safe``) and why (``safety/status``: every limit that
acted, e-stop, actuation, ``at_start`` for the supervisor). The arm is the Interbotix xs driver
(``arm_backend: interbotix``), a topic pair such as the sim node's (``topic``), or an
in-process kinematic simulation (``kinematic``). Services: ``safety/estop`` and
``safety/reset`` (std_srvs/Trigger; the e-stop is latched), ``safety/enable``
(std_srvs/SetBool; refused with dry_run). Limits (``safety.*``) may be changed live, but only
tightened while a trial runs. On Ctrl-C the arm is told to hold before the node goes down.

Graph guard (``guard.*``, :mod:`nora_ros.safety.graph_guard`): before each tick and each
``cmd`` / ``trial/status`` message the node counts the publishers of what it acts on and the
clients of ``safety/enable`` and ``safety/reset``; an unexpected one latches the e-stop with its
node's name, and ``safety/reset`` is refused while it is still in the graph.
"""

from __future__ import annotations

import time
from collections import deque

from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from nora_ros.control.safety_loop import SafetyLoop
from nora_ros.diagnostics import DiagnosticReport, Level, RateMeter
from nora_ros.errors import NoraError
from nora_ros.interface.convert import command_from_msg, command_to_msg, safety_status_to_msg, trial_state_name
from nora_ros.interface.node_specs import safety_params
from nora_ros.interface.params import values_for
from nora_ros.msg import EndEffectorCommand, SafetyStatus, TrialStatus
from nora_ros.nodes import common
from nora_ros.nodes.ros_graph import RclpyGraph
from nora_ros.nodes.topic_arm import TopicArm
from nora_ros.robot.interbotix import InterbotixArm, InterbotixArmConfig
from nora_ros.robot.kinematics import WidowXModel
from nora_ros.robot.sim_arm import SimArm
from nora_ros.safety import SafeArm, SafetyConfig, SafetyFilter
from nora_ros.safety.graph_guard import GraphGuard, rules_for


def make_arm(node, backend: str, model, params: dict, clock):
    """The arm the parameters name (see the module docstring); nothing moves here."""
    if backend == "interbotix":
        arm = InterbotixArm(node, InterbotixArmConfig(robot_model=params["robot_model"],
                                                      robot_name=params["robot_name"]), clock=clock)
        if not params["dry_run"]:
            # Blocks at start, bounded by driver_timeout: nothing can be served before the driver is up.
            arm.configure(timeout=params["driver_timeout"], duration=params["safety.tick_period"])
        return arm
    if backend == "topic":
        return TopicArm(node, model, joint_states_topic=params["joint_states_topic"],
                        joint_command_topic=params["joint_command_topic"],
                        gripper_command_topic=params["gripper_command_topic"], clock=clock,
                        read_only=params["dry_run"], qos=common.qos(common.COMMAND))

    class _NodeClock:
        def now(self) -> float:
            return clock()

        def sleep_until(self, t: float) -> None:  # never called: the node does not block
            pass

    return SimArm(model, clock=_NodeClock())


class SafetyNode:
    def __init__(self, node=None):
        self.node = node or Node("safety_node")
        self.specs = safety_params()
        self.params = p = common.declare_parameters(self.node, self.specs)
        if not p["robot_name"]:
            p["robot_name"] = p["robot_model"]
        self.frame_id = p["base_frame"] or f"{p['robot_name']}/base_link"
        model = WidowXModel.from_name(p["robot_model"])
        config = SafetyConfig.from_mapping(values_for(self.specs, p, prefix="safety."))
        clock = lambda: common.now_seconds(self.node)  # noqa: E731 - the arms take a callable
        self.arm = make_arm(self.node, p["arm_backend"], model, p, clock)
        self.loop = SafetyLoop(SafeArm(SafetyFilter(config, model), self.arm), dry_run=p["dry_run"],
                               start_duration=p["start_duration"], start_tolerance=p["start_tolerance"])
        common.on_set_parameters(self.node, self.specs, self._apply)

        self.cmd_safe_pub = self.node.create_publisher(EndEffectorCommand, "cmd_safe", common.qos(common.COMMAND))
        self.status_pub = self.node.create_publisher(SafetyStatus, "safety/status", common.qos(common.LATCHED))
        self.fault_pub = self.node.create_publisher(String, "trial/fault", common.qos(common.COMMAND))
        self.cmd_sub = self.node.create_subscription(EndEffectorCommand, "cmd", self._on_cmd,
                                                     common.qos(common.COMMAND))
        self.trial_sub = self.node.create_subscription(TrialStatus, "trial/status", self._on_trial,
                                                       common.qos(common.LATCHED))
        self.srv_estop = self.node.create_service(Trigger, "safety/estop", self._on_estop)
        self.srv_reset = self.node.create_service(Trigger, "safety/reset", self._on_reset)
        self.srv_enable = self.node.create_service(SetBool, "safety/enable", self._on_enable)
        self.commands = RateMeter()
        self.ticks = RateMeter()
        self.last_fault = ""
        self.last_limits = ""
        self.timer = self.node.create_timer(config.tick_period, self._tick)
        self.guard, self.graph = self._make_guard(p), RclpyGraph(self.node)
        self.pending_trial = None
        self.guard_cost_us: deque[float] = deque(maxlen=1000)
        self.diagnostics = common.DiagnosticsPublisher(self.node, self._reports, hardware_id=p["robot_name"])
        mode = "DRY RUN (never moves the arm)" if p["dry_run"] else "actuating"
        self.node.get_logger().info(f"safety node for {p['robot_model']} via {p['arm_backend']}: {mode}")

    def _make_guard(self, p: dict) -> GraphGuard | None:
        """The graph guard's rules for this node's namespace and arm backend (None when off)."""
        if not p["guard.enabled"]:
            self.node.get_logger().warning("graph guard off: foreign publishers on cmd are not detected")
            return None
        ns = self.node.get_namespace()
        fqn = f"{ns.rstrip('/')}/{self.node.get_name()}"
        if p["arm_backend"] == "interbotix":
            arm_topics = [f"/{p['robot_name']}/commands/{t}" for t in ("joint_group", "joint_single", "joint_trajectory")]
        elif p["arm_backend"] == "topic":
            arm_topics = [_absolute(ns, p["joint_command_topic"]), _absolute(ns, p["gripper_command_topic"])]
        else:
            arm_topics = []
        rules = rules_for(ns, fqn, robot_name=p["robot_name"], arm_topics=arm_topics,
                          operator_nodes=p["guard.operator_nodes"])
        return GraphGuard(rules, identify_timeout=p["guard.identify_timeout"])

    def _guard_check(self, now: float, force_full: bool = False) -> bool:
        """Look at the graph; latch the e-stop on a new fault. True when nothing unexpected is there."""
        if self.guard is None:
            return True
        t0 = time.perf_counter()
        check = self.guard.check(self.graph, now, force_full=force_full)
        self.guard_cost_us.append((time.perf_counter() - t0) * 1e6)
        if check.new_fault:
            reason = f"graph guard: {check.fault}"
            self.loop.estop(reason)
            self.last_fault = reason
            self.node.get_logger().error(f"E-STOP latched by the {reason}; the arm holds until safety/reset")
            self.fault_pub.publish(String(data=reason))
        return check.clean

    # ------------------------------------------------------------------ callbacks: store only
    def _on_cmd(self, msg) -> None:
        now = common.now_seconds(self.node)
        self.commands.tick(now)
        # A message that arrives while anything unexpected publishes cmd is not acted on: it may be
        # the intruder's (rclpy does not say which publisher sent it).
        if self._guard_check(now):
            self.loop.on_command(command_from_msg(msg))

    def _on_trial(self, msg) -> None:
        if not self._guard_check(common.now_seconds(self.node)):
            # Latched and sent once: keep it for the first clean tick (a lagging node announcement
            # must not lose a trial), dropped if the guard latches a fault instead.
            self.pending_trial = msg
            return
        self.pending_trial = None
        try:
            state = trial_state_name(msg)
        except NoraError as exc:
            self.node.get_logger().error(f"trial status ignored: {exc}")
            return
        self.loop.on_trial(int(msg.trial_id), state, list(msg.start_pose), common.now_seconds(self.node))

    # ------------------------------------------------------------------ operator services
    def _on_estop(self, request, response):
        self.loop.estop("operator e-stop (safety/estop)")
        self.node.get_logger().warning("E-STOP latched: the arm holds until safety/reset")
        response.success, response.message = True, "e-stop latched; call safety/reset to clear it"
        return response

    def _on_reset(self, request, response):
        if self.guard is not None:
            ok, why = self.guard.reset(self.graph, common.now_seconds(self.node))
            if not ok:
                response.success, response.message = False, f"reset refused by the graph guard: {why}"
                self.node.get_logger().error(response.message)
                return response
        was = self.loop.filter.estopped
        self.loop.reset_estop()
        response.success = True
        response.message = "e-stop cleared; the target re-anchors at the measured pose" if was else "no e-stop was latched"
        self.node.get_logger().info(response.message)
        return response

    def _on_enable(self, request, response):
        # Who called is not visible to a service callback: look at who holds a client now.
        self._guard_check(common.now_seconds(self.node), force_full=True)
        if request.data and self.guard is not None and self.guard.fault:
            response.success, response.message = False, f"actuation stays off: graph guard: {self.guard.fault}"
            return response
        try:
            self.loop.set_enabled(bool(request.data))
        except NoraError as exc:
            response.success, response.message = False, str(exc)
            return response
        response.success = True
        response.message = "actuation on" if request.data else "actuation off (dry run): nothing moves"
        self.node.get_logger().info(response.message)
        return response

    def _apply(self, changes: dict) -> None:
        limits = {k[len("safety."):]: v for k, v in changes.items() if k.startswith("safety.")}
        if limits:
            self.loop.update_limits(limits)
        if "start_duration" in changes:
            self.loop.start_duration = changes["start_duration"]
        if "start_tolerance" in changes:
            self.loop.start_tolerance = changes["start_tolerance"]

    # ------------------------------------------------------------------ the control timer
    def _tick(self) -> None:
        now = common.now_seconds(self.node)
        self.ticks.tick(now)
        if self._guard_check(now) and self.pending_trial is not None:
            self._on_trial(self.pending_trial)
        elif self.guard is not None and self.guard.fault:
            self.pending_trial = None
        try:
            out = self.loop.tick(now)
        except Exception as exc:  # noqa: BLE001 - a bug must stop the arm, not the node that holds it
            reason = f"internal error in the safety tick: {type(exc).__name__}: {exc}"
            self.node.get_logger().error(reason)
            self.loop.estop(reason)
            self.fault_pub.publish(String(data=reason))
            return
        f = self.loop.filter
        limits: list[tuple[str, str]] = []
        ticks = held = 0
        if out.result is not None:
            status = out.result.status
            limits = [(lim.value, d) for lim, d in zip(status.limits, status.details, strict=True)]
            ticks, held = status.tick, status.held_ticks
            self.cmd_safe_pub.publish(command_to_msg(out.result.executed, EndEffectorCommand, self.frame_id))
            if limits:
                self.last_limits = "; ".join(f"{n}: {d}" for n, d in limits)
        self.status_pub.publish(safety_status_to_msg(
            SafetyStatus, stamp=now, frame_id=self.frame_id, enabled=f.enabled, estopped=f.estopped,
            estop_reason=f.estop_reason, holding=out.holding, limits=limits, at_start=out.at_start,
            start_trial_id=out.start_trial_id, ticks=ticks, held_ticks=held))
        if out.fault:
            self.last_fault = out.fault
            self.node.get_logger().error(out.fault)
            self.fault_pub.publish(String(data=out.fault))

    def _reports(self, now: float) -> list[DiagnosticReport]:
        f = self.loop.filter
        parts = []
        if f.estopped:
            parts.append((Level.ERROR, f"e-stop latched: {f.estop_reason}"))
        if self.loop.dry_run:
            parts.append((Level.WARN, "dry run: the arm is never commanded"))
        elif not f.enabled:
            parts.append((Level.WARN, "actuation off"))
        if self.loop.waiting_reason:
            parts.append((Level.WARN, f"waiting to plan the start move: {self.loop.waiting_reason}"))
        try:
            state = self.arm.state()
            age = now - state.stamp
            if age > f.config.max_state_age:
                parts.append((Level.ERROR, f"arm state is {age:.2f} s old"))
        except NoraError as exc:
            parts.append((Level.ERROR, str(exc)))
        guard: dict = {"graph_guard": "off"}
        if self.guard is not None:
            if self.guard.fault:
                parts.append((Level.ERROR, f"graph guard: {self.guard.fault}"))
            costs = sorted(self.guard_cost_us)
            guard = {**self.guard.report(),
                     "graph_check_us_median": round(costs[len(costs) // 2], 1) if costs else 0.0,
                     "graph_check_us_max": round(costs[-1], 1) if costs else 0.0}
        return [DiagnosticReport.worst(common.report_name(self.node, "safety"), parts, {**guard,
            "phase": self.loop.phase.value, "trial_id": self.loop.trial_id, "tick_rate_hz": self.ticks.rate(now),
            "cmd_rate_hz": self.commands.rate(now), "last_limits": self.last_limits or "-",
            "last_fault": self.last_fault or "-", "backend": self.params["arm_backend"]})]

    def shutdown(self) -> None:
        """Stop ticking and leave the arm holding (never in a dry run: it was never commanded)."""
        self.timer.cancel()
        if not self.loop.dry_run:
            try:
                self.arm.hold()
                # Blocks on purpose, once: give the middleware time to deliver the hold before the
                # publisher goes away (the arm would otherwise stop at its last target, one tick ahead).
                time.sleep(0.2)
            except NoraError as exc:
                self.node.get_logger().error(f"could not command a final hold: {exc}")
        self.arm.close()


def _absolute(namespace: str, topic: str) -> str:
    return topic if topic.startswith("/") else f"{namespace.rstrip('/')}/{topic}"


def main(args=None) -> int:
    return common.run(SafetyNode, args)
