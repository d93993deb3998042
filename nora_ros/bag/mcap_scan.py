"""Salvage the messages of an MCAP file that was cut short (a crash, a full disk, a copy
interrupted): rosbags needs the footer at the end of the file, so it refuses such a file.

The file is read from the front, record by record (MCAP: an opcode byte, a uint64 length,
the content), into chunks and out of them, until a record does not fit in what is left; every
message before that point comes back, with where and why the scan stopped. Only the record
layout of the MCAP specification is used, no index, so any writer's files work (rosbags',
ros2 bag's).
"""

from __future__ import annotations

import pathlib
import struct
from dataclasses import dataclass, field

MAGIC = b"\x89MCAP0\r\n"
OP_HEADER, OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06


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
    stopped_at: int = 0


class _Cursor:
    def __init__(self, data: bytes | memoryview, pos: int = 0):
        self.data, self.pos = data, pos

    def take(self, n: int) -> bytes | memoryview:
        if self.pos + n > len(self.data):
            raise EOFError
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def string(self) -> str:
        return bytes(self.take(self.u32())).decode("utf-8", errors="replace")


def scan(path: str | pathlib.Path) -> Scan:
    """Every complete message of the MCAP file at ``path`` (see the module docstring)."""
    data = memoryview(pathlib.Path(path).read_bytes())
    out = Scan()
    if bytes(data[:8]) != MAGIC:
        out.stopped = "not an MCAP file (bad magic)"
        return out
    schemas: dict[int, tuple[str, str]] = {}
    cur = _Cursor(data, 8)
    while True:
        start = cur.pos
        try:
            op = cur.take(1)[0]
            body = _Cursor(cur.take(cur.u64()))
        except EOFError:
            out.stopped = f"file ends inside a record at byte {start} of {len(data)}"
            out.stopped_at = start
            return out
        if op == OP_FOOTER:
            return out
        try:
            if op == OP_CHUNK:
                _chunk(body, schemas, out)
            else:
                _record(op, body, schemas, out)
        except (EOFError, ValueError) as exc:
            out.stopped = f"record at byte {start} is malformed ({exc or 'too short'})"
            out.stopped_at = start
            return out


def _chunk(body: _Cursor, schemas: dict, out: Scan) -> None:
    body.u64(), body.u64()  # message start and end time
    body.u64()  # uncompressed size
    body.u32()  # crc of the uncompressed records (0 = not computed)
    compression = body.string()
    records = body.take(body.u64())
    if compression == "zstd":  # the decompressors rosbags itself depends on
        try:
            from compression import zstd  # Python >= 3.14
        except ImportError:
            from backports import zstd
        records = zstd.decompress(bytes(records))
    elif compression == "lz4":
        import lz4.frame

        records = lz4.frame.decompress(bytes(records))
    elif compression:
        raise ValueError(f"unknown chunk compression '{compression}'")
    inner = _Cursor(memoryview(records))
    while inner.pos < len(inner.data):
        op = inner.take(1)[0]
        _record(op, _Cursor(inner.take(inner.u64())), schemas, out)


def _record(op: int, body: _Cursor, schemas: dict, out: Scan) -> None:
    if op == OP_SCHEMA:
        sid, name = body.u16(), body.string()
        body.string()  # encoding (ros2msg / ros2idl)
        schemas[sid] = (name, bytes(body.take(body.u32())).decode("utf-8", errors="replace"))
    elif op == OP_CHANNEL:
        cid, sid, topic = body.u16(), body.u16(), body.string()
        name, msgdef = schemas.get(sid, ("", ""))
        out.channels[cid] = Channel(topic, name, msgdef)
    elif op == OP_MESSAGE:
        cid = body.u16()
        body.u32()  # sequence
        log_time = body.u64()
        body.u64()  # publish time
        out.messages.append((cid, log_time, bytes(body.data[body.pos:])))
