"""Which package may import what: a robot PC runs the driver and the nodes without torch, the
trainer runs where there is no ROS, and the contract needs neither."""

import subprocess
import sys

import pytest

# Imports every module of the packages with the blocked modules made unimportable; prints the
# modules that needed one of them.
_PROBE = """
import importlib, pkgutil, sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
bad = []
for pkg in sys.argv[2].split(","):
    for info in pkgutil.walk_packages(importlib.import_module(pkg).__path__, pkg + "."):
        try:
            importlib.import_module(info.name)
        except ImportError as exc:
            bad.append(f"{info.name}: {exc}")
print("\\n".join(bad))
"""


@pytest.mark.parametrize(
    ("packages", "blocked"),
    [
        ("habc_core", "torch,rclpy"),
        ("habc_sim", "torch,rclpy"),
        ("arx_x5_driver", "torch"),
        ("habc_control", "torch"),
        ("habc_trainer", "rclpy"),
    ],
)
def test_package_imports_without(packages, blocked):
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, blocked, packages],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    assert out.stdout.strip() == "", f"{packages} needs {blocked}:\n{out.stdout}"


def test_the_bag_converters_workers_do_not_import_scipy():
    # Every process of habc-convert's pool imports this chain, and scipy.spatial alone costs
    # 0.24 s of its start (habc_core.rotations imports it on first use of a conversion needing it).
    code = (
        "import sys, habc_trainer.convert_pool\n"
        "print(sorted(m for m in sys.modules if m.startswith('scipy')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]"
