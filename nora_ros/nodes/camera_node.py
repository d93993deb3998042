"""camera_node: frames from an OpenCV device, a video file or an image folder on camera/image_raw.

A timer at ``fps`` reads the next frame from the source (:mod:`nora_ros.camera.sources`: a
dropped device is reopened every ``reconnect_interval`` s without blocking the timer) and
publishes it as bgr8 with a CameraInfo, stamped with the node's clock at capture. Sensor-data
QoS. /diagnostics reports the rate, drops and reconnects.

Topics: camera/image_raw (sensor_msgs/Image), camera/camera_info (sensor_msgs/CameraInfo), and with
jpeg_quality > 0 camera/image_raw/compressed (sensor_msgs/CompressedImage, JPEG) for a policy node
on another computer.
"""

from __future__ import annotations

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from nora_ros.camera.sources import open_source
from nora_ros.diagnostics import DiagnosticReport, Level, RateMeter, rate_check
from nora_ros.interface.convert import camera_info, frame_to_compressed, frame_to_image
from nora_ros.interface.node_specs import CAMERA_PARAMS
from nora_ros.nodes import common


class CameraNode:
    """The shell: one timer, two publishers; the source does the work."""

    def __init__(self, node=None):
        self.node = node or Node("camera_node")
        self.params = common.declare_parameters(self.node, CAMERA_PARAMS)
        common.on_set_parameters(self.node, CAMERA_PARAMS, self._apply)
        p = self.params
        self.source = open_source(p["source"], p["frame_id"], loop=p["loop"], width=p["width"], height=p["height"],
                                  fps=p["fps"], reconnect_interval=p["reconnect_interval"])
        self.image_pub = self.node.create_publisher(Image, "camera/image_raw", common.qos(common.SENSOR))
        self.compressed_pub = None
        if p["jpeg_quality"] > 0:
            self.compressed_pub = self.node.create_publisher(CompressedImage, "camera/image_raw/compressed",
                                                             common.qos(common.SENSOR))
        self.info_pub = self.node.create_publisher(CameraInfo, "camera/camera_info", common.qos(common.SENSOR))
        self.rate = RateMeter()
        self.timer = self.node.create_timer(common.period(p["fps"]), self._capture)
        self.diagnostics = common.DiagnosticsPublisher(self.node, self._reports, hardware_id=str(p["source"]))
        self.node.get_logger().info(f"camera source {p['source']} at {p['fps']} Hz")

    def _apply(self, changes: dict) -> None:
        if "reconnect_interval" in changes and hasattr(self.source, "reconnect_interval"):
            self.source.reconnect_interval = changes["reconnect_interval"]

    def _capture(self) -> None:
        now = common.now_seconds(self.node)
        frame = self.source.read(now)
        if frame is None:
            return  # the reason is in source.health, reported on /diagnostics
        self.rate.tick(now)
        self.image_pub.publish(frame_to_image(frame, Image))
        if self.compressed_pub is not None:
            self.compressed_pub.publish(frame_to_compressed(frame, CompressedImage, self.params["jpeg_quality"]))
        h, w = frame.image.shape[:2]
        self.info_pub.publish(camera_info(CameraInfo, h, w, frame.stamp, frame.frame_id))

    def _reports(self, now: float) -> list[DiagnosticReport]:
        health = self.source.health
        parts = [rate_check("frames", self.rate, now, self.params["fps"], stale_after=2.0)]
        if health.last_error:
            parts.append((Level.ERROR if not health.connected else Level.WARN, health.last_error))
        if health.finished:
            parts.append((Level.WARN, "source finished (loop: false)"))
        return [DiagnosticReport.worst(common.report_name(self.node, "camera"), parts, {
            "source": self.params["source"], "rate_hz": self.rate.rate(now), "frames": health.frames,
            "failures": health.failures, "reconnects": health.reconnects, "connected": health.connected})]

    def shutdown(self) -> None:
        self.source.close()


def main(args=None) -> int:
    return common.run(CameraNode, args)
