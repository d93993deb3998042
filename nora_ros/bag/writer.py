"""BagWriter: write rosbag2 (mcap by default, or sqlite3) with rosbags, no ROS needed.

A thin layer over ``rosbags.rosbag2.Writer`` that takes messages built by
:mod:`nora_ros.interface.convert` (with :class:`~nora_ros.bag.types.MessageClasses`), adds each
topic's connection on first use with the QoS the nodes offer, and stamps every message with the
time it was published on the run's clock. rosbags' errors become :class:`BagError` naming the
bag.
"""

from __future__ import annotations

import math
import pathlib
from typing import Any

from nora_ros.bag.topics import Topic, qos_profile, resolve
from nora_ros.bag.types import MessageClasses
from nora_ros.errors import BagError, ConfigurationError

STORAGES = ("mcap", "sqlite3")


class BagWriter:
    """One rosbag2 being written; use as a context manager or call :meth:`close`.

    ``path`` is the bag folder to create (it must not exist: rosbag2 never appends).
    ``namespace`` prefixes every relative topic name.
    """

    def __init__(self, path: str | pathlib.Path, *, storage: str = "mcap", namespace: str = "nora",
                 classes: MessageClasses | None = None):
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.rosbag2.errors import WriterError

        if storage not in STORAGES:
            raise ConfigurationError(f"bag storage must be one of {STORAGES}, got '{storage}'")
        self.path = pathlib.Path(path)
        if self.path.exists():
            raise BagError(f"cannot record to {self.path}: it already exists (rosbag2 never appends to a bag)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.namespace = namespace
        self.storage = storage
        self.classes = classes or MessageClasses()
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=9, storage_plugin=plugin)
        try:
            self._writer.open()
        except (WriterError, OSError) as exc:
            raise BagError(f"cannot open {self.path} for recording: {exc}") from exc
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.closed = False

    def write(self, topic: Topic, msg: Any, stamp: float) -> None:
        """Write ``msg`` on ``topic`` as published at ``stamp`` (seconds, the run's clock)."""
        if self.closed:
            raise BagError(f"{self.path} is closed")
        if not (math.isfinite(stamp) and stamp >= 0):
            raise BagError(f"{topic.name}: a bag timestamp must be finite and non-negative, got {stamp}")
        name = resolve(self.namespace, topic.name)
        connection = self._connections.get(name)
        if connection is None:
            if msg.__msgtype__ != topic.msgtype:
                raise BagError(f"{name} carries {topic.msgtype}, not {msg.__msgtype__}")
            connection = self._writer.add_connection(name, topic.msgtype, typestore=self.classes.store,
                                                     offered_qos_profiles=[qos_profile(topic.qos)])
            self._connections[name] = connection
        self._writer.write(connection, round(stamp * 1e9), self.classes.serialize(msg))
        self.counts[name] = self.counts.get(name, 0) + 1

    def close(self) -> None:
        """Finish the file and write metadata.yaml (a bag without it needs ``ros2 bag reindex``)."""
        if self.closed:
            return
        self.closed = True
        try:
            self._writer.close()
        except Exception as exc:  # rosbags or the file system: say which bag did not finish
            raise BagError(f"could not finish {self.path}: {exc}") from exc

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
