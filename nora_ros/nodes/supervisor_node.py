"""supervisor_node: instructions and scores in, trial status and results out.

Wraps :class:`nora_ros.trials.supervisor.TrialSupervisor` (the trial state machine and the JSONL
results file) through :class:`nora_ros.trials.inputs.SupervisorInputs`. Every status
event goes out on ``trial/status`` (latched: a late node gets the current state) with the
start pose; every finished trial on ``trial/result`` after it was written to the results file.
A rejected instruction or score is logged and said on ``trial/status`` (the reason field).

Subscribes: instruction, trial/score, trial/fault (std_msgs/String), safety/status
(nora_ros/SafetyStatus), cmd (nora_ros/EndEffectorCommand: steps), action_chunk
(nora_ros/ActionChunk: which model ran).
Serves: trial/start (nora_ros/StartTrial: a trial with its task and model, answered; what the
console and evaluation plans use), trial/stop (std_srvs/Trigger: end the rollout for scoring).
Publishes: trial/status (nora_ros/TrialStatus), trial/result (nora_ros/TrialResult), /diagnostics.
"""

from __future__ import annotations

import dataclasses

from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import Trigger

from nora_ros.diagnostics import DiagnosticReport, Level
from nora_ros.interface.convert import trial_result_to_msg, trial_status_to_msg
from nora_ros.interface.node_specs import supervisor_params
from nora_ros.interface.params import values_for
from nora_ros.msg import ActionChunk, EndEffectorCommand, SafetyStatus, TrialResult, TrialStatus
from nora_ros.nodes import common
from nora_ros.srv import StartTrial
from nora_ros.trials.inputs import SupervisorInputs
from nora_ros.trials.results_store import ResultsStore, config_digest
from nora_ros.trials.state import RunInfo, SupervisorConfig
from nora_ros.trials.supervisor import TrialSupervisor


