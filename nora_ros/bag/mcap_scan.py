"""Salvage the messages of an MCAP file that was cut short (a crash, a full disk, a copy
interrupted): rosbags needs the summary at the end of the file, so it refuses such a file.

Foxglove's ``mcap`` library reads the file from the front, record by record, into chunks and
out of them (zstd and lz4 chunks too), without the index; the scan keeps every message until
a record does not fit in what is left and says where and why it stopped. Any writer's files
work (rosbags', ros2 bag's).
"""

from __future__ import annotations

import pathlib
import struct
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Channel:
    """A topic of the file with its schema (message type and definition)."""

    topic: str
    msgtype: str
    msgdef: str


@dataclass
class Scan:
    """What a scan recovered: channels by id, ``(channel id, log time ns, CDR bytes)`` in file
    order, and why it stopped (``""`` when it reached the footer)."""

    channels: dict[int, Channel] = field(default_factory=dict)
    messages: list[tuple[int, int, bytes]] = field(default_factory=list)
    stopped: str = ""


def scan(path: str | pathlib.Path) -> Scan:
    """Every complete message of the MCAP file at ``path`` (see the module docstring)."""
    from mcap.exceptions import InvalidMagic, McapError
    from mcap.records import Channel as ChannelRecord
    from mcap.records import Footer, Message, Schema
    from mcap.stream_reader import StreamReader

    out = Scan()
    schemas: dict[int, tuple[str, str]] = {}
    with open(path, "rb") as stream:
        size = pathlib.Path(path).stat().st_size
        try:
            for record in StreamReader(stream).records:
                if isinstance(record, Schema):
                    schemas[record.id] = (record.name, record.data.decode("utf-8", errors="replace"))
                elif isinstance(record, ChannelRecord):
                    name, msgdef = schemas.get(record.schema_id, ("", ""))
                    out.channels[record.id] = Channel(record.topic, name, msgdef)
                elif isinstance(record, Message):
                    out.messages.append((record.channel_id, record.log_time, bytes(record.data)))
                elif isinstance(record, Footer):
                    return out
            out.stopped = f"file ends without a footer at byte {size}"
        except InvalidMagic:
            out.stopped = "not an MCAP file (bad magic)"
        except (McapError, struct.error, EOFError, ValueError, OSError) as exc:  # cut or corrupt: keep what came before
            where = stream.tell()
            if where <= 8 and not out.channels:
                out.stopped = f"not an MCAP file ({size} bytes, no MCAP magic and records)"
            else:
                out.stopped = (f"file ends inside a record or a record is malformed near byte {where} of {size} "
                               f"({type(exc).__name__}: {exc or 'too short'})")
    return out
