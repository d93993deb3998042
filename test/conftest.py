"""Shared test fixtures: where the real data lives, and skipping clearly when it is absent."""

from __future__ import annotations

import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data_path(*parts: str) -> pathlib.Path:
    """Path under ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real test data not available: {path} is absent (see ../shared/data/README.md)")
    return path


@pytest.fixture
def bridge_episodes() -> list[pathlib.Path]:
    """The 25 real BridgeData V2 episodes (.npz)."""
    folder = shared_data_path("octo_bridge_debug", "extracted_train")
    files = sorted(folder.glob("episode_*.npz"))
    assert len(files) == 25, f"expected 25 episodes in {folder}, found {len(files)}"
    return files


@pytest.fixture
def bridge_norm_stats_file() -> pathlib.Path:
    return shared_data_path("norm_stats", "bridge_orig_action_stats.json")


@pytest.fixture(autouse=True)
def _forget_node_shells_bound_to_fake_rclpy():
    """A test that installed test/fake_rclpy.py imported the node shells against its stand-ins
    (they import rclpy at module level): drop those modules afterwards, so a later test on a
    ROS machine imports them against the real rclpy (seen on Jazzy: test_ros_nodes failed after
    the bag tests with the fake ParameterDescriptor)."""
    yield
    import sys

    fake = sys.modules.get("fake_rclpy")
    if fake is not None and fake.INSTALLED:
        fake.drop_node_modules()
        fake.INSTALLED.clear()
