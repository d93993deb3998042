"""ROS-free conversions between messages and the core's types (nora_ros.interface.convert).

Message classes are the stand-ins of test/ros_msg_standins.py, built from the real .msg
definitions with rosidl-like typed setters, so a misspelled field or a numpy value where rosidl
wants a float fails here as it would on a robot.
"""

from __future__ import annotations

import array

import numpy as np
import pytest
from ros_msg_standins import MSG

from nora_ros.actions import ActionChunk, EndEffectorCommand, action_to_command
from nora_ros.errors import InvalidInputError
from nora_ros.interface import convert as rc

Image = MSG["sensor_msgs/Image"]
Time = MSG["builtin_interfaces/Time"]


def _rng_image(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


# --------------------------------------------------------------------------- stamps


@pytest.mark.parametrize(
    ("seconds", "sec", "nanosec"),
    [(0.0, 0, 0), (1.5, 1, 500_000_000), (1700000000.123456789, 1700000000, 123456768), (2.9999999999, 3, 0)],
)
def test_seconds_split_into_sec_and_nanosec(seconds, sec, nanosec):
    stamp = rc.seconds_to_stamp(seconds, Time)
    assert (stamp.sec, stamp.nanosec) == (sec, nanosec)
    assert rc.stamp_to_seconds(stamp) == pytest.approx(seconds, abs=1e-6)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.5])
def test_bad_stamps_are_rejected(bad):
    with pytest.raises(InvalidInputError, match="stamp"):
        rc.seconds_to_stamp(bad, Time)


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8"])
@pytest.mark.parametrize("pad", [0, 1, 3, 64])
def test_image_round_trip_every_encoding_and_padded_step(encoding, pad):
    channels = rc.IMAGE_CHANNELS[encoding]
    shape = (7, 5) if channels == 1 else (7, 5, 3)
    img = _rng_image(shape, seed=pad)
    msg = rc.array_to_image(img, encoding, Image, stamp=12.25, frame_id="cam", step=5 * channels + pad)
    assert msg.step == 5 * channels + pad
    assert len(msg.data) == msg.step * 7
    back = rc.image_to_array(msg)
    np.testing.assert_array_equal(back, img)
    assert back.flags["C_CONTIGUOUS"]
    assert rc.stamp_to_seconds(msg.header.stamp) == 12.25
    assert msg.header.frame_id == "cam"


def test_padded_rows_from_a_driver_are_cut_not_read_as_pixels():
    # A 2x2 rgb8 image with step 8 (2 padding bytes of 0xFF per row), as a driver would send it.
    msg = Image(height=2, width=2, encoding="rgb8", step=8,
                data=array.array("B", [1, 2, 3, 4, 5, 6, 255, 255, 7, 8, 9, 10, 11, 12, 255, 255]))
    img = rc.image_to_array(msg)
    assert img.shape == (2, 2, 3)
    assert img[1, 0].tolist() == [7, 8, 9]
    assert 255 not in img


def test_image_from_bytes_data_reads_as_from_array():
    img = _rng_image((4, 6, 3))
    msg = rc.array_to_image(img, "rgb8", Image, 1.0, "cam")
    as_bytes = Image(height=4, width=6, encoding="rgb8", step=18, data=list(bytes(msg.data)))
    np.testing.assert_array_equal(rc.image_to_array(as_bytes), img)


def test_bgr_frame_keeps_encoding_and_rgb_view_swaps_channels():
    img = _rng_image((3, 4, 3))
    frame = rc.image_to_frame(rc.array_to_image(img, "bgr8", Image, 2.5, "wrist"))
    assert frame.encoding == "bgr8" and frame.frame_id == "wrist" and frame.stamp == 2.5
    np.testing.assert_array_equal(frame.rgb(), img[..., ::-1])


def test_mono_frame_becomes_grey_rgb():
    img = _rng_image((3, 4))
    frame = rc.image_to_frame(rc.array_to_image(img, "mono8", Image, 0.0, "cam"))
    assert frame.encoding == "rgb8" and frame.image.shape == (3, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(frame.image[..., c], img)


def test_frame_to_image_round_trip():
    frame = rc.image_to_frame(rc.array_to_image(_rng_image((480, 640, 3)), "rgb8", Image, 3.0, "camera"))
    again = rc.image_to_frame(rc.frame_to_image(frame, Image))
    np.testing.assert_array_equal(again.image, frame.image)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"encoding": "yuv422"}, "encoding 'yuv422' is not supported"),
        ({"encoding": "16UC1"}, "not supported"),
        ({"step": 5}, "step 5 is smaller"),
        ({"data_len": 100}, "needs step x height = 72"),
        ({"height": 0}, "empty"),
    ],
)
def test_malformed_images_are_rejected_with_the_reason(fields, match):
    values = {"height": 4, "width": 6, "encoding": "rgb8", "step": 18}
    data_len = fields.pop("data_len", None)
    values.update(fields)
    n = data_len if data_len is not None else values["step"] * values["height"]
    msg = Image(**values, data=array.array("B", bytes(n)))
    with pytest.raises(InvalidInputError, match=match):
        rc.image_to_array(msg)


