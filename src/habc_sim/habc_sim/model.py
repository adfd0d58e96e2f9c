"""Builds the MuJoCo model of the bimanual ARX X5 rig: table, two arms with grippers, cameras,
and the pouch-task props.

Arm kinematics and inertias come from the X5 URDF shipped in the arx5-interface wheel (the same
file `Arx5Solver` reads, so MuJoCo's `eef_link` matches the SDK's FK); joint limits, torque limits
and gains from the SDK's RobotConfig / ControllerConfig. Collision shapes (capsules, boxes) and the
parallel gripper are ours: the wheel has no meshes and no fingers. docs/sim-rig.md lists where
every number comes from.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import mujoco
import numpy as np

from habc_sim.config import SceneConfig

ARMS: tuple[str, ...] = ("left", "right")
JOINTS: tuple[str, ...] = tuple(f"joint{i}" for i in range(1, 7))
GRIPPER_STROKE = 0.088  # m, SDK RobotConfig.gripper_width for X5
FINGER_TRAVEL = GRIPPER_STROKE / 2.0
EEF_OFFSET = 0.145  # m, URDF gripper_fixed_joint: eef_link past link6
# Collision groups: each arm its own bit so the arms collide with each other but not with
# themselves (MuJoCo collides a pair when contype & conaffinity overlap in either direction).
_OBJ_BIT, _BIT = 1, {"left": 2, "right": 4}
# Arm link collision capsules (link frame, from the URDF joint origins: each segment runs from a
# link's origin towards its child's joint origin), radius in m.
_LINK_CAPSULES: dict[str, tuple[tuple[float, ...], float]] = {
    "link1": ((0.0, 0.0, 0.0, 0.02, 0.0, 0.04), 0.035),
    "link2": ((0.0, 0.0, 0.0, -0.264, 0.0, 0.0), 0.03),
    "link3": ((0.0, 0.0, 0.0, 0.245, 0.0, -0.056), 0.025),
    "link4": ((0.0, 0.0, 0.0, 0.06575, -0.001, -0.0825), 0.025),
    "link5": ((0.0, 0.0, 0.0, 0.02845, 0.0, 0.0825), 0.025),
    "link6": ((0.0, 0.0, 0.0, 0.055, 0.0, 0.0), 0.03),
}


@dataclass(frozen=True)
class SdkArmLimits:
    """What the ARX SDK says about the X5 (RobotConfigFactory / ControllerConfigFactory)."""

    urdf_path: str
    joint_pos_min: np.ndarray
    joint_pos_max: np.ndarray
    joint_torque_max: np.ndarray
    default_kp: np.ndarray
    gripper_width: float


@contextlib.contextmanager
def quiet_native_output() -> Iterator[None]:
    """Silence stdout/stderr at the file-descriptor level (the SDK's C++ and import-time prints
    about library paths and KDL segments), so CLI output stays readable. Python exceptions
    still propagate; the descriptors are restored in any case."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


@cache
def sdk_limits() -> SdkArmLimits:
    with quiet_native_output():
        import arx5_interface as arx5  # the SDK's model files, read once per build

        robot = arx5.RobotConfigFactory.get_instance().get_config("X5")
        ctrl = arx5.ControllerConfigFactory.get_instance().get_config(
            "joint_controller", robot.joint_dof
        )
    return SdkArmLimits(
        urdf_path=str(robot.urdf_path),
        joint_pos_min=np.asarray(robot.joint_pos_min, dtype=np.float64).copy(),
        joint_pos_max=np.asarray(robot.joint_pos_max, dtype=np.float64).copy(),
        joint_torque_max=np.asarray(robot.joint_torque_max, dtype=np.float64).copy(),
        default_kp=np.asarray(ctrl.default_kp, dtype=np.float64).copy(),
        gripper_width=float(robot.gripper_width),
    )


def _urdf_without_meshes(urdf_path: str) -> str:
    root = ET.parse(urdf_path).getroot()
    for link in root.findall("link"):
        for tag in ("visual", "collision"):
            for el in link.findall(tag):
                link.remove(el)
    mj = ET.SubElement(root, "mujoco")
    ET.SubElement(mj, "compiler", fusestatic="false", balanceinertia="true", discardvisual="false")
    return ET.tostring(root, encoding="unicode")


