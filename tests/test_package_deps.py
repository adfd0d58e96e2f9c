"""Every third-party import of a package's modules is declared in its package.xml as a rosdep
key, so `rosdep install --from-paths src` installs what the nodes import (robot PC)."""

import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGES = sorted(p.name for p in SRC.iterdir() if (p / "package.xml").is_file())

# Import name -> rosdep key. The keys were checked against ros/rosdistro (rosdep/base.yaml,
# rosdep/python.yaml and jazzy/distribution.yaml for the ROS packages), 2026-08.
ROSDEP_KEYS = {
    "rclpy": "rclpy",
    "rcl_interfaces": "rcl_interfaces",
    "lifecycle_msgs": "lifecycle_msgs",
    "diagnostic_msgs": "diagnostic_msgs",
    "sensor_msgs": "sensor_msgs",
    "geometry_msgs": "geometry_msgs",
    "std_msgs": "std_msgs",
    "builtin_interfaces": "builtin_interfaces",
    "numpy": "python3-numpy",
    "yaml": "python3-yaml",
    "cv2": "python3-opencv",
    "scipy": "python3-scipy",
    "evdev": "python3-evdev",
    "tqdm": "python3-tqdm",
    "matplotlib": "python3-matplotlib",
    "torch": "python3-torch",
    "rosbags": "python3-rosbags-pip",
    "mujoco": "python3-mujoco-pip",
    "tensorboard": "python3-tensorboard-pip",
    "pyrealsense2": "python3-pyrealsense2-pip",
    "websockets": "python3-websockets",
    "msgpack": "python3-msgpack",
}
# No rosdep key exists: scripts/requirements-robot.txt installs them (and package.xml says so).
NO_KEY = {"arx5_interface": "arx5-interface", "safetensors": "safetensors"}
# Imported only for a feature a robot PC does not run; not a dependency on purpose.
OPTIONAL = {
    ("arx_x5_driver", "habc_sim"): "backend: sim",
    ("habc_control", "habc_sim"): "the DDS-free collector on the simulated rig",
    # LeRobot (datasets, policies) and what its policies import: an optional extra of a training
    # machine, never on a robot PC (no rosdep key).
    ("habc_trainer", "lerobot"): "LeRobotDataset export / import, LeRobot policies",
    ("habc_trainer", "transformers"): "LeRobot's VLA policies",
    ("habc_trainer", "tokenizers"): "LeRobot's VLA policies",
}


def _guarded(tree: ast.AST) -> set[int]:
    """Line numbers of imports inside `try: ... except ImportError`: optional by construction."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
            for h in node.handlers
        ):
            for inner in node.body:
                lines |= {n.lineno for n in ast.walk(inner) if hasattr(n, "lineno")}
    return lines


def imports(package: str) -> dict[str, str]:
    """Top-level third-party names a package's modules import -> one file importing it."""
    found: dict[str, str] = {}
    for path in sorted((SRC / package / package).rglob("*.py")):
        tree = ast.parse(path.read_text())
        guarded = _guarded(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            if node.lineno in guarded:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != package:
                    found.setdefault(top, path.name)
    return found


def declared(package: str) -> set[str]:
    root = ET.parse(SRC / package / "package.xml").getroot()
    tags = ("depend", "exec_depend", "build_depend", "build_export_depend")
    return {e.text.strip() for tag in tags for e in root.iter(tag)}


@pytest.mark.parametrize("package", [p for p in PACKAGES if (SRC / p / "setup.cfg").is_file()])
def test_every_import_is_a_declared_rosdep_key(package):
    deps, xml_text = declared(package), (SRC / package / "package.xml").read_text()
    requirements = (ROOT / "scripts" / "requirements-robot.txt").read_text()
    missing = []
    for name, where in imports(package).items():
        if (package, name) in OPTIONAL:
            continue
        if name in PACKAGES:  # a workspace package: its name is its key
            key = name
        elif name in NO_KEY:
            assert name in xml_text, f"{package}/package.xml: say that {name} has no rosdep key"
            assert re.search(rf"^{NO_KEY[name]}\b", requirements, re.M), name
            continue
        else:
            assert name in ROSDEP_KEYS, f"{package}: {where} imports {name}: add its rosdep key"
            key = ROSDEP_KEYS[name]
        if key not in deps:
            missing.append(f"{key} ({where} imports {name})")
    assert not missing, f"{package}/package.xml does not declare: {', '.join(missing)}"


def test_the_guard_and_the_scan_see_what_they_should():
    # habc_core's bag reader takes zstandard / lz4 if present (guarded); torch never leaks in
    assert "zstandard" not in imports("habc_core")
    assert "torch" in imports("habc_trainer") and "torch" not in imports("habc_core")
    assert "rcl_interfaces" in imports("arx_x5_driver")
