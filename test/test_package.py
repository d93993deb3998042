"""The ROS 2 package, checked without ROS: package.xml, CMakeLists.txt, msg files, launch files,
parameter files, node executables, and that every module compiles.

What colcon and `ros2 launch` would reject on a robot should fail here first.
"""

from __future__ import annotations

import ast
import os
import pathlib
import py_compile
import re
import xml.etree.ElementTree as ET

import pytest
from ros_msg_standins import PRIMITIVES, STANDARD, parse_msg, repo_specs

from nora_ros.interface import param_files
from nora_ros.interface.node_specs import NODES
from nora_ros.interface.node_specs import node_params as params_of
from nora_ros.interface.params import check_values

REPO = pathlib.Path(__file__).resolve().parents[1]


def _needs_policy_backend():
    """The policy node's parameters take NoraConfig's defaults (one place); skip clearly while
    nora_ros/policy/nora/config.py is not in this checkout."""
    pytest.importorskip("nora_ros.policy.nora.config", reason="nora_ros/policy/nora/config.py (NoraConfig, the policy node's "
                        "parameter defaults) is not in this checkout")


MSG_NAMES = ("ActionChunk", "EndEffectorCommand", "SafetyStatus", "TrialResult", "TrialStatus")
SCRIPTS = tuple(NODES)


# --------------------------------------------------------------------------- package.xml


@pytest.fixture(scope="module")
def package():
    return ET.parse(REPO / "package.xml").getroot()


def _deps(package, *tags):
    return {el.text.strip() for tag in tags for el in package.findall(tag)}


def test_package_xml_is_format_3_ament_cmake(package):
    assert package.tag == "package" and package.get("format") == "3"
    assert package.findtext("name") == "nora_ros"
    assert re.fullmatch(r"\d+\.\d+\.\d+", package.findtext("version"))
    assert package.findtext("description").strip()
    assert package.findtext("license").strip()
    assert package.find("export/build_type").text == "ament_cmake"
    assert package.findtext("member_of_group") == "rosidl_interface_packages"


def test_maintainer_email_parses_as_a_real_address(package):
    maintainers = package.findall("maintainer")
    assert maintainers
    for m in maintainers:
        email = m.get("email")
        # What catkin_pkg's validation accepts, with a real top-level domain (the build rejects a@b.c).
        assert re.fullmatch(r"[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}", email), email
        assert m.text.strip()


def test_package_xml_passes_catkin_pkg_validation():
    """What colcon/ament run on package.xml (catkin_pkg), where it is installed (any ROS machine;
    pip install catkin_pkg elsewhere)."""
    catkin = pytest.importorskip("catkin_pkg.package", reason="catkin_pkg (ROS package.xml parser) is not installed")
    pkg = catkin.parse_package(str(REPO / "package.xml"))
    pkg.validate()
    assert pkg.package_format == 3 and pkg.get_build_type() == "ament_cmake"
    assert [g.name for g in pkg.member_of_groups] == ["rosidl_interface_packages"]


def test_package_xml_declares_the_required_dependencies(package):
    build = _deps(package, "buildtool_depend")
    assert {"ament_cmake", "ament_cmake_python", "rosidl_default_generators"} <= build
    run = _deps(package, "depend", "exec_depend")
    required = {"rclpy", "std_msgs", "sensor_msgs", "geometry_msgs", "std_srvs", "diagnostic_msgs", "cv_bridge",
                "launch_ros", "rosidl_default_runtime", "interbotix_xs_modules", "trajectory_msgs",
                "python3-numpy", "python3-scipy", "python3-yaml", "python3-opencv"}
    assert required <= run, required - run
    # Message packages our .msg files use are build dependencies too (<depend> covers both).
    assert {"std_msgs", "geometry_msgs", "builtin_interfaces"} <= _deps(package, "depend")


# --------------------------------------------------------------------------- CMakeLists.txt


@pytest.fixture(scope="module")
def cmake():
    text = (REPO / "CMakeLists.txt").read_text()
    return re.sub(r"#[^\n]*", "", text)  # without comments


def _cmake_call(cmake: str, name: str) -> list[str]:
    return re.findall(rf"{name}\s*\((.*?)\)", cmake, flags=re.S)


