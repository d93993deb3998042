"""How far the launch files let discovery reach (no ROS imported; the launch files call this).

Jazzy (and Iron) take ``ROS_AUTOMATIC_DISCOVERY_RANGE`` (LOCALHOST, SUBNET, OFF,
SYSTEM_DEFAULT) and ``ROS_STATIC_PEERS`` (hosts reached whatever the range, unless OFF);
Humble has only ``ROS_LOCALHOST_ONLY``. sim.launch.py and replay.launch.py default to
LOCALHOST: nothing on the network can see or reach them. widowx.launch.py takes the range and
the peers as arguments (a policy on a GPU workstation needs SUBNET or the workstation as a
static peer) and warns when the graph leaves the host on domain 0, everybody's default.
"""

from __future__ import annotations

from dataclasses import dataclass

from nora_ros.errors import ConfigurationError

RANGES = ("LOCALHOST", "SUBNET", "OFF", "SYSTEM_DEFAULT")
LEGACY_DISTROS = ("humble", "galactic", "foxy")
"""Distributions without ROS_AUTOMATIC_DISCOVERY_RANGE (only ROS_LOCALHOST_ONLY)."""


@dataclass(frozen=True)
class Discovery:
    """The environment the nodes get, and what to tell the person who launched them."""

    env: dict[str, str]
    warnings: tuple[str, ...]


def _peers(static_peers: str) -> list[str]:
    return [p.strip() for p in static_peers.replace(",", ";").split(";") if p.strip()]


def discovery(range_: str, static_peers: str = "", distro: str = "jazzy", domain_id: str = "") -> Discovery:
    """The variables for ``range_`` and ``static_peers`` (``;`` or ``,`` separated) on ``distro``.

    Warns when the graph is reachable beyond this host (SUBNET, or static peers) on domain 0:
    every ROS machine on the network that was never told otherwise is on domain 0."""
    rng = range_.strip().upper()
    if rng not in RANGES:
        raise ConfigurationError(f"discovery_range '{range_}' is not one of {', '.join(RANGES)}")
    peers = _peers(static_peers)
    env: dict[str, str] = {}
    warnings: list[str] = []
    if distro.strip().lower() in LEGACY_DISTROS:
        if rng == "LOCALHOST":
            env["ROS_LOCALHOST_ONLY"] = "1"
        elif rng in ("SUBNET", "OFF"):
            env["ROS_LOCALHOST_ONLY"] = "0"
        if rng == "OFF":
            warnings.append(f"discovery_range OFF does not exist on {distro}: using the network (SUBNET)")
        if peers:
            warnings.append(f"static_peers needs ROS 2 Iron or newer; on {distro} list the peers in your DDS "
                            "configuration (CYCLONEDDS_URI Peers, a Fast DDS XML profile): ignored")
            peers = []
    else:
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = rng
        if peers:
            env["ROS_STATIC_PEERS"] = ";".join(peers)
    leaves_host = rng in ("SUBNET", "SYSTEM_DEFAULT") or (bool(peers) and rng != "OFF")
    try:
        domain = int(domain_id.strip() or "0")
    except ValueError as exc:
        raise ConfigurationError(f"ROS_DOMAIN_ID={domain_id!r} is not a number") from exc
    if leaves_host and domain == 0:
        warnings.append("ROS_DOMAIN_ID is 0 (everybody's default) and discovery reaches beyond this host: any "
                        "machine on the network on domain 0 can see this robot's topics and publish to them. "
                        "Set ROS_DOMAIN_ID to a number only your machines use, and secure:=true.")
    return Discovery(env, tuple(warnings))
