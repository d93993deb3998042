"""ROS time stamps as float seconds and back, refusing what a stamp cannot hold."""

from __future__ import annotations

import math

from nora_ros.errors import InvalidInputError

_NS = 1_000_000_000


# --------------------------------------------------------------------------- time


def stamp_to_seconds(stamp) -> float:
    """A ``builtin_interfaces/Time`` (``sec``, ``nanosec``) as float seconds."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def split_seconds(seconds: float) -> tuple[int, int]:
    """Float seconds as ``(sec, nanosec)`` with ``0 <= nanosec < 1e9``, rounded to the nanosecond.

    Negative and non-finite times raise: a ROS stamp cannot hold them, and a NaN stamp would
    defeat every age check downstream.
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidInputError(f"a stamp must be a finite, non-negative number of seconds, got {seconds}")
    total_ns = round(seconds * _NS)
    return int(total_ns // _NS), int(total_ns % _NS)


def fill_stamp(stamp, seconds: float):
    """Set a ``builtin_interfaces/Time`` in place from float seconds; returns it."""
    stamp.sec, stamp.nanosec = split_seconds(seconds)
    return stamp


def seconds_to_stamp(seconds: float, time_cls):
    """A new ``time_cls`` (``builtin_interfaces.msg.Time``) holding ``seconds``."""
    sec, nanosec = split_seconds(seconds)
    return time_cls(sec=sec, nanosec=nanosec)


def fill_header(msg, stamp: float, frame_id: str) -> None:
    fill_stamp(msg.header.stamp, stamp)
    msg.header.frame_id = str(frame_id)
