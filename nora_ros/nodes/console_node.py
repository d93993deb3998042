"""console_node: the operator console on the robot, over the topics and services of DESIGN.md
section 5 only, so the safety node stays the only way to the motors.

The page and its server are the ROS-free :mod:`nora_ros.console` (aiohttp, in a thread with its
own event loop: it must not block the executor, and the executor must not delay the page's
e-stop). Callbacks store what they receive in :class:`~nora_ros.console.topic_port.TopicConsolePort`;
the page's commands come back here as a publish or an asynchronous service call.

Subscribes: trial/status (nora_ros/TrialStatus), safety/status (nora_ros/SafetyStatus),
action_chunk (nora_ros/ActionChunk: latency, rate), camera/image_raw (sensor_msgs/Image).
Publishes: trial/score (std_msgs/String).
Calls: trial/start (nora_ros/StartTrial), trial/stop (std_srvs/Trigger), policy/select_model
(nora_ros/SelectModel; evaluation plans), safety/estop, safety/reset (std_srvs/Trigger),
safety/enable (std_srvs/SetBool).
"""

from __future__ import annotations

import threading

from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from nora_ros.console.security import AccessPolicy
from nora_ros.console.server import ServerHandle, start_server
from nora_ros.console.topic_port import TopicConsolePort, TrialSnapshot
from nora_ros.interface.convert import image_to_array, trial_state_name
from nora_ros.interface.node_specs import CONSOLE_PARAMS
from nora_ros.msg import ActionChunk, SafetyStatus, TrialStatus
from nora_ros.nodes import common
from nora_ros.srv import SelectModel, StartTrial
from nora_ros.trials.plan import load_plan


class ConsoleNode:
    """The shell: subscriptions feed the port; the port's actions publish and call services."""

    def __init__(self, node=None):
        self.node = node or Node("console_node")
        self.params = p = common.declare_parameters(self.node, CONSOLE_PARAMS)
        cq = common.qos(common.COMMAND)
        self.score_pub = self.node.create_publisher(String, "trial/score", cq)
        self.start_client = self.node.create_client(StartTrial, "trial/start")
        self.stop_client = self.node.create_client(Trigger, "trial/stop")
        self.select_client = self.node.create_client(SelectModel, "policy/select_model")
        self.estop_client = self.node.create_client(Trigger, "safety/estop")
        self.reset_client = self.node.create_client(Trigger, "safety/reset")
        self.enable_client = self.node.create_client(SetBool, "safety/enable")
        plan = load_plan(p["eval_plan"]) if p["eval_plan"] else None
        self.port = TopicConsolePort(self, results_file=p["results_file"], model_id=p["model_id"],
                                     presets=tuple(p["presets"]), plan=plan, pending_timeout=p["start_timeout"])
        if plan is not None:
            self.node.get_logger().info(f"evaluation plan {plan.name!r}: {plan.total} trials, {len(plan.models)} "
                                        f"models, order {plan.order}{', blind' if plan.blind else ''}")
        latched = common.qos(common.LATCHED)
        self.subs = [
            self.node.create_subscription(TrialStatus, "trial/status", self._on_trial, latched),
            self.node.create_subscription(SafetyStatus, "safety/status", self._on_safety, latched),
            self.node.create_subscription(ActionChunk, "action_chunk", self._on_chunk, cq),
            self.node.create_subscription(Image, "camera/image_raw", self._on_image, common.qos(common.SENSOR)),
        ]
        self.policy = AccessPolicy(host=p["host"], token=p["token"] or None, public_view=p["public_view"])
        self.server: ServerHandle = start_server(self.port, self.policy, p["port"], print_fn=self.node.get_logger().info)

    # ------------------------------------------------------------------ callbacks: store only
    def _on_trial(self, msg) -> None:
        self.port.on_trial_status(TrialSnapshot(trial_id=int(msg.trial_id), instruction=str(msg.instruction),
                                                state=trial_state_name(msg), reason=str(msg.reason),
                                                steps=int(msg.steps)))

    def _on_safety(self, msg) -> None:
        self.port.on_safety_status(enabled=bool(msg.enabled), estopped=bool(msg.estopped),
                                   estop_reason=str(msg.estop_reason), limits=tuple(msg.limits),
                                   holding=bool(msg.holding))

    def _on_chunk(self, msg) -> None:
        self.port.on_chunk(float(msg.latency))

    def _on_image(self, msg) -> None:
        image = image_to_array(msg)
        self.port.on_image(image[..., ::-1] if msg.encoding == "bgr8" else image)

    # ------------------------------------------------------------------ actions for the port
    def start_trial(self, instruction, task, model_id, checkpoint, served_model_id, answer) -> None:
        request = StartTrial.Request(instruction=instruction, task=task, model_id=model_id, checkpoint=checkpoint,
                                     served_model_id=served_model_id)
        self._call(self.start_client, request, answer, lambda r: r.trial_id, "the supervisor's trial/start")

    def select_model(self, model_id, model, answer) -> None:
        self._call(self.select_client, SelectModel.Request(model_id=model_id, model=model), answer,
                   lambda r: r.served_model_id, "the policy node's policy/select_model")

    def stop_trial(self, answer) -> None:
        self._call(self.stop_client, Trigger.Request(), answer, lambda r: None, "the supervisor's trial/stop")

    def _call(self, client, request, answer, value, what: str) -> None:
        """An asynchronous call whose reply reaches ``answer(success, message, value)``. A service not
        yet discovered is waited for up to ``service_wait`` seconds in a thread of its own (found on
        Jazzy under SROS2: the first Start came before the secured policy node's service was
        discovered), then answered as unavailable (a call to it would wait for ever)."""

        def done(future) -> None:
            response = future.result()
            if response is None:
                answer(False, f"{what} call failed", None)
            else:
                answer(bool(response.success), str(response.message), value(response))

        def call() -> None:
            if not client.service_is_ready() and not client.wait_for_service(timeout_sec=self.params["service_wait"]):
                answer(False, f"{what} service is not available after {self.params['service_wait']:g} s "
                              "(is that node running?)", None)
                return
            client.call_async(request).add_done_callback(done)

        if client.service_is_ready():
            call()
        else:
            threading.Thread(target=call, name="console-wait-service", daemon=True).start()

    def publish_score(self, text: str) -> None:
        self.score_pub.publish(String(data=text))

    def call_estop(self) -> None:
        self.estop_client.call_async(Trigger.Request())

    def call_reset(self) -> None:
        self.reset_client.call_async(Trigger.Request())

    def call_enable(self, enabled: bool) -> None:
        self.enable_client.call_async(SetBool.Request(data=bool(enabled)))

    def shutdown(self) -> None:
        self.server.close()


def main(args=None) -> int:
    return common.run(ConsoleNode, args)
