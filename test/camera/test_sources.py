"""Camera sources (nora_ros.camera.sources) on the real WidowX frames and videos in ../shared/data.

The device source's reconnect logic runs on a real cv2.VideoCapture opened on a copy of a real
video in tmp_path: the "device" drops when the video ends and its file is moved away, and comes
back when the file returns (no camera can exist here).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import shared_data_path

from nora_ros.camera.sources import DeviceSource, ImageFolderSource, VideoFileSource, open_source
from nora_ros.errors import ConfigurationError

cv2 = pytest.importorskip("cv2")

FRAMES_1 = 37  # frames in debug__bridge_real_1.mp4 (480x640, 5 fps)


@pytest.fixture
def frames_dir():
    return shared_data_path("simpler_real_bridge_frames")


@pytest.fixture
def video(frames_dir):
    return frames_dir / "debug__bridge_real_1.mp4"


def test_image_folder_yields_every_image_in_name_order_as_bgr8(frames_dir):
    src = ImageFolderSource(frames_dir, frame_id="cam0", loop=False)
    files = sorted(frames_dir.glob("*.png"))
    assert [p.name for p in src.files] == [p.name for p in files] and len(files) == 8
    for i, path in enumerate(files):
        frame = src.read(now=100.0 + i)
        assert frame is not None, src.health.last_error
        assert frame.image.shape == (480, 640, 3) and frame.encoding == "bgr8" and frame.frame_id == "cam0"
        assert frame.stamp == 100.0 + i
        # RGBA files lose only their alpha channel.
        np.testing.assert_array_equal(frame.image, cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[:, :, :3])
    assert src.read(now=200.0) is None
    health = src.health
    assert health.finished and health.frames == 8 and "exhausted" in health.last_error


def test_image_folder_loops_back_to_the_first_image(frames_dir):
    src = ImageFolderSource(frames_dir)
    first = src.read(0.0).image
    for t in range(1, 8):
        src.read(float(t))
    np.testing.assert_array_equal(src.read(8.0).image, first)
    assert not src.health.finished


def test_image_folder_skips_a_corrupt_image_and_says_which(tmp_path, frames_dir):
    shutil.copy(frames_dir / "real_inpainting__bridge_sink.png", tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"not a png at all")
    shutil.copy(frames_dir / "real_inpainting__bridge__bridge_calibration.png", tmp_path / "c.png")
    src = ImageFolderSource(tmp_path, loop=False)
    assert src.read(0.0) is not None
    assert src.read(1.0) is None
    assert "b.png" in src.health.last_error and src.health.failures == 1
    assert src.read(2.0) is not None
    assert src.health.last_error == ""


def test_video_file_plays_every_frame_then_loops(video):
    src = VideoFileSource(video, loop=True)
    first = src.read(0.0)
    assert first is not None and first.image.shape == (480, 640, 3)
    for t in range(1, FRAMES_1):
        assert src.read(float(t)) is not None
    again = src.read(float(FRAMES_1))
    assert again is not None
    np.testing.assert_array_equal(again.image, first.image)
    assert src.health.frames == FRAMES_1 + 1 and src.health.connected


def test_video_file_without_loop_finishes(video):
    src = VideoFileSource(video, loop=False)
    n = 0
    while src.read(float(n)) is not None:
        n += 1
    assert n == FRAMES_1
    assert src.health.finished and "ended" in src.health.last_error
    assert src.read(999.0) is None


def test_device_reconnects_after_a_drop(tmp_path, video):
    device = tmp_path / "video0.mp4"
    shutil.copy(video, device)
    src = DeviceSource(str(device), reconnect_interval=1.0)
    assert not src.health.connected
    got = [src.read(0.001 * i) for i in range(FRAMES_1)]
    assert all(f is not None for f in got) and src.health.connected
    # The stream stops (the video ends): the device is released and a reopen is scheduled.
    assert src.read(1.0) is None
    assert not src.health.connected and "reopening in 1.0 s" in src.health.last_error
    # Unplugged: within the interval nothing is tried; after it, the reopen fails with a reason.
    device.rename(tmp_path / "unplugged.mp4")
    assert src.read(1.5) is None
    assert src.read(2.1) is None
    assert "cannot open device" in src.health.last_error and src.health.reconnects == 0
    # Plugged back in: the next attempt after the interval reconnects and frames flow again.
    (tmp_path / "unplugged.mp4").rename(device)
    assert src.read(2.5) is None  # still inside the interval after the failed attempt at 2.1
    frame = src.read(3.2)
    assert frame is not None and frame.stamp == 3.2
    health = src.health
    assert health.connected and health.reconnects == 1 and health.last_error == ""
    assert health.frames == FRAMES_1 + 1 and health.failures >= 4
    src.close()
    assert not src.health.connected


def test_open_source_parses_specs(frames_dir, video):
    assert isinstance(open_source(str(frames_dir)), ImageFolderSource)
    assert isinstance(open_source(f"folder:{frames_dir}"), ImageFolderSource)
    assert isinstance(open_source(str(video)), VideoFileSource)
    assert isinstance(open_source(f"video:{video}", loop=False), VideoFileSource)
    dev = open_source("device:3")
    assert isinstance(dev, DeviceSource) and dev.target == 3
    assert open_source("/dev/video7").target == "/dev/video7"
    assert open_source("2").target == 2


@pytest.mark.parametrize(
    ("spec", "match"),
    [("", "empty"), ("/no/such/place", "neither a device"), ("folder:/no/such/dir", "does not exist"),
     ("video:/no/such.mp4", "does not exist")],
)
def test_bad_specs_are_rejected_with_a_reason(spec, match):
    with pytest.raises(ConfigurationError, match=match):
        open_source(spec)


def test_empty_folder_and_bad_video_are_rejected(tmp_path):
    with pytest.raises(ConfigurationError, match="holds no images"):
        ImageFolderSource(tmp_path)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(ConfigurationError, match="cannot be opened"):
        VideoFileSource(bad)
