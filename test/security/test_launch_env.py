"""Discovery scope and SROS2 environment the launch files set (no ROS): localhost by default,
Humble's older variable, the domain-0 warning, the keystore checks; and the launch files use it."""

from __future__ import annotations

import ast
import pathlib

import pytest

from nora_ros.errors import ConfigurationError
from nora_ros.security import keystore
from nora_ros.security.discovery import discovery
from nora_ros.security.launch_env import graph_setup

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("distro, range_, env", [
    ("jazzy", "LOCALHOST", {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}),
    ("jazzy", "subnet", {"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}),
    ("humble", "LOCALHOST", {"ROS_LOCALHOST_ONLY": "1"}),
    ("humble", "SUBNET", {"ROS_LOCALHOST_ONLY": "0"}),
    ("humble", "SYSTEM_DEFAULT", {}),
])
def test_discovery_variables_per_distribution(distro, range_, env):
    assert discovery(range_, distro=distro, domain_id="7").env == env


def test_static_peers_on_jazzy_and_refused_on_humble():
    d = discovery("LOCALHOST", "10.0.0.5, gpu-ws", distro="jazzy", domain_id="7")
    assert d.env == {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_STATIC_PEERS": "10.0.0.5;gpu-ws"}
    h = discovery("LOCALHOST", "10.0.0.5", distro="humble", domain_id="7")
    assert "ROS_STATIC_PEERS" not in h.env and any("Iron or newer" in w for w in h.warnings)


@pytest.mark.parametrize("range_, peers, domain, warned", [
    ("SUBNET", "", "", True), ("SUBNET", "", "0", True), ("LOCALHOST", "10.0.0.5", "0", True),
    ("SUBNET", "", "42", False), ("LOCALHOST", "", "0", False), ("OFF", "10.0.0.5", "0", False),
])
def test_domain_zero_with_a_non_local_range_warns(range_, peers, domain, warned):
    d = discovery(range_, peers, distro="jazzy", domain_id=domain)
    assert any("ROS_DOMAIN_ID is 0" in w for w in d.warnings) == warned


def test_a_bad_range_is_refused():
    with pytest.raises(ConfigurationError, match="LOCALHOST"):
        discovery("LAN")


def _fake_keystore(root: pathlib.Path, roles):
    for r in roles:
        folder = root / "enclaves" / "nora" / r
        folder.mkdir(parents=True)
        for f in keystore.ENCLAVE_FILES:
            (folder / f).write_text("x")


def test_secure_needs_a_keystore_with_every_enclave(tmp_path):
    with pytest.raises(ConfigurationError, match="keystore:=PATH"):
        graph_setup(discovery_range="LOCALHOST", secure="true", roles=("safety",), environ={})
    _fake_keystore(tmp_path, ["safety", "policy"])
    with pytest.raises(ConfigurationError, match="no complete enclave /nora/sim"):
        graph_setup(discovery_range="LOCALHOST", secure="true", keystore=str(tmp_path),
                    roles=("safety", "sim"), environ={})
    setup = graph_setup(discovery_range="LOCALHOST", secure="true", keystore=str(tmp_path),
                        roles=("safety", "policy"), environ={"ROS_DISTRO": "jazzy"})
    assert setup.env == {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_SECURITY_ENABLE": "true",
                         "ROS_SECURITY_STRATEGY": "Enforce", "ROS_SECURITY_KEYSTORE": str(tmp_path.resolve())}


def test_init_plans_only_ros2_security_commands(tmp_path):
    steps = keystore.plan(tmp_path / "ks", tmp_path / "policy.xml", ("safety", "operator"))
    assert [s.argv[:3] for s in steps] == [("ros2", "security", "create_keystore")] + [
        ("ros2", "security", "create_enclave"), ("ros2", "security", "create_permission")] * 2
    assert steps[-1].argv[-2:] == ("/nora/operator", str(tmp_path / "policy.xml"))
    _fake_keystore(tmp_path / "ks", [])
    for f in ("public/ca.cert.pem", "private/ca.key.pem", "enclaves/governance.p7s"):
        (tmp_path / "ks" / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "ks" / f).write_text("x")
    assert keystore.plan(tmp_path / "ks", tmp_path / "p.xml", ("safety",))[0].argv[2] == "create_enclave"


def test_init_stops_at_the_first_failing_command(tmp_path):
    import subprocess

    ran = []

    def runner(argv, **kw):
        ran.append(argv)
        return subprocess.CompletedProcess(argv, 1 if argv[2] == "create_permission" else 0, "", "bad policy")

    with pytest.raises(ConfigurationError, match="bad policy"):
        keystore.run(keystore.plan(tmp_path, tmp_path / "p.xml", ("safety", "policy")), {}, echo=lambda s: None,
                     runner=runner)
    assert [a[2] for a in ran] == ["create_keystore", "create_enclave", "create_permission"]


@pytest.mark.parametrize("name, enclaves", [
    ("sim.launch.py", {"sim", "policy", "safety", "supervisor", "console"}),
    ("widowx.launch.py", {"camera", "policy", "safety", "supervisor", "console"}),
])
def test_launch_files_start_each_node_in_its_enclave(name, enclaves):
    text = (REPO / "launch" / name).read_text()
    tree = ast.parse(text)
    seen = set()
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "Node":
            kw = {k.arg: k.value for k in call.keywords}
            args = ast.unparse(kw["ros_arguments"])
            role = ast.literal_eval(kw["executable"]).removesuffix("_node")
            assert f"'--enclave', '/nora/{role}'" in args
            seen.add(role)
    assert seen == enclaves
    assert "graph_setup" in text and "OpaqueFunction(function=_graph)" in text


@pytest.mark.parametrize("name", ["sim.launch.py", "replay.launch.py", "widowx.launch.py"])
def test_launch_files_default_to_localhost_discovery(name):
    tree = ast.parse((REPO / "launch" / name).read_text())
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "DeclareLaunchArgument":
            if ast.literal_eval(call.args[0]) == "discovery_range":
                kw = {k.arg: k.value for k in call.keywords}
                assert ast.literal_eval(kw["default_value"]) == "LOCALHOST"
                return
    pytest.fail(f"{name} declares no discovery_range")


def test_widowx_runs_the_driver_in_its_enclave_only_when_secure():
    text = (REPO / "launch" / "widowx.launch.py").read_text()
    assert 'SetEnvironmentVariable("ROS_SECURITY_ENCLAVE_OVERRIDE", "/nora/driver", condition=IfCondition(secure))' in text
    assert "GroupAction([driver_enclave, interbotix_driver], scoped=True)" in text