def test_writing_a_bad_image_is_rejected():
    with pytest.raises(InvalidInputError, match="uint8"):
        rc.array_to_image(np.zeros((2, 2, 3), np.float32), "rgb8", Image, 0.0, "c")
    with pytest.raises(InvalidInputError, match="HxWx3"):
        rc.array_to_image(np.zeros((2, 2), np.uint8), "rgb8", Image, 0.0, "c")
    with pytest.raises(InvalidInputError, match="smaller"):
        rc.array_to_image(np.zeros((2, 2, 3), np.uint8), "rgb8", Image, 0.0, "c", step=5)


def test_compressed_jpeg_decodes_to_a_bgr_frame():
    cv2 = pytest.importorskip("cv2")
    img = np.zeros((32, 48, 3), np.uint8)
    img[:, :24] = (255, 0, 0)  # blue in BGR
    ok, buf = cv2.imencode(".png", img)
    assert ok
    msg = MSG["sensor_msgs/CompressedImage"](format="png", data=array.array("B", buf.tobytes()))
    rc.fill_stamp(msg.header.stamp, 4.0)
    frame = rc.compressed_to_frame(msg)
    assert frame.encoding == "bgr8" and frame.stamp == 4.0
    np.testing.assert_array_equal(frame.image, img)
    broken = MSG["sensor_msgs/CompressedImage"](format="jpeg", data=array.array("B", b"not a jpeg"))
    with pytest.raises(InvalidInputError, match="does not decode"):
        rc.compressed_to_frame(broken)


def test_frame_to_compressed_round_trip_is_close_and_keeps_colours():
    pytest.importorskip("cv2")
    img = np.zeros((48, 64, 3), np.uint8)
    img[:, :32] = (200, 30, 30)  # red in RGB
    frame = rc.image_to_frame(rc.array_to_image(img, "rgb8", Image, 3.5, "cam"))
    msg = rc.frame_to_compressed(frame, MSG["sensor_msgs/CompressedImage"], quality=90)
    assert msg.format == "rgb8; jpeg compressed bgr8" and len(msg.data) < img.nbytes
    back = rc.compressed_to_frame(msg)
    assert back.stamp == 3.5 and back.frame_id == "cam"
    assert np.abs(back.rgb().astype(int) - img.astype(int)).mean() < 3.0
    with pytest.raises(InvalidInputError, match="quality"):
        rc.frame_to_compressed(frame, MSG["sensor_msgs/CompressedImage"], quality=0)


def test_camera_info_is_uncalibrated_with_the_image_size():
    msg = rc.camera_info(MSG["sensor_msgs/CameraInfo"], 480, 640, 1.0, "camera")
    assert (msg.height, msg.width, msg.header.frame_id) == (480, 640, "camera")
    assert list(msg.k) == [0.0] * 9


# --------------------------------------------------------------------------- commands and chunks


def test_command_round_trip_reproduces_the_bridge_action_twist():
    action = np.array([0.01, -0.02, 0.03, 0.1, -0.05, 0.2, 0.7])
    cmd = action_to_command(action, 0.2, stamp=10.5, chunk_id=42, index=3, observation_stamp=10.1)
    msg = rc.command_to_msg(cmd, MSG["nora_ros/EndEffectorCommand"], frame_id="wx250s/base_link")
    assert msg.twist.linear.x == pytest.approx(0.05) and msg.twist.linear.z == pytest.approx(0.15)
    assert msg.header.frame_id == "wx250s/base_link"
    back = rc.command_from_msg(msg)
    np.testing.assert_allclose(back.linear, cmd.linear)
    np.testing.assert_allclose(back.angular, cmd.angular)
    assert (back.gripper, back.chunk_id, back.index) == (0.7, 42, 3)
    assert back.stamp == pytest.approx(10.5, abs=1e-9)
    assert back.observation_stamp == pytest.approx(10.1, abs=1e-9)


def test_command_with_nan_passes_through_for_the_safety_filter_to_reject():
    msg = rc.command_to_msg(EndEffectorCommand.hold(1.0, 1.0), MSG["nora_ros/EndEffectorCommand"])
    msg.twist.linear.x = float("nan")
    cmd = rc.command_from_msg(msg)
    assert np.isnan(cmd.linear[0])


