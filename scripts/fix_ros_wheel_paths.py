"""Rewrite build-machine paths baked into the ROS 2 PyPI wheels' CMake files.

The ros-jazzy-* wheels were built under /opt/python/cp311-cp311; their exported CMake configs
name that interpreter's include dir and its numpy headers. colcon builds of our interface package
fail unless those point at this venv's interpreter and numpy. Idempotent.
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

import numpy

BUILD_PY_INCLUDE = "/opt/python/cp311-cp311/include/python3.11"
BUILD_NUMPY_INCLUDE = "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include"


def main(venv: Path) -> int:
    py_include = sysconfig.get_paths()["include"]
    np_include = numpy.get_include()
    changed = 0
    for cmake_file in (venv / "share").glob("*/cmake/*.cmake"):
        text = cmake_file.read_text()
        if BUILD_PY_INCLUDE not in text and BUILD_NUMPY_INCLUDE not in text:
            continue
        text = text.replace(BUILD_NUMPY_INCLUDE, np_include).replace(BUILD_PY_INCLUDE, py_include)
        cmake_file.write_text(text)
        changed += 1
    print(f"[bootstrap] rewrote build paths in {changed} CMake files", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: fix_ros_wheel_paths.py VENV_DIR")
    sys.exit(main(Path(sys.argv[1])))