def _arm_spec(arm: str, cfg: SceneConfig, limits: SdkArmLimits) -> mujoco.MjSpec:
    spec = mujoco.MjSpec.from_string(_urdf_without_meshes(limits.urdf_path))
    bit = _BIT[arm]
    other = sum(_BIT.values()) - bit
    coll = {"contype": bit, "conaffinity": _OBJ_BIT | other}
    kp = limits.default_kp * cfg.arm_kp_scale
    for i, jname in enumerate(JOINTS):
        joint = spec.joint(jname)
        joint.range = [limits.joint_pos_min[i], limits.joint_pos_max[i]]
        joint.limited = mujoco.mjtLimited.mjLIMITED_TRUE
        joint.armature = cfg.arm_armature
        joint.damping = [cfg.arm_damping, 0.0, 0.0]
        act = spec.add_actuator(name=f"act_{jname}", target=jname)
        act.trntype = mujoco.mjtTrn.mjTRN_JOINT
        act.set_to_position(kp=float(kp[i]), dampratio=1.0)
        act.ctrlrange = [limits.joint_pos_min[i], limits.joint_pos_max[i]]
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.forcerange = [-limits.joint_torque_max[i], limits.joint_torque_max[i]]
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
    for body in spec.bodies:
        if body.name == "world":
            continue
        body.gravcomp = 1.0  # the real SDK compensates gravity too
        if body.name in _LINK_CAPSULES:
            fromto, radius = _LINK_CAPSULES[body.name]
            body.add_geom(
                type=mujoco.mjtGeom.mjGEOM_CAPSULE,
                fromto=list(fromto),
                size=[radius, 0, 0],
                rgba=[0.75, 0.75, 0.78, 1],
                **coll,
            )
    _add_gripper(spec, cfg, coll)
    # base_link and link1 always touch (world-welded parent): never a real contact.
    spec.add_exclude(bodyname1="base_link", bodyname2="link1")
    return spec


def _add_gripper(spec: mujoco.MjSpec, cfg: SceneConfig, coll: dict) -> None:
    link6 = spec.body("link6")
    dark = [0.2, 0.2, 0.22, 1]
    link6.add_geom(
        name="palm",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        pos=[0.08, 0, 0],
        size=[0.02, 0.05, 0.02],
        rgba=dark,
        **coll,
    )
    pad = cfg.finger_pad_half
    pad_x = EEF_OFFSET  # pad centre on the tool point: the tool point is where objects are held
    stem_len = (pad_x - pad[0]) - 0.1
    for side, sign in (("a", 1.0), ("b", -1.0)):
        finger = link6.add_body(name=f"finger_{side}", pos=[0, 0, 0])
        finger.add_joint(
            name=f"finger_{side}",
            type=mujoco.mjtJoint.mjJNT_SLIDE,
            axis=[0, sign, 0],
            range=[0.0, FINGER_TRAVEL],
            armature=0.01,
            damping=[2.0, 0.0, 0.0],
            # Hard stops: a 40 N squeeze on a 40 g finger pushed MuJoCo's default soft limit
            # (solimp 0.9..0.95) 1.5-2 cm past the stop; the real fingers meet a metal stop.
            solref_limit=[0.012, 1.0],
            solimp_limit=[0.99, 0.999, 0.001, 0.5, 2.0],
        )
        finger.add_geom(
            type=mujoco.mjtGeom.mjGEOM_BOX,
            pos=[0.1 + stem_len / 2, sign * (pad[1] + 0.002), 0],
            size=[stem_len / 2, pad[1], pad[2] * 0.8],
            rgba=dark,
            mass=0.01,
            **coll,
        )
        finger.add_geom(
            name=f"pad_{side}",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            pos=[pad_x, sign * pad[1], 0],
            size=list(pad),
            rgba=[0.1, 0.1, 0.1, 1],
            mass=0.02,
            friction=[1.5, 0.02, 0.002],
            condim=4,
            solref=[0.01, 1],
            solimp=[0.95, 0.99, 0.001, 0.5, 2],
            **coll,
        )
    tendon = spec.add_tendon(name="gripper")
    tendon.wrap_joint("finger_a", 1.0)
    tendon.wrap_joint("finger_b", 1.0)
    eq = spec.add_equality(type=mujoco.mjtEq.mjEQ_JOINT, name1="finger_a", name2="finger_b")
    eq.data[:5] = [0, 1, 0, 0, 0]
    eq.solref = [0.012, 1.0]  # the fingers are one mechanism (rack and pinion): keep them equal
    eq.solimp = [0.99, 0.999, 0.001, 0.5, 2.0]
    act = spec.add_actuator(name="act_gripper", target="gripper")
    act.trntype = mujoco.mjtTrn.mjTRN_TENDON
    act.set_to_position(kp=cfg.gripper_kp, kv=cfg.gripper_kv)
    act.ctrlrange = [0.0, GRIPPER_STROKE]  # ctrl = opening (sum of both finger travels)
    act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
    act.forcerange = [-cfg.gripper_force, cfg.gripper_force]
    act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
    link6.add_site(name="tool", pos=[EEF_OFFSET, 0, 0], size=[0.004, 0, 0])
    # Wrist camera (D405-like) above the flange, looking along the approach axis, pitched
    # towards the fingers so both pads and the object between them are in view.
    tilt = math.radians(cfg.wrist_cam_tilt_deg)
    fwd = np.array([math.cos(tilt), 0.0, -math.sin(tilt)])  # camera -z
    up = np.array([math.sin(tilt), 0.0, math.cos(tilt)])  # camera +y
    right = np.cross(up, -fwd)
    link6.add_camera(
        name="wrist_cam",
        pos=list(cfg.wrist_cam_pos),
        fovy=cfg.wrist_cam_fovy_deg,
        xyaxes=list(right) + list(up),
    )