def test_chunk_round_trip_keeps_actions_tokens_and_timings():
    rng = np.random.default_rng(1)
    actions = np.concatenate([rng.normal(0, 0.01, (5, 6)), rng.uniform(0, 1, (5, 1))], axis=1)
    chunk = ActionChunk(actions, model_id="declare-lab/nora-long", timings={"total": 0.12, "decode": 0.08},
                        token_ids=(151700, 151999, 151645), stamp=7.25, chunk_id=9)
    msg = rc.chunk_to_msg(chunk, MSG["nora_ros/ActionChunk"], frame_id="base", latency=0.13)
    assert msg.horizon == 5 and len(msg.actions) == 35 and msg.latency == 0.13
    assert list(msg.actions[7:14]) == pytest.approx(actions[1].tolist())
    back = rc.chunk_from_msg(msg)
    np.testing.assert_array_equal(back.actions, actions)
    assert back.token_ids == chunk.token_ids and back.timings == chunk.timings
    assert (back.stamp, back.chunk_id, back.model_id, back.step_period) == (7.25, 9, "declare-lab/nora-long", 0.2)


def test_chunk_message_with_wrong_size_is_rejected():
    msg = rc.chunk_to_msg(ActionChunk(np.zeros((1, 7))), MSG["nora_ros/ActionChunk"])
    msg.horizon = 2
    with pytest.raises(InvalidInputError, match="horizon 2 x 7 = 14"):
        rc.chunk_from_msg(msg)


def test_chunk_message_with_nan_action_is_rejected():
    msg = rc.chunk_to_msg(ActionChunk(np.zeros((1, 7))), MSG["nora_ros/ActionChunk"])
    msg.actions = array.array("d", [0.0, float("nan"), 0, 0, 0, 0, 1.0])
    with pytest.raises(InvalidInputError, match="non-finite"):
        rc.chunk_from_msg(msg)


# --------------------------------------------------------------------------- status messages


def test_safety_status_lists_every_limit_with_its_detail():
    cls = MSG["nora_ros/SafetyStatus"]
    msg = rc.safety_status_to_msg(
        cls, stamp=3.0, enabled=True, estopped=False, holding=True,
        limits=[(cls.LIMIT_WORKSPACE, "z 0.005 below floor 0.01"), (cls.LIMIT_LINEAR_SPEED, "0.4 > 0.25 m/s")],
        ticks=10, held_ticks=2,
    )
    assert list(msg.limits) == ["workspace", "linear_speed"]
    assert msg.details[0].startswith("z 0.005")
    assert (msg.ticks, msg.held_ticks, msg.holding) == (10, 2, True)


@pytest.mark.parametrize(("name", "value"), [("IDLE", 0), ("RESETTING", 1), ("running", 2), ("AWAITING_SCORE", 3),
                                             ("DONE", 4), ("ABORTED", 5)])
def test_trial_status_state_constants(name, value):
    cls = MSG["nora_ros/TrialStatus"]
    msg = rc.trial_status_to_msg(cls, stamp=1.0, trial_id=3, instruction="put carrot in pot", state_name=name,
                                 reason="", steps=4, start_pose=(0.25, 0, 0.15, 0, 0, 0))
    assert msg.state == value and msg.state_name == name.upper()
    assert list(msg.start_pose) == [0.25, 0.0, 0.15, 0.0, 0.0, 0.0]
    assert rc.trial_state_name(msg) == name.upper()


def test_unknown_trial_state_is_rejected():
    with pytest.raises(InvalidInputError, match="FLYING"):
        rc.trial_status_to_msg(MSG["nora_ros/TrialStatus"], stamp=1.0, trial_id=1, instruction="x",
                               state_name="FLYING")


def test_trial_result_message():
    cls = MSG["nora_ros/TrialResult"]
    msg = rc.trial_result_to_msg(
        cls, trial_id=7, task="carrot in pot", instruction="put carrot in pot", model_id="nora",
        score_name="partial", score_value=0.5, note="carrot only", start_time=100.0, end_time=130.5, steps=120,
        safety_events=["workspace x3"], results_file="/tmp/r.jsonl",
    )
    assert msg.score == cls.PARTIAL and msg.score_value == 0.5 and msg.duration == 30.5
    # The supervisor passes the running time (results file's duration_s), not end - creation
    # (which counts the move to the start pose: seen on Jazzy, 20.1 s vs 17.0 s in the file).
    ran = rc.trial_result_to_msg(cls, trial_id=7, task="t", instruction="i", model_id="m", score_name="success",
                                 score_value=1.0, note="", start_time=100.0, end_time=130.5, steps=120, duration=27.5)
    assert ran.duration == 27.5 and rc.stamp_to_seconds(ran.start_time) == 100.0
    assert rc.stamp_to_seconds(msg.end_time) == 130.5 and rc.stamp_to_seconds(msg.header.stamp) == 130.5
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        rc.trial_result_to_msg(cls, trial_id=1, task="t", instruction="i", model_id="m", score_name="partial",
                               score_value=1.5, note="", start_time=0.0, end_time=1.0, steps=0)


