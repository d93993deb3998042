"""Read rosbag2 (sqlite3 ``.db3`` and ``.mcap``) with rosbags, and keep what can be read.

A bag from a robot is often imperfect: the recording was killed (no metadata.yaml, an MCAP
file without its footer), it holds topics of packages this machine does not know, or a topic
is missing. :func:`read_bag` reads everything it can and lists every such problem, each naming
the file or topic and what is wrong, in :attr:`BagContents.problems`; it raises
:class:`BagError` only when nothing at all can be read. The caller decides which problems are
fatal (:meth:`nora_ros.bag.run.RecordedRun.require`).

Message types: the standard ROS 2 ones and ``nora_ros/msg/*`` are known
(:func:`nora_ros.bag.types.typestore`); any other type is registered from the definition the
bag carries (rosbag2 stores them since Iron; MCAP always); a type with neither is reported and
its messages are skipped.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from nora_ros.bag.types import typestore
from nora_ros.errors import BagError

IMAGE_TYPES = frozenset({"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"})
"""Kept serialized until used: a minute of raw 480x640 frames is 270 MB once decoded."""


@dataclass
class RecordedMessage:
    """One message: topic, type, the bag's timestamp (ns), its place in the bag's read order
    (``seq``: what came first when timestamps tie), and the message, decoded on first use."""

    topic: str
    msgtype: str
    ns: int
    raw: bytes = field(repr=False)
    seq: int = 0
    _msg: Any = field(default=None, repr=False)

    @property
    def t(self) -> float:
        """The bag timestamp in seconds."""
        return self.ns * 1e-9

    @property
    def msg(self) -> Any:
        if self._msg is None:
            try:
                self._msg = typestore().deserialize_cdr(self.raw, self.msgtype)
            except Exception as exc:  # rosbags raises assorted errors on bad CDR: name the message
                raise BagError(f"{self.topic} message at t={self.t:.6f} s does not decode as {self.msgtype}: "
                               f"{exc}") from exc
        return self._msg


@dataclass
class BagContents:
    """What :func:`read_bag` recovered: messages by topic in time order, each topic's type, and
    the problems met (empty for a sound bag)."""

    path: pathlib.Path
    storage: str
    messages: dict[str, list[RecordedMessage]]
    types: dict[str, str]
    problems: list[str]

    def topic(self, name: str) -> list[RecordedMessage]:
        return self.messages.get(name, [])

    @property
    def counts(self) -> dict[str, int]:
        return {t: len(m) for t, m in self.messages.items()}

    @property
    def start(self) -> float:
        return min((m[0].t for m in self.messages.values() if m), default=0.0)

    @property
    def end(self) -> float:
        return max((m[-1].t for m in self.messages.values() if m), default=0.0)


def read_bag(path: str | pathlib.Path, topics: Iterable[str] | None = None) -> BagContents:
    """Read the bag at ``path`` (a rosbag2 folder, or one ``.mcap`` / ``.db3`` file); only
    ``topics`` when given (others are listed but not decoded)."""
    path = pathlib.Path(path)
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    wanted = None if topics is None else set(topics)
    problems: list[str] = []
    sources: list[pathlib.Path] = [path]
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        files = sorted(path.glob("*.mcap")) + sorted(path.glob("*.db3"))
        if not files:
            raise BagError(f"{path} is not a rosbag2 folder: it holds no metadata.yaml and no .mcap or .db3 file")
        problems.append(f"{path} has no metadata.yaml (the recording did not end cleanly?); reading "
                        f"{', '.join(f.name for f in files)} directly")
        sources = files
    out: dict[str, list[RecordedMessage]] = {}
    types: dict[str, str] = {}
    storage = ""
    for source in sources:
        try:
            storage = _read_with_rosbags(source, wanted, out, types, problems)
        except BagError as exc:
            if source.is_dir() or source.suffix == ".mcap":
                storage = "mcap"
                _salvage_mcap(source, exc, wanted, out, types, problems)
            else:
                raise
    for msgs in out.values():
        msgs.sort(key=lambda m: (m.ns, m.seq))
    return BagContents(path, storage, out, types, problems)


def _next_seq(out: dict) -> int:
    return sum(len(m) for m in out.values())


def _known(store, msgtype: str, msgdef: str, topic: str, problems: list[str]) -> bool:
    """Whether messages of ``msgtype`` can be decoded, registering the bag's definition if needed."""
    if msgtype in store.fielddefs:
        return True
    if msgdef.strip():
        from rosbags.typesys import get_types_from_msg

        try:
            store.register(get_types_from_msg(msgdef, msgtype))
            return True
        except Exception as exc:  # a definition rosbags cannot parse: say so, skip the topic
            problems.append(f"{topic}: the bag's definition of {msgtype} does not parse ({exc}); its messages "
                            "are skipped")
            return False
    problems.append(f"{topic}: unknown message type {msgtype} (not a standard ROS 2 or nora_ros type, and the bag "
                    "carries no definition of it); its messages are skipped")
    return False