class SupervisorNode:
    def __init__(self, node=None):
        self.node = node or Node("supervisor_node")
        self.specs = supervisor_params()
        self.params = p = common.declare_parameters(self.node, self.specs)
        names = set(SupervisorConfig.__dataclass_fields__)
        config = SupervisorConfig(**values_for([s for s in self.specs if s.name in names], p))
        run_info = RunInfo(model_id=p["model_id"], checkpoint=p["checkpoint"] or p["model_id"],
                           config_digest=config_digest(config.to_mapping()))
        self.store = ResultsStore(p["results_file"])
        self.supervisor = TrialSupervisor(config, run_info=run_info, store=self.store)
        self.inputs = SupervisorInputs(self.supervisor, safety_timeout=p["safety_timeout_s"],
                                       policy_timeout=p["policy_timeout_s"])
        common.on_set_parameters(self.node, self.specs, self._apply)

        self.status_pub = self.node.create_publisher(TrialStatus, "trial/status", common.qos(common.LATCHED))
        self.result_pub = self.node.create_publisher(TrialResult, "trial/result", common.qos(common.EVENTS))
        self.supervisor.add_listener(self._publish_event)
        cq = common.qos(common.COMMAND)
        # Instructions: reliable but volatile on purpose: a latched instruction would start a trial again
        # whenever this node restarts, and a volatile subscription accepts every publisher's QoS.
        self.subs = [
            self.node.create_subscription(String, "instruction", self._on_instruction, cq),
            self.node.create_subscription(String, "trial/score", self._on_score, cq),
            self.node.create_subscription(String, "trial/fault", self._on_fault, cq),
            self.node.create_subscription(SafetyStatus, "safety/status", self._on_safety, common.qos(common.LATCHED)),
            self.node.create_subscription(EndEffectorCommand, "cmd", self._on_cmd, cq),
            self.node.create_subscription(ActionChunk, "action_chunk", self._on_chunk, cq),
        ]
        self.start_srv = self.node.create_service(StartTrial, "trial/start", self._on_start)
        self.stop_srv = self.node.create_service(Trigger, "trial/stop", self._on_stop)
        self.last_rejection = ""
        self.last_fault = ""
        self.timer = self.node.create_timer(common.period(p["tick_rate_hz"]), self._tick)
        self.diagnostics = common.DiagnosticsPublisher(self.node, self._reports)
        # The initial state, latched for nodes that start later.
        self._publish_status(now=common.now_seconds(self.node), reason="supervisor started")
        self.node.get_logger().info(f"supervisor ready; results in {p['results_file']}")

    # ------------------------------------------------------------------ inputs
    def _now(self) -> float:
        return common.now_seconds(self.node)

    def _on_instruction(self, msg) -> None:
        self.node.get_logger().info(f"instruction: {msg.data!r}")
        self._rejected(self.inputs.instruction(msg.data, self._now()))

    def _on_score(self, msg) -> None:
        self.node.get_logger().info(f"score: {msg.data!r}")
        self._rejected(self.inputs.score(msg.data, self._now()))

    def _on_fault(self, msg) -> None:
        self.last_fault = msg.data
        self._rejected(self.inputs.fault(msg.data, self._now()))

    def _on_safety(self, msg) -> None:
        self.inputs.safety(estopped=bool(msg.estopped), estop_reason=str(msg.estop_reason),
                           at_start=bool(msg.at_start), start_trial_id=int(msg.start_trial_id),
                           limits=list(zip(msg.limits, msg.details, strict=False)), now=self._now())

    def _on_cmd(self, msg) -> None:
        self.inputs.command(int(msg.chunk_id), int(msg.index), self._now())

    def _on_chunk(self, msg) -> None:
        self.inputs.chunk(str(msg.model_id), self._now())

    def _on_start(self, request, response):
        what = f" ({request.task or request.instruction!r}, model {request.model_id or '-'})"
        self.node.get_logger().info(f"trial/start: {request.instruction!r}{what}")
        tid, reason = self.inputs.start_trial(request.instruction, self._now(), task=request.task,
                                              model_id=request.model_id, checkpoint=request.checkpoint,
                                              served_model_id=request.served_model_id)
        self._rejected(reason)
        response.success, response.trial_id = not reason, tid
        response.message = reason or f"trial {tid} started"
        return response

    def _on_stop(self, request, response):
        reason = self.inputs.stop(self._now(), "operator stop")
        self._rejected(reason)
        response.success, response.message = not reason, reason or f"trial {self.supervisor.trial_id} stopped: score it"
        return response

    def _tick(self) -> None:
        self.inputs.tick(self._now())

    def _rejected(self, reason: str) -> None:
        if reason:
            self.last_rejection = reason
            self.node.get_logger().warning(reason)
            self._publish_status(self._now(), reason)

    def _apply(self, changes: dict) -> None:
        names = set(type(self.supervisor.config).__dataclass_fields__)
        fields = {k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in changes.items() if k in names}
        if fields:
            self.supervisor.config = dataclasses.replace(self.supervisor.config, **fields)  # validates

    # ------------------------------------------------------------------ outputs
    def _publish_status(self, now: float, reason: str) -> None:
        sup = self.supervisor
        self.status_pub.publish(trial_status_to_msg(
            TrialStatus, stamp=max(now, 0.0), trial_id=sup.trial_id, instruction=sup.instruction,
            state_name=sup.state.value, reason=reason, steps=sup.steps, start_pose=sup.config.start_pose))

    def _publish_event(self, event) -> None:
        self.status_pub.publish(trial_status_to_msg(
            TrialStatus, stamp=max(event.stamp, 0.0), trial_id=event.trial_id, instruction=event.instruction,
            state_name=event.state.value, reason=event.reason, steps=event.steps,
            start_pose=self.supervisor.config.start_pose))
        self.node.get_logger().info(f"trial {event.trial_id}: {event.state.value} ({event.reason})")
        r = event.result
        if r is not None:
            self.result_pub.publish(trial_result_to_msg(
                TrialResult, trial_id=r.trial_id, task=r.task, instruction=r.instruction, model_id=r.model_id,
                score_name=r.score.kind.value, score_value=r.score.value or 0.0, note=r.score.note,
                start_time=max(r.start_time, 0.0), end_time=max(r.end_time, r.start_time, 0.0), steps=r.steps,
                duration=r.duration_s, safety_events=r.safety_events, recording_path=r.recording or "",
                results_file=str(self.params["results_file"])))

    def _reports(self, now: float) -> list[DiagnosticReport]:
        sup = self.supervisor
        parts = []
        if sup.estopped:
            parts.append((Level.ERROR, "e-stop latched (reset it at the safety node)"))
        if self.last_rejection:
            parts.append((Level.WARN, self.last_rejection))
        return [DiagnosticReport.worst(common.report_name(self.node, "supervisor"), parts, {
            "trial_id": sup.trial_id, "state": sup.state.value, "instruction": sup.instruction or "-",
            "steps": sup.steps, "queued": len(sup.queued), "results_file": self.params["results_file"],
            "last_fault": self.last_fault or "-"})]

    def shutdown(self) -> None:
        """Abort a trial in progress (recorded as such in the results file)."""
        sup = self.supervisor
        if sup.state.value in ("RESETTING", "RUNNING", "AWAITING_SCORE"):
            self.inputs.abort("supervisor shut down", self._now())


def main(args=None) -> int:
    return common.run(SupervisorNode, args)
