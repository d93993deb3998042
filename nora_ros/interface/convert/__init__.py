"""Conversions between ROS 2 messages and the core's types, without importing ROS.

One module per family (:mod:`.stamps`, :mod:`.images`, :mod:`.motion`, :mod:`.status`); this
face re-exports them, so a node writes ``from nora_ros.interface.convert import command_to_msg``.

The nodes in :mod:`nora_ros.nodes` are thin shells; what they compute lives here, where it is
tested without a ROS installation (DESIGN.md section 2). Every function that builds a message
takes the message *class* as an argument (``sensor_msgs.msg.Image`` in a node, a plain stand-in
in a test), and every function that reads one only touches its fields (duck typing). Values
are written with the Python types rosidl's generated setters accept (``float`` for float64,
``int`` for integers, ``array.array`` for numeric arrays), so the same code works on real
messages.

Bad input raises :class:`nora_ros.errors.InvalidInputError` naming the problem: an image in an
unsupported encoding, a ``step`` or data size that does not match, a non-finite stamp, a joint
missing from a ``JointState``. Nothing is silently padded, cropped or zeroed.
"""

from nora_ros.interface.convert.images import (
    IMAGE_CHANNELS,
    array_to_image,
    camera_info,
    compressed_to_frame,
    frame_to_compressed,
    frame_to_image,
    image_to_array,
    image_to_frame,
)
from nora_ros.interface.convert.motion import (
    chunk_from_msg,
    chunk_to_msg,
    command_from_msg,
    command_to_msg,
    joint_positions,
    joint_state_msg,
    joint_trajectory_msg,
    trajectory_target,
)
from nora_ros.interface.convert.stamps import fill_header, fill_stamp, seconds_to_stamp, split_seconds, stamp_to_seconds
from nora_ros.interface.convert.status import (
    diagnostics_to_msg,
    ground_truth_from_json,
    ground_truth_to_json,
    safety_status_to_msg,
    score_value_constant,
    trial_result_to_msg,
    trial_state_name,
    trial_state_value,
    trial_status_to_msg,
)

__all__ = [
    "IMAGE_CHANNELS",
    "array_to_image",
    "camera_info",
    "chunk_from_msg",
    "chunk_to_msg",
    "command_from_msg",
    "command_to_msg",
    "compressed_to_frame",
    "diagnostics_to_msg",
    "fill_header",
    "fill_stamp",
    "frame_to_compressed",
    "frame_to_image",
    "ground_truth_from_json",
    "ground_truth_to_json",
    "image_to_array",
    "image_to_frame",
    "joint_positions",
    "joint_state_msg",
    "joint_trajectory_msg",
    "safety_status_to_msg",
    "score_value_constant",
    "seconds_to_stamp",
    "split_seconds",
    "stamp_to_seconds",
    "trajectory_target",
    "trial_result_to_msg",
    "trial_state_name",
    "trial_state_value",
    "trial_status_to_msg",
]