def test_cmake_generates_every_message(cmake):
    (args,) = _cmake_call(cmake, "rosidl_generate_interfaces")
    listed = set(re.findall(r'"msg/(\w+)\.msg"', args))
    on_disk = {p.stem for p in (REPO / "msg").glob("*.msg")}
    assert listed == on_disk == set(MSG_NAMES)
    assert "DEPENDENCIES" in args and "std_msgs" in args and "geometry_msgs" in args
    services = set(re.findall(r'"srv/(\w+)\.srv"', args))
    assert services == {p.stem for p in (REPO / "srv").glob("*.srv")} == {"SelectModel", "StartTrial"}


def test_cmake_installs_sources_beside_the_generated_package(cmake):
    # DESIGN.md section 3 (verified on Jazzy): ament_python_install_package(nora_ros) clashes.
    assert "ament_python_install_package" not in cmake
    gen = cmake.index("rosidl_generate_interfaces")
    install = re.search(r"install\(DIRECTORY nora_ros/\s+DESTINATION \$\{PYTHON_INSTALL_DIR\}/(\$\{PROJECT_NAME\}|nora_ros)"
                        r"\s+PATTERN \"__pycache__\" EXCLUDE", cmake)
    assert install, "install(DIRECTORY nora_ros/ DESTINATION ${PYTHON_INSTALL_DIR}/nora_ros ...) is missing"
    assert install.start() > gen
    assert re.search(r"find_package\(ament_cmake_python REQUIRED\)", cmake)  # defines PYTHON_INSTALL_DIR
    assert cmake.rstrip().endswith("ament_package()")


def test_cmake_installs_every_script_into_lib(cmake):
    programs = [a for a in _cmake_call(cmake, "install") if a.strip().startswith("PROGRAMS")]
    assert len(programs) == 1
    listed = set(re.findall(r"scripts/(\w+)", programs[0]))
    assert "DESTINATION lib/${PROJECT_NAME}" in programs[0]
    # Node executables are the suffix-less files (scripts/ also holds setup.sh for pip users).
    on_disk = {p.name for p in (REPO / "scripts").iterdir() if p.is_file() and not p.suffix}
    assert listed == on_disk == set(SCRIPTS)


def test_cmake_installs_launch_and_config(cmake):
    dirs = [a for a in _cmake_call(cmake, "install") if a.strip().startswith("DIRECTORY launch")]
    assert dirs and "config" in dirs[0] and "DESTINATION share/${PROJECT_NAME}" in dirs[0]


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_are_executable_wrappers_of_the_node_main(name):
    path = REPO / "scripts" / name
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env python3\n")
    assert os.access(path, os.X_OK), f"{path} is not executable (git update-index --chmod=+x)"
    assert f"from nora_ros.nodes.{name} import main" in text
    module = REPO / "nora_ros" / "nodes" / f"{name}.py"
    assert module.exists(), f"{module} is missing"
    tree = ast.parse(module.read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body), f"{module} has no main()"


# --------------------------------------------------------------------------- every module compiles


def test_every_python_file_compiles(tmp_path):
    files = sorted((REPO / "nora_ros").rglob("*.py")) + sorted((REPO / "launch").glob("*.py"))
    files += [REPO / "scripts" / s for s in SCRIPTS]
    assert len(files) > 20
    for i, path in enumerate(files):
        py_compile.compile(str(path), cfile=str(tmp_path / f"{i}.pyc"), doraise=True)


# --------------------------------------------------------------------------- messages


@pytest.fixture(scope="module")
def specs():
    return repo_specs()


def test_msg_files_parse_with_known_types(specs):
    known = set(STANDARD) | set(specs) | {"std_msgs/Header", "builtin_interfaces/Time", "geometry_msgs/Twist"}
    assert set(specs) == {f"nora_ros/{n}" for n in MSG_NAMES}
    for name, spec in specs.items():
        assert spec.fields, name
        for f in spec.fields:
            assert f.type in PRIMITIVES or f.type in known, f"{name}.{f.name}: unknown type {f.type}"


def test_msgs_that_carry_time_have_a_header_first(specs):
    for name, spec in specs.items():
        assert spec.fields[0].type == "std_msgs/Header" and spec.fields[0].name == "header", name