def _add_pouch(spec: mujoco.MjSpec, cfg: SceneConfig) -> None:
    """Pencil-pouch stand-in: a tray with a sliding, spring-loaded lid and a knob on the lid.

    Local frame: long axis x, lid slides along +x to open (the spring pulls it shut)."""
    L, W, H, t = cfg.pouch_inner_length, cfg.pouch_inner_width, cfg.pouch_wall_height, 0.005
    pouch = spec.worldbody.add_body(name="pouch", mocap=True, pos=[0.32, 0.0, 0.0])
    color = [0.25, 0.45, 0.75, 1]
    obj = {"contype": _OBJ_BIT, "conaffinity": _OBJ_BIT | 6}
    pouch.add_geom(
        type=mujoco.mjtGeom.mjGEOM_BOX,
        pos=[0, 0, t / 2],
        size=[L / 2 + t, W / 2 + t, t / 2],
        rgba=color,
        **obj,
    )
    for sy in (1, -1):
        pouch.add_geom(
            type=mujoco.mjtGeom.mjGEOM_BOX,
            pos=[0, sy * (W / 2 + t / 2), t + H / 2],
            size=[L / 2 + t, t / 2, H / 2],
            rgba=color,
            **obj,
        )
    for sx in (1, -1):
        pouch.add_geom(
            type=mujoco.mjtGeom.mjGEOM_BOX,
            pos=[sx * (L / 2 + t / 2), 0, t + H / 2],
            size=[t / 2, W / 2, H / 2],
            rgba=color,
            **obj,
        )
    pouch.add_site(
        name="pouch_inner",
        pos=[0, 0, t + H / 2],
        size=[L / 2, W / 2, H / 2],
        type=mujoco.mjtGeom.mjGEOM_BOX,
        rgba=[0, 0, 0, 0],
    )
    lid = pouch.add_body(name="lid", pos=[0, 0, t + H + 0.0025])
    lid.add_joint(
        name="lid",
        type=mujoco.mjtJoint.mjJNT_SLIDE,
        axis=[1, 0, 0],
        range=[0.0, cfg.lid_travel],
        stiffness=[cfg.lid_spring, 0, 0],
        damping=[cfg.lid_damping, 0, 0],
        frictionloss=cfg.lid_friction,
    )
    lid.add_geom(
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[L / 2 + t, W / 2 + t, 0.0025],
        rgba=[0.9, 0.55, 0.2, 1],
        mass=0.05,
        **obj,
    )
    # A vertical capsule knob: the pads squeeze it with one or two contacts each (a box knob
    # made up to four per pad, and contacts are most of the physics cost per tick).
    r, hz = cfg.knob_radius, cfg.knob_half_height
    knob_pos = [L / 2 - r - 0.006, 0, 0.0025 + hz]
    lid.add_geom(
        name="knob",
        type=mujoco.mjtGeom.mjGEOM_CAPSULE,
        pos=knob_pos,
        size=[r, hz - r, 0],
        rgba=[0.9, 0.3, 0.1, 1],
        mass=0.01,
        friction=[1.5, 0.02, 0.002],
        condim=4,
        **obj,
    )
    lid.add_site(name="knob", pos=knob_pos, size=[0.003, 0, 0])


