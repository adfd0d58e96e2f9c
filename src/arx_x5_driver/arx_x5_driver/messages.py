"""Messages the arm driver (and the camera node's diagnostics) publish, built from plain values.

No node state here: each function turns what a core decided into one ROS message, so the node
files keep only the wiring.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from builtin_interfaces.msg import Time as TimeMsg
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import Image, JointState

from arx_x5_driver.diagnostics import Status
from arx_x5_driver.driver_core import Executed
from arx_x5_driver.safety import Measured
from habc_core.contract import base_frame, camera_frame, joint_names
from habc_core.rotations import quat_from_ee9
from habc_interfaces.msg import ArmCommand


def joint_state_msg(arm: str, m: Measured, stamp: TimeMsg) -> JointState:
    js = JointState()
    js.header.stamp = stamp
    js.header.frame_id = base_frame(arm)
    js.name = joint_names(arm)
    js.position = [float(v) for v in m.joints] + [float(m.gripper)]
    return js


def ee_pose_msg(arm: str, m: Measured, stamp: TimeMsg) -> PoseStamped:
    pose = PoseStamped()
    pose.header.stamp = stamp
    pose.header.frame_id = base_frame(arm)
    p = pose.pose.position
    p.x, p.y, p.z = (float(v) for v in m.ee[:3])
    o = pose.pose.orientation
    o.x, o.y, o.z, o.w = quat_from_ee9(m.ee)
    return pose


def executed_msg(arm: str, executed: Executed, stamp: TimeMsg) -> ArmCommand:
    """The command sent to the backend this tick, stamped with the tick (both arms alike)."""
    cmd = executed.command
    msg = ArmCommand()
    msg.header.stamp = stamp
    msg.header.frame_id = base_frame(arm)
    msg.mode = int(cmd.mode)
    msg.targets = [float(v) for v in cmd.targets]
    msg.gripper = float(cmd.gripper)
    msg.authority = int(cmd.authority)
    msg.model_index = int(executed.model_index)
    msg.safety = int(executed.flags)
    return msg


def expert_msg(arm: str, mode: int, part: np.ndarray, stamp: TimeMsg) -> ArmCommand:
    """The sim's scripted expert's target for one arm (targets + gripper), as the human's."""
    cmd = ArmCommand()
    cmd.header.stamp = stamp
    cmd.header.frame_id = base_frame(arm)
    cmd.mode = int(mode)
    cmd.targets = [float(v) for v in part[:-1]]
    cmd.gripper = float(part[-1])
    cmd.authority = 1  # HUMAN: the simulated operator's hands
    cmd.model_index = -1
    return cmd


def image_msg(rgb: np.ndarray, stamp: TimeMsg, cam: str) -> Image:
    img = Image()
    img.header.stamp = stamp
    img.header.frame_id = camera_frame(cam)
    img.height, img.width = int(rgb.shape[0]), int(rgb.shape[1])
    img.encoding = "rgb8"
    img.step = int(rgb.shape[1]) * 3
    img.data = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    return img


def diagnostic_array(statuses: Iterable[Status], stamp: TimeMsg) -> DiagnosticArray:
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    for s in statuses:
        msg.status.append(
            DiagnosticStatus(
                level=bytes([s.level]),
                name=s.name,
                message=s.message,
                hardware_id=s.hardware_id,
                values=[KeyValue(key=k, value=v) for k, v in s.values],
            )
        )
    return msg
