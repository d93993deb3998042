"""``nora-ros security init KEYSTORE``: a keystore with one enclave per role and the permissions
of ``config/nora_policy.xml``, made by ``ros2 security`` (sros2) and nothing else.

No certificate, key or signature is made here: each step is one ``ros2 security`` command,
printed before it runs, so an operator can repeat or audit it by hand. Keystores embed the DDS
domain id (governance and permissions): make the keystore under the ``ROS_DOMAIN_ID`` it serves.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nora_ros.errors import ConfigurationError
from nora_ros.interface import access

POLICY_NAME = "nora_policy.xml"


@dataclass(frozen=True)
class Step:
    """One ``ros2 security`` command and why it runs."""

    argv: tuple[str, ...]
    why: str


def is_keystore(path: pathlib.Path) -> bool:
    """What sros2 checks before it refuses to create a keystore over an existing one."""
    return all((path / p).exists() for p in ("public/ca.cert.pem", "private/ca.key.pem", "enclaves/governance.p7s"))


def plan(keystore: pathlib.Path, policy: pathlib.Path, roles: Sequence[str] = access.ROLE_NAMES) -> list[Step]:
    """The commands that make ``keystore`` (reusing its CA when it exists) with an enclave and
    the policy's permissions for each role."""
    steps = []
    if not is_keystore(keystore):
        steps.append(Step(("ros2", "security", "create_keystore", str(keystore)),
                          "a new CA, governance (encrypted discovery and data, no unauthenticated peers)"))
    for name in roles:
        enclave = access.role(name).enclave
        steps.append(Step(("ros2", "security", "create_enclave", str(keystore), enclave),
                          f"{enclave}: key and certificate (its default permissions allow everything)"))
        steps.append(Step(("ros2", "security", "create_permission", str(keystore), enclave, str(policy)),
                          f"{enclave}: only what {policy.name} grants {name}"))
    return steps


def domain_id(env: dict[str, str] | None = None) -> int:
    """ROS_DOMAIN_ID as ROS reads it (unset or empty: 0)."""
    text = (os.environ if env is None else env).get("ROS_DOMAIN_ID", "").strip()
    try:
        return int(text) if text else 0
    except ValueError as exc:
        raise ConfigurationError(f"ROS_DOMAIN_ID={text!r} is not a number") from exc


def run(steps: Sequence[Step], env: dict[str, str], echo: Callable[[str], None] = print,
        runner: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> None:
    """Run each step (stops at the first failure, with sros2's message)."""
    if shutil.which("ros2", path=env.get("PATH")) is None and runner is subprocess.run:
        raise ConfigurationError("ros2 is not on PATH: source your ROS 2 setup (source /opt/ros/jazzy/setup.bash); "
                                 "the sros2 package provides 'ros2 security'")
    for step in steps:
        echo(f"$ {' '.join(step.argv)}    # {step.why}")
        done = runner(list(step.argv), env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise ConfigurationError(f"{' '.join(step.argv)} failed ({done.returncode}): "
                                     f"{(done.stderr or done.stdout).strip()}")


ENCLAVE_FILES = ("cert.pem", "key.pem", "permissions.p7s", "governance.p7s", "identity_ca.cert.pem",
                 "permissions_ca.cert.pem")
"""What rcl reads from an enclave folder (KEYSTORE/enclaves/<enclave>/)."""


def secure_env(keystore: str, roles: Sequence[str]) -> dict[str, str]:
    """The variables that start every node enforcing SROS2 with ``keystore``, after checking it
    holds an enclave for each of ``roles`` (under Enforce a missing one fails with rcl's unhelpful
    "error not set")."""
    if not keystore.strip():
        raise ConfigurationError("secure:=true needs keystore:=PATH (make one with: nora-ros security init PATH)")
    path = pathlib.Path(keystore).expanduser().resolve()
    for name in roles:
        enclave = access.role(name).enclave
        folder = path / "enclaves" / enclave.strip("/")
        missing = [f for f in ENCLAVE_FILES if not (folder / f).exists()]
        if missing:
            raise ConfigurationError(f"keystore {path} has no complete enclave {enclave} (missing {', '.join(missing)}): "
                                     f"run nora-ros security init {path}")
    return {"ROS_SECURITY_ENABLE": "true", "ROS_SECURITY_STRATEGY": "Enforce", "ROS_SECURITY_KEYSTORE": str(path)}