def _add_marker(spec: mujoco.MjSpec, cfg: SceneConfig) -> None:
    marker = spec.worldbody.add_body(name="marker", pos=[0.3, -0.2, cfg.marker_radius])
    marker.add_freejoint(name="marker")
    marker.add_geom(
        name="marker",
        type=mujoco.mjtGeom.mjGEOM_CYLINDER,
        size=[cfg.marker_radius, cfg.marker_half_length, 0],
        mass=cfg.marker_mass,
        rgba=[0.85, 0.1, 0.15, 1],
        friction=[1.0, 0.02, 0.002],
        # condim 6: MuJoCo ignores rolling friction below it, and a free cylinder then rolls on
        # the table by itself (sim-notes 9; scripts/measure_object_drift.py).
        condim=6,
        contype=_OBJ_BIT,
        conaffinity=_OBJ_BIT | 6,
    )
    # A cap at one end makes the marker's direction visible to the cameras.
    marker.add_geom(
        type=mujoco.mjtGeom.mjGEOM_CYLINDER,
        pos=[0, 0, cfg.marker_half_length - 0.01],
        size=[cfg.marker_radius + 0.0005, 0.01, 0],
        rgba=[0.1, 0.1, 0.1, 1],
        contype=0,
        conaffinity=0,
        mass=0.0001,
    )


def _look_at_xyaxes(pos: np.ndarray, target: np.ndarray) -> list[float]:
    fwd = target - pos
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    return list(right) + list(up)


def build_spec(cfg: SceneConfig) -> mujoco.MjSpec:
    limits = sdk_limits()
    scene = mujoco.MjSpec()
    scene.compiler.degree = False
    opt = scene.option
    opt.timestep = cfg.timestep
    opt.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    opt.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    opt.impratio = cfg.impratio
    opt.noslip_iterations = cfg.noslip_iterations
    scene.visual.quality.shadowsize = 0
    scene.visual.quality.numslices = cfg.render_slices
    scene.visual.quality.numstacks = cfg.render_stacks
    scene.visual.global_.offwidth = max(cfg.image_size, 64)
    scene.visual.global_.offheight = max(cfg.image_size, 64)
    wb = scene.worldbody
    wb.add_light(pos=[0.3, 0, 1.5], dir=[0, 0, -1], castshadow=False, diffuse=[0.8, 0.8, 0.8])
    tx0, tx1 = cfg.table_x
    ty = cfg.table_half_width
    wb.add_geom(
        name="table",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        pos=[(tx0 + tx1) / 2, 0, -0.01],
        size=[(tx1 - tx0) / 2, ty, 0.01],
        rgba=[0.55, 0.45, 0.35, 1],
        friction=[0.8, 0.02, 0.002],
        contype=_OBJ_BIT,
        conaffinity=_OBJ_BIT | 6,
    )
    for arm in ARMS:
        sign = 1.0 if arm == "left" else -1.0
        frame = wb.add_frame(pos=[0.0, sign * cfg.arm_base_y, 0.0])
        scene.attach(_arm_spec(arm, cfg, limits), prefix=f"{arm}/", frame=frame)
    _add_pouch(scene, cfg)
    _add_marker(scene, cfg)
    top = np.array(cfg.top_cam_pos)
    wb.add_camera(
        name="top",
        pos=list(top),
        fovy=cfg.top_cam_fovy_deg,
        xyaxes=_look_at_xyaxes(top, np.array(cfg.top_cam_target)),
    )
    return scene


def build_model(cfg: SceneConfig) -> mujoco.MjModel:
    return build_spec(cfg).compile()