# --------------------------------------------------------------------------- joints


def test_joint_positions_are_matched_by_name():
    names = ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate"]
    driver_order = ["elbow", "left_finger", "waist", "shoulder", "right_finger", "wrist_rotate", "forearm_roll",
                    "wrist_angle", "gripper"]
    values = {n: float(i) / 10 for i, n in enumerate(driver_order)}
    msg = rc.joint_state_msg(MSG["sensor_msgs/JointState"], driver_order, [values[n] for n in driver_order], 1.0)
    np.testing.assert_allclose(rc.joint_positions(msg, names), [values[n] for n in names])
    with pytest.raises(InvalidInputError, match="lacks \\['wrist_twist'\\]"):
        rc.joint_positions(msg, ["waist", "wrist_twist"])
    msg.position = array.array("d", [float("nan")] * 9)
    with pytest.raises(InvalidInputError, match="non-finite"):
        rc.joint_positions(msg, names)


def test_joint_trajectory_round_trip():
    names = ["waist", "shoulder"]
    msg = rc.joint_trajectory_msg(MSG["trajectory_msgs/JointTrajectory"], MSG["trajectory_msgs/JointTrajectoryPoint"],
                                  MSG["builtin_interfaces/Duration"], names, [0.1, -0.2], 0.25, stamp=5.0)
    got_names, pos, duration = rc.trajectory_target(msg)
    assert got_names == names and pos.tolist() == [0.1, -0.2] and duration == 0.25
    with pytest.raises(InvalidInputError, match="finite positions"):
        rc.joint_trajectory_msg(MSG["trajectory_msgs/JointTrajectory"], MSG["trajectory_msgs/JointTrajectoryPoint"],
                                MSG["builtin_interfaces/Duration"], names, [0.1, float("nan")], 0.25, stamp=5.0)


# --------------------------------------------------------------------------- diagnostics


def test_diagnostics_message_carries_levels_as_bytes_and_values_as_text():
    from nora_ros.diagnostics import DiagnosticReport, Level

    cls = MSG["diagnostic_msgs/DiagnosticStatus"]
    reports = [DiagnosticReport("nora/policy: camera", Level.OK, "ok", {"rate_hz": "14.9"}),
               DiagnosticReport.worst("nora/policy: inference", [(Level.OK, ""), (Level.ERROR, "decode failed"),
                                                                 (Level.WARN, "slow")], {"latency_s": 0.123456})]
    msg = rc.diagnostics_to_msg(MSG["diagnostic_msgs/DiagnosticArray"], cls, MSG["diagnostic_msgs/KeyValue"],
                                reports, stamp=5.0, hardware_id="wx250s")
    assert [s.level for s in msg.status] == [cls.OK, cls.ERROR]
    assert msg.status[1].message == "decode failed; slow"
    assert [(kv.key, kv.value) for kv in msg.status[1].values] == [("latency_s", "0.1235")]
    assert msg.status[0].hardware_id == "wx250s" and rc.stamp_to_seconds(msg.header.stamp) == 5.0


# --------------------------------------------------------------------------- simulator ground truth


def test_ground_truth_json_round_trip():
    pose = np.eye(4)
    pose[:3, 3] = (0.3, -0.05, 0.02)
    truth = {"sim_time": 12.5, "task": "carrot_in_pot", "objects": {"carrot": pose, "pot": np.eye(4)},
             "ee_pose": np.eye(4), "joints": np.arange(6) / 10, "gripper": np.float64(0.8),
             "grasped": {"carrot": np.bool_(True), "pot": False}}
    text = rc.ground_truth_to_json(truth, stamp=7.25)
    stamp, back = rc.ground_truth_from_json(text)
    assert stamp == 7.25 and back["task"] == "carrot_in_pot" and back["grasped"] == {"carrot": True, "pot": False}
    np.testing.assert_array_equal(back["objects"]["carrot"], pose)
    np.testing.assert_array_equal(back["joints"], np.arange(6) / 10)
    assert back["gripper"] == 0.8
    with pytest.raises(InvalidInputError, match="ground truth is malformed"):
        rc.ground_truth_from_json('{"stamp": 1.0, "objects": {}}')
