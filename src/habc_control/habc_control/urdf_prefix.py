"""Prefix a URDF's link and joint names, so one model serves both arms (no ROS import).

The X5 URDF that arx5-interface ships names its joints `joint1` .. `joint6` and its root link
`base_link`; our JointStates name `left_joint1` .. and our poses use the frame `left_base_link`
(habc_core.contract), unique per arm so both arms share one TF tree. robot_state_publisher
matches JointState names against the URDF's joint names, and its `frame_prefix` parameter
prefixes only the frames (links), not the joints, so the URDF itself is rewritten: every link and
joint name and every reference to one (parent, child, mimic, transmission joints, gazebo
references).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

# A prefix must keep names valid ROS frame ids and URDF names.
_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def prefix_urdf(urdf: str, prefix: str) -> str:
    """`urdf` (XML text) with `prefix` put before every link and joint name and reference.

    A name referenced but not defined (a parent link missing from the model) is a ValueError
    naming it: robot_state_publisher would refuse the model later with a less direct message.
    """
    if not _PREFIX.match(prefix):
        raise ValueError(f"prefix: {prefix!r} is not a name (letters, digits, _; a letter first)")
    try:
        robot = ET.fromstring(urdf)
    except ET.ParseError as exc:
        raise ValueError(f"urdf: not valid XML ({exc})") from None
    if robot.tag != "robot":
        raise ValueError(f"urdf: the root element is <{robot.tag}>, expected <robot>")
    links = {e.get("name") for e in robot.findall("link")}
    joints = {e.get("name") for e in robot.findall("joint")}

    def renamed(kind: str, names: set[str | None], name: str | None) -> str:
        if name not in names:
            raise ValueError(f"urdf: {kind} {name!r} is referenced but not defined")
        return prefix + str(name)

    for link in robot.findall("link"):
        link.set("name", prefix + str(link.get("name")))
    for joint in robot.findall("joint"):
        joint.set("name", prefix + str(joint.get("name")))
        for tag in ("parent", "child"):
            for ref in joint.findall(tag):
                ref.set("link", renamed("link", links, ref.get("link")))
        for mimic in joint.findall("mimic"):
            mimic.set("joint", renamed("joint", joints, mimic.get("joint")))
    for joint in robot.findall("transmission/joint"):
        joint.set("name", renamed("joint", joints, joint.get("name")))
    for gazebo in robot.findall("gazebo"):
        ref = gazebo.get("reference")
        if ref is not None:
            gazebo.set("reference", renamed("link or joint", links | joints, ref))
    return ET.tostring(robot, encoding="unicode")
