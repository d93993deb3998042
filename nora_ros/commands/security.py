"""``nora-ros security init KEYSTORE`` and ``nora-ros security policy``: SROS2 for the NORA graph.

``init`` makes (or completes) a keystore with one enclave per role (/nora/camera, /nora/policy,
/nora/safety, /nora/supervisor, /nora/sim, /nora/driver, /nora/operator) whose permissions are
the policy rendered from the access table (the same as config/nora_policy.xml for the default
namespace and robot name). Every step is a ``ros2 security`` command, printed as it runs. The
keystore embeds ROS_DOMAIN_ID: make it under the domain the robot uses.

``policy`` writes that policy (``-o FILE``, default stdout) or regenerates README's access
table (``--readme README.md``).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

from nora_ros.bag.topics import DEFAULT_NAMESPACE


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("security", help="SROS2 keystore and permission policy for the NORA graph",
                              description=__doc__.split("\n\n", 1)[1],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="namespace of the NORA nodes (default nora)")
    common.add_argument("--robot-name", default="wx250s", help="the xs driver's namespace (default wx250s)")
    init = sub.add_parser("init", parents=[common], help="create a keystore, the enclaves and their permissions")
    init.add_argument("keystore", type=pathlib.Path, metavar="KEYSTORE")
    init.add_argument("--roles", nargs="+", metavar="ROLE", help="enclaves to make (default: every role)")
    init.add_argument("--domain-id", type=int, help="ROS_DOMAIN_ID the keystore serves (default: the environment's)")
    init.add_argument("--policy", type=pathlib.Path, help="a policy file to use instead of the generated one")
    init.set_defaults(func=run_init)
    pol = sub.add_parser("policy", parents=[common], help="write the permission policy or README's access table")
    pol.add_argument("-o", "--output", type=pathlib.Path, help="policy file to write (default: stdout)")
    pol.add_argument("--readme", type=pathlib.Path, help="regenerate the access table in this README instead")
    pol.set_defaults(func=run_policy)


def run_policy(args: argparse.Namespace) -> int:
    from nora_ros.interface import access
    from nora_ros.security import policy

    if args.readme:
        args.readme.write_text(access.update_readme(args.readme.read_text()))
        print(f"wrote {args.readme}", file=sys.stderr)
        return 0
    text = policy.render(args.namespace, args.robot_name)
    if args.output:
        args.output.write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def run_init(args: argparse.Namespace) -> int:
    from nora_ros.interface import access
    from nora_ros.security import keystore, policy

    env = dict(os.environ)
    if args.domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(args.domain_id)
    domain = keystore.domain_id(env)
    roles = tuple(args.roles or access.ROLE_NAMES)
    for name in roles:
        access.role(name)  # unknown names fail before anything is made
    ks = args.keystore.resolve()
    ks.mkdir(parents=True, exist_ok=True)
    policy_file = args.policy.resolve() if args.policy else ks / keystore.POLICY_NAME
    if not args.policy:
        policy_file.write_text(policy.render(args.namespace, args.robot_name))
    print(f"keystore {ks} for ROS_DOMAIN_ID {domain}; policy {policy_file}", file=sys.stderr)
    keystore.run(keystore.plan(ks, policy_file, roles), env, echo=lambda line: print(line, file=sys.stderr))
    print(f"done: enclaves {', '.join(access.role(r).enclave for r in roles)}\n"
          f"use: ros2 launch nora_ros sim.launch.py secure:=true keystore:={ks}\n"
          f"operator terminals: export ROS_SECURITY_KEYSTORE={ks} ROS_SECURITY_ENABLE=true "
          f"ROS_SECURITY_STRATEGY=Enforce ROS_SECURITY_ENCLAVE_OVERRIDE=/nora/operator", file=sys.stderr)
    return 0