def test_every_field_and_constant_group_is_commented(specs):
    for name, spec in specs.items():
        paragraph_has_comment = False
        for raw in spec.lines:
            line = raw.strip()
            if not line:
                paragraph_has_comment = False
            elif line.startswith("#"):
                paragraph_has_comment = True
            else:
                assert paragraph_has_comment, f"{name}: '{line}' has no comment above it"


def test_constants_are_typed_and_distinct(specs):
    trial = {c.name: c for c in specs["nora_ros/TrialStatus"].constants}
    assert [trial[n].value for n in ("IDLE", "RESETTING", "RUNNING", "AWAITING_SCORE", "DONE", "ABORTED")] == [
        0, 1, 2, 3, 4, 5]
    assert all(c.type == "uint8" for c in trial.values())
    scores = {c.name: c.value for c in specs["nora_ros/TrialResult"].constants}
    assert scores == {"UNSCORED": 0, "SUCCESS": 1, "FAILURE": 2, "PARTIAL": 3, "ABORT": 4}
    assert {c.name: c.value for c in specs["nora_ros/ActionChunk"].constants} == {"ACTION_DIM": 7}
    limits = specs["nora_ros/SafetyStatus"].constants
    assert all(c.type == "string" and c.name == "LIMIT_" + c.value.upper() for c in limits)


def test_safety_limit_constants_cover_every_limit_of_the_filter(specs):
    status = pytest.importorskip("nora_ros.safety.status")
    constants = {c.value for c in specs["nora_ros/SafetyStatus"].constants}
    assert {lim.value for lim in status.Limit} <= constants


def test_msg_files_pass_the_real_rosidl_parser():
    """rosidl's own .msg parser (rosidl_adapter, the first step of the build) where it is installed:
    a ROS machine, or Debian's python3-rosidl run with /usr/bin/python3."""
    parser = pytest.importorskip("rosidl_adapter.parser", reason="rosidl_adapter (ROS 2's .msg parser) is not installed")
    for name in MSG_NAMES:
        spec = parser.parse_message_file("nora_ros", str(REPO / "msg" / f"{name}.msg"))
        ours = repo_specs()[f"nora_ros/{name}"]
        assert [f.name for f in spec.fields] == [f.name for f in ours.fields]
        assert {c.name: c.value for c in spec.constants} == {c.name: c.value for c in ours.constants}


def test_srv_files_pass_the_real_rosidl_parser():
    parser = pytest.importorskip("rosidl_adapter.parser", reason="rosidl_adapter (ROS 2's .msg parser) is not installed")
    from ros_msg_standins import repo_service_specs

    for name, (request, response) in repo_service_specs().items():
        spec = parser.parse_service_file("nora_ros", str(REPO / "srv" / f"{name.split('/')[1]}.srv"))
        assert [f.name for f in spec.request.fields] == [f.name for f in request.fields]
        assert [f.name for f in spec.response.fields] == [f.name for f in response.fields]


def test_msg_parser_rejects_what_rosidl_rejects():
    with pytest.raises(ValueError, match="field name"):
        parse_msg("float64 Gripper", "x/Y")
    with pytest.raises(ValueError, match="out of range"):
        parse_msg("uint8 BIG=300", "x/Y")
    with pytest.raises(ValueError, match="constant name"):
        parse_msg("uint8 lower=1", "x/Y")


# --------------------------------------------------------------------------- launch files


DOCUMENTED_ARGUMENTS = {
    "widowx.launch.py": {"robot_model": "wx250s", "use_sim": "false", "driver": "true", "camera_source": None,
                         "model": None, "dry_run": "false", "params_file": None},
    "sim.launch.py": {"model": None, "dry_run": "false", "params_file": None, "task": None},
    "replay.launch.py": {"bag": "", "model": None, "params_file": None, "rate": "1.0"},
}


def _const(node):
    return node.value if isinstance(node, ast.Constant) else None


def _launch_tree(name):
    return ast.parse((REPO / "launch" / name).read_text())


def _calls(tree, func_name):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Name) and f.id == func_name) or (isinstance(f, ast.Attribute) and f.attr == func_name):
                yield node


