"""pip installation of nora_ros for machines without ROS (colcon uses CMakeLists.txt instead).

Extras: ``model`` (NORA inference: torch, transformers), ``sim`` (MuJoCo simulator, plots),
``bag`` (rosbag2 without ROS), ``test`` (the test suite and linters).
"""

import pathlib
import re

from setuptools import find_packages, setup

# The transformers versions NORA's decoding was checked on: one place, read here without importing
# the package (it refuses any other version at load; colcon does not enforce this pin).
TRANSFORMERS = re.search(r'^TRANSFORMERS_ACCEPTED = "([^"]+)"', (pathlib.Path(__file__).parent / "nora_ros/policy/nora/compat.py").read_text(),
                         re.M).group(1)

setup(
    name="nora_ros",
    version="0.1.0",
    description="Run the NORA vision-language-action model on an Interbotix WidowX arm, with or without ROS 2",
    packages=find_packages(include=["nora_ros", "nora_ros.*"]),
    package_data={"nora_ros": ["py.typed"], "nora_ros.console": ["static/*"]},
    # The message definitions, for rosbag2 without ROS (nora_ros.bag.types finds them here).
    data_files=[("share/nora_ros/msg", sorted(str(p) for p in pathlib.Path("msg").glob("*.msg")))],
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.24",
        "scipy>=1.10",
        "tokenizers>=0.19",
        "pyyaml>=6",
        "modern_robotics>=1.1",
        "matplotlib>=3.7",
        "pillow>=10",
        # Camera sources (device, video file, image folder) and compressed images.
        "opencv-python-headless>=4.8",
        # JPEG decoding with libjpeg's fast integer IDCT, as TensorFlow decodes (NORA's reference loop).
        "simplejpeg>=1.7",
    ],
    extras_require={
        # transformers 5: Qwen2.5-VL's 3D positions from mm_token_type_ids, and its PIL image
        # processor, so no torchvision is needed (none is published for torch 2.13 CPU).
        "model": ["torch>=2.4", f"transformers{TRANSFORMERS}", "safetensors>=0.4", "jinja2>=3.1.6"],
        "sim": ["mujoco>=3.1", "imageio>=2.30"],
        # mcap: salvaging bags cut short (rosbags needs the file's summary at its end).
        "bag": ["rosbags>=0.10", "mcap>=1.1"],
        # the operator console: aiohttp serves the page and the camera stream (async I/O);
        # selenium drives Debian's chromium in the browser tests.
        "console": ["aiohttp>=3.9", "pyyaml>=6"],
        "test": ["pytest>=8", "selenium>=4.10", "hypothesis>=6.100", "ruff>=0.6", "catkin_pkg>=1.0"],
    },
    entry_points={"console_scripts": ["nora-ros = nora_ros.cli:main"]},
)