def _read_with_rosbags(source: pathlib.Path, wanted, out, types, problems) -> str:
    from rosbags.rosbag2 import Reader
    from rosbags.rosbag2.errors import ReaderError

    store = typestore()
    try:
        reader = Reader(source)
        reader.open()
    except (ReaderError, OSError, ValueError, KeyError) as exc:
        if source.suffix == ".db3" or (source.is_dir() and any(source.glob("*.db3"))):
            raise BagError(f"{source} cannot be read: {exc}. An sqlite3 file cut short cannot be salvaged here; "
                           f"try `sqlite3 FILE .recover | sqlite3 recovered.db3`") from exc
        raise BagError(f"{source} cannot be read by rosbags: {exc}") from exc
    try:
        files = list(source.iterdir()) if source.is_dir() else [source]
        storage = "mcap" if any(f.suffix == ".mcap" for f in files) else "sqlite3"
        usable = []
        for conn in reader.connections:
            types.setdefault(conn.topic, conn.msgtype)
            if wanted is not None and conn.topic not in wanted:
                continue
            msgdef = conn.msgdef.data if conn.msgdef is not None else ""
            if _known(store, conn.msgtype, msgdef, conn.topic, problems):
                usable.append(conn)
        if not usable:
            return storage
        count = 0
        try:
            for conn, ns, raw in reader.messages(connections=usable):
                out.setdefault(conn.topic, []).append(RecordedMessage(conn.topic, conn.msgtype, ns, bytes(raw),
                                                                      _next_seq(out)))
                count += 1
        except Exception as exc:  # a damaged chunk or page after good ones: keep what was read
            problems.append(f"{source}: reading stopped after {count} messages: {exc}")
    finally:
        reader.close()
    return storage


def _salvage_mcap(source: pathlib.Path, cause: BagError, wanted, out, types, problems) -> None:
    from nora_ros.bag.mcap_scan import scan

    files = sorted(source.glob("*.mcap")) if source.is_dir() else [source]
    if not files:
        raise cause
    store = typestore()
    for file in files:
        result = scan(file)
        if not result.channels and not result.messages:
            raise BagError(f"{file} cannot be read: {cause}; scanning it found nothing ({result.stopped or 'empty'})")
        usable = {}
        for cid, ch in result.channels.items():
            types.setdefault(ch.topic, ch.msgtype)
            if (wanted is None or ch.topic in wanted) and _known(store, ch.msgtype, ch.msgdef, ch.topic, problems):
                usable[cid] = ch
        kept = 0
        for cid, ns, raw in result.messages:
            ch = usable.get(cid)
            if ch is not None:
                out.setdefault(ch.topic, []).append(RecordedMessage(ch.topic, ch.msgtype, ns, raw, _next_seq(out)))
                kept += 1
        if result.stopped:
            last = max((ns for _, ns, _ in result.messages), default=0) * 1e-9
            problems.append(f"{file} is truncated or damaged ({cause}): {result.stopped}; salvaged "
                            f"{len(result.messages)} messages up to t={last:.3f} s")
        else:
            problems.append(f"{file}: rosbags could not open it ({cause}); read {kept} messages by scanning it")