def _declared(tree) -> dict[str, dict]:
    out = {}
    for call in _calls(tree, "DeclareLaunchArgument"):
        kw = {k.arg: k.value for k in call.keywords}
        out[_const(call.args[0])] = {"default": _const(kw["default_value"]) if "default_value" in kw else None,
                                     "description": _const(kw.get("description")) or "",
                                     "has_default": "default_value" in kw}
    return out


@pytest.mark.parametrize("name", sorted(DOCUMENTED_ARGUMENTS))
def test_launch_file_declares_the_documented_arguments_with_descriptions(name):
    tree = _launch_tree(name)
    declared = _declared(tree)
    for arg, default in DOCUMENTED_ARGUMENTS[name].items():
        assert arg in declared, f"{name} does not declare '{arg}'"
        if default is not None:
            assert declared[arg]["default"] == default, f"{name}: {arg} default"
    for arg, info in declared.items():
        assert len(info["description"]) > 15, f"{name}: argument '{arg}' needs a description"
        assert info["has_default"] or arg == "bag", f"{name}: '{arg}' has no default"
    used = {_const(c.args[0]) for c in _calls(tree, "LaunchConfiguration")}
    assert used <= set(declared), f"{name} uses undeclared arguments {used - set(declared)}"


@pytest.mark.parametrize("name", sorted(DOCUMENTED_ARGUMENTS))
def test_launch_file_references_only_installed_files_and_declared_parameters(name):
    tree = _launch_tree(name)
    installed_dirs = {"launch", "config"}
    for call in _calls(tree, "PathJoinSubstitution"):
        parts = call.args[0].elts
        if parts and isinstance(parts[0], ast.Call) and _const(parts[0].args[0]) == "nora_ros":
            rel = [_const(p) for p in parts[1:]]
            assert rel[0] in installed_dirs, f"{name} references {rel}, which CMakeLists.txt does not install"
            assert (REPO.joinpath(*rel)).is_file(), f"{name} references {rel}, which does not exist"
    nodes = list(_calls(tree, "Node"))
    assert nodes
    for node in nodes:
        kw = {k.arg: k.value for k in node.keywords}
        if _const(kw["package"]) != "nora_ros":
            continue
        executable = _const(kw["executable"])
        assert executable in SCRIPTS, f"{name} runs {executable}, which is not an installed script"
        if executable == "policy_node":
            _needs_policy_backend()
        assert _const(kw["name"]) == executable
        declared = {p.name for p in params_of(executable)} | {"use_sim_time"}
        for item in kw["parameters"].elts:
            if isinstance(item, ast.Dict):
                keys = {_const(k) for k in item.keys}
                assert keys <= declared, f"{name}: {executable} gets undeclared parameters {keys - declared}"


def test_widowx_launch_includes_the_interbotix_driver_unless_told_not_to():
    tree = _launch_tree("widowx.launch.py")
    text = (REPO / "launch" / "widowx.launch.py").read_text()
    (include,) = list(_calls(tree, "IncludeLaunchDescription"))
    assert "xsarm_control.launch.py" in ast.unparse(include) and "interbotix_xsarm_control" in ast.unparse(include)
    cond = {k.arg: k.value for k in include.keywords}["condition"]
    assert "IfCondition" in ast.unparse(cond) and "driver" in text
    args = ast.unparse({k.arg: k.value for k in include.keywords}["launch_arguments"])
    for arg in ("robot_model", "use_sim"):
        assert f"'{arg}'" in args


def test_sim_launch_needs_no_interbotix_and_runs_all_nodes():
    text = (REPO / "launch" / "sim.launch.py").read_text()
    code = re.sub(r'""".*?"""', "", text, flags=re.S)
    assert "interbotix" not in code
    executables = {_const({k.arg: k.value for k in n.keywords}["executable"]) for n in _calls(ast.parse(text), "Node")}
    assert executables == {"sim_node", "policy_node", "safety_node", "supervisor_node", "console_node"}


def test_replay_launch_uses_sim_time_and_dry_run():
    tree = _launch_tree("replay.launch.py")
    for node in _calls(tree, "Node"):
        params = ast.unparse({k.arg: k.value for k in node.keywords}["parameters"])
        assert "'use_sim_time': True" in params
        if "safety_node" in ast.unparse(node):
            assert "'dry_run': True" in params
    play = ast.unparse(next(_calls(tree, "ExecuteProcess")))
    assert "'bag', 'play'" in play and "'--clock'" in play


