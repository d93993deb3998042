"""rosbag2 recording and replay without ROS, on the ``rosbags`` library (the ``bag`` extra).

- :mod:`~nora_ros.bag.types`: the typestore with ``msg/*.msg`` registered at run time, and
  message classes that :mod:`nora_ros.interface.convert` can build;
- :mod:`~nora_ros.bag.topics`: topic names, types and QoS, as the nodes use them;
- :mod:`~nora_ros.bag.writer` / :mod:`~nora_ros.bag.record`: write a run (per trial or per session);
- :mod:`~nora_ros.bag.read` / :mod:`~nora_ros.bag.run`: read sqlite3 and mcap bags, also damaged ones;
- :mod:`~nora_ros.bag.replay`: recorded frames through a policy, compared with what was recorded;
- :mod:`~nora_ros.bag.export`: successful trials as episodes for fine-tuning.

Submodules import ``rosbags`` lazily where they can, so ``nora-ros --help`` works without it.
"""
