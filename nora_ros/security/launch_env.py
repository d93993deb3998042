"""What the launch files set before they start the nodes: the discovery scope and, with
``secure:=true``, SROS2 (each node then runs in its enclave: ``--enclave /nora/<role>``, which the
launch files always pass; it means nothing while security is off)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nora_ros.security.discovery import discovery
from nora_ros.security.keystore import secure_env


@dataclass(frozen=True)
class GraphSetup:
    env: dict[str, str]
    notes: tuple[str, ...]


def graph_setup(*, discovery_range: str, static_peers: str = "", secure: str = "false", keystore: str = "",
                roles: Sequence[str] = (), environ: Mapping[str, str]) -> GraphSetup:
    """Environment and notes for one launch, from its arguments (strings, as launch gives them)
    and the launching shell's ``environ`` (ROS_DISTRO, ROS_DOMAIN_ID)."""
    d = discovery(discovery_range, static_peers, environ.get("ROS_DISTRO", "jazzy"), environ.get("ROS_DOMAIN_ID", ""))
    env = dict(d.env)
    notes = [f"WARNING: {w}" for w in d.warnings]
    scope = ", ".join(f"{k}={v}" for k, v in d.env.items()) or "the system default"
    notes.append(f"discovery: {scope}")
    if secure.strip().lower() == "true":
        env.update(secure_env(keystore, roles))
        notes.append(f"SROS2 enforced, keystore {env['ROS_SECURITY_KEYSTORE']}: every node in its /nora/<role> enclave")
    elif environ.get("ROS_SECURITY_ENABLE", "").lower() == "true":
        notes.append("secure:=false but ROS_SECURITY_ENABLE=true in this shell: the nodes inherit it")
    return GraphSetup(env, tuple(notes))
