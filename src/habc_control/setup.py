import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "habc_control"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        (os.path.join("share", PACKAGE, "launch"), glob("../../launch/*.launch.py")),
        (os.path.join("share", PACKAGE, "config"), glob("../../config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="habc-rig maintainers",
    maintainer_email="habc-rig@example.com",
    description=(
        "Rig control: cameras, pedal takeover, command mux, policy chunk execution, "
        "episode recording, launch."
    ),
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "collect = habc_control.collect:main",
            "teleop_node = habc_control.teleop_node:main",
            "mux_node = habc_control.mux_node:main",
            "policy_node = habc_control.policy_node:main",
            "episode_manager_node = habc_control.episode_manager_node:main",
            "recorder_node = habc_control.recorder_node:main",
            "camera_node = habc_control.camera_node:main",
            "habc-rollout = habc_control.runner:main",
        ],
    },
)