# --------------------------------------------------------------------------- parameter files


@pytest.mark.parametrize("name", ["widowx.yaml", "sim.yaml"])
def test_parameter_file_sets_only_declared_parameters_with_valid_values(name):
    _needs_policy_backend()
    header, overrides = param_files.read_yaml((REPO / "config" / name).read_text())
    assert header
    for node, values in overrides.items():
        check_values(params_of(node), values)


@pytest.mark.parametrize("name", ["widowx.yaml", "sim.yaml"])
def test_parameter_file_lists_and_comments_every_parameter(name):
    """Every parameter of each node is in the file, set or commented out at the code default, with
    a comment above it. After a config dataclass gains a field, regenerate with
    `python -m nora_ros.interface.param_files config/*.yaml` (keeps the values set)."""
    _needs_policy_backend()
    text = (REPO / "config" / name).read_text()
    _, overrides = param_files.read_yaml(text)
    sections = re.split(r"^/\*\*/(\w+):\n", text, flags=re.M)[1:]
    assert [sections[i] for i in range(0, len(sections), 2)] == list(overrides)
    for node, body in zip(sections[0::2], sections[1::2], strict=True):
        lines = body.splitlines()
        for spec in params_of(node):
            leaf = spec.name.rsplit(".", 1)[-1]
            found = [i for i, line in enumerate(lines) if re.match(rf"\s*(# )?{re.escape(leaf)}: ", line)]
            assert found, f"config/{name}: {node}.{spec.name} is missing; run python -m nora_ros.interface.param_files config/{name}"
            assert lines[found[0] - 1].strip().startswith("#"), f"config/{name}: {node}.{spec.name} has no comment"


def test_parameter_files_cover_the_nodes_their_launch_files_start():
    _needs_policy_backend()
    for launch, yaml_name in (("widowx.launch.py", "widowx.yaml"), ("sim.launch.py", "sim.yaml")):
        _, overrides = param_files.read_yaml((REPO / "config" / yaml_name).read_text())
        started = {_const({k.arg: k.value for k in n.keywords}["executable"])
                   for n in _calls(_launch_tree(launch), "Node")}
        started = {e for e in started if e in NODES}
        assert started <= set(overrides), f"{yaml_name} lacks sections for {started - set(overrides)}"


def test_parameter_specs_reject_bad_values_with_a_reason():
    _needs_policy_backend()
    specs = {p.name: p for p in params_of("policy_node")}
    with pytest.raises(ValueError, match=r"control_rate_hz = 500.0 is outside \[1.0, 100.0\]"):
        specs["control_rate_hz"].check(500.0)
    with pytest.raises(ValueError, match="one of"):
        specs["variant"].check("nora-xl")
    with pytest.raises(ValueError, match="whole number"):
        specs["execute_steps"].check(1.5)
    with pytest.raises(ValueError, match="did you mean control_rate_hz"):
        check_values(params_of("policy_node"), {"control_rate": 5.0})
    assert specs["device"].to_component("") is None and specs["device"].to_component("cuda") == "cuda"


def test_every_parameter_has_a_description_and_a_valid_default():
    _needs_policy_backend()
    for node in NODES:
        specs = params_of(node)
        names = [s.name for s in specs]
        assert len(names) == len(set(names)), node
        for spec in specs:
            assert len(spec.description) > 10, f"{node}.{spec.name}"
            assert spec.check(spec.default) == spec.default


def test_setup_py_pins_the_transformers_versions_the_decoding_was_checked_on():
    """setup.py reads compat.TRANSFORMERS_ACCEPTED (pip's pin) and README's robot install line
    says the same range: a version outside it is refused at load anyway."""
    import re

    from nora_ros.policy.nora.compat import TRANSFORMERS_ACCEPTED

    setup = (REPO / "setup.py").read_text()
    assert 'f"transformers{TRANSFORMERS}"' in setup and "TRANSFORMERS_ACCEPTED" in setup
    readme_pin = re.search(r"'transformers([^']+)'", (REPO / "README.md").read_text()).group(1)
    assert readme_pin == TRANSFORMERS_ACCEPTED
