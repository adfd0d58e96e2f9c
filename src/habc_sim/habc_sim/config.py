"""Frozen, validated configs of the simulated rig (loaded from config/sim.yaml).

Units: metres, seconds, radians unless a name says `_deg`. docs/sim-rig.md says where each
default comes from (SDK, URDF, RealSense datasheets, or our measurement).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from habc_core.action_layout import ACTION_SPACES
from habc_core.paths import find_config

ActionSpace = Literal["ee", "joint"]
ObsMode = Literal["state", "pixels"]
OBS_MODES: tuple[str, ...] = ("state", "pixels")


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name}: must be > 0, got {value!r}")


def _unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: must be in [0, 1], got {value!r}")


@dataclass(frozen=True)
class SceneConfig:
    """Geometry, physics and camera settings of the MuJoCo model."""

    control_hz: float = 30.0
    substeps: int = 6
    impratio: float = 10.0
    noslip_iterations: int = 0
    arm_base_y: float = 0.2  # each base at y = +-arm_base_y, facing +x
    arm_kp_scale: float = 5.0  # x SDK default_kp (sim-notes: the SDK's own gains ring)
    arm_armature: float = 0.05
    arm_damping: float = 0.5
    gripper_kp: float = 1000.0  # N/m on the opening
    gripper_kv: float = 20.0
    gripper_force: float = 40.0
    finger_pad_half: tuple[float, float, float] = (0.012, 0.003, 0.011)
    table_x: tuple[float, float] = (-0.12, 0.52)
    table_half_width: float = 0.42
    pouch_inner_length: float = 0.16
    pouch_inner_width: float = 0.05
    pouch_wall_height: float = 0.035
    lid_travel: float = 0.145
    lid_spring: float = 12.0  # N/m towards closed: a released lid snaps shut
    lid_damping: float = 1.0
    lid_friction: float = 0.2
    knob_radius: float = 0.006
    knob_half_height: float = 0.015
    marker_radius: float = 0.009
    marker_half_length: float = 0.05
    marker_mass: float = 0.02
    image_size: int = 96
    # Tessellation of capsules / cylinders in the renderer: llvmpipe's cost is mostly vertices
    # (28x16, MuJoCo's default: 11.8 ms for three cameras; 8x4: 3.9 ms).
    render_slices: int = 8
    render_stacks: int = 4
    top_cam_pos: tuple[float, float, float] = (-0.05, 0.0, 0.62)
    top_cam_target: tuple[float, float, float] = (0.3, 0.0, 0.0)
    top_cam_fovy_deg: float = 58.0  # D455 colour, vertical FOV
    wrist_cam_pos: tuple[float, float, float] = (0.06, 0.0, 0.05)
    wrist_cam_tilt_deg: float = 25.0
    wrist_cam_fovy_deg: float = 58.0  # D405, vertical FOV

    def __post_init__(self) -> None:
        _positive("control_hz", self.control_hz)
        if not isinstance(self.substeps, int) or self.substeps < 1:
            raise ValueError(f"substeps: must be an int >= 1, got {self.substeps!r}")
        if self.timestep > 0.0085:
            raise ValueError(
                f"substeps: timestep {self.timestep:.4f} s > 8.3 ms is unstable; raise substeps"
            )
        if not isinstance(self.image_size, int) or not 16 <= self.image_size <= 1024:
            raise ValueError(f"image_size: must be an int in [16, 1024], got {self.image_size!r}")
        for name in (
            "arm_base_y",
            "gripper_kp",
            "lid_travel",
            "marker_radius",
            "marker_mass",
            "pouch_inner_length",
            "pouch_inner_width",
            "impratio",
        ):
            _positive(name, getattr(self, name))
        if self.lid_spring < 0:
            raise ValueError(f"lid_spring: must be >= 0, got {self.lid_spring!r}")

    @property
    def timestep(self) -> float:
        return 1.0 / (self.control_hz * self.substeps)


@dataclass(frozen=True)
class TaskConfig:
    """The pouch task: randomisation ranges, limits and the success / failure rules."""

    prompt: str = "open the pouch, put the marker in it, and close the pouch"
    t_max: int = 360  # control ticks (12 s at 30 Hz)
    marker_x: tuple[float, float] = (0.24, 0.32)
    marker_y: tuple[float, float] = (-0.27, -0.17)
    marker_yaw: tuple[float, float] = (1.0, 2.1)  # axis direction in the table plane
    pouch_x: tuple[float, float] = (0.30, 0.34)
    pouch_y: tuple[float, float] = (-0.01, 0.02)
    pouch_yaw_jitter: float = 0.12  # about the nominal long axis along +y
    lid_closed_tol: float = 0.012  # lid counts as closed below this opening
    lid_open_min: float = 0.125  # lid counts as open (marker fits) above this opening
    off_table_z: float = -0.03  # marker below this: fell off, unrecoverable
    settle_ticks: int = 3  # success must hold this long

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ValueError(f"prompt: must be a non-empty string, got {self.prompt!r}")
        if not isinstance(self.t_max, int) or self.t_max < 10:
            raise ValueError(f"t_max: must be an int >= 10, got {self.t_max!r}")
        for name in ("marker_x", "marker_y", "marker_yaw", "pouch_x", "pouch_y"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name}: low {lo} > high {hi}")
        if self.lid_closed_tol >= self.lid_open_min:
            raise ValueError(
                f"lid_closed_tol: {self.lid_closed_tol} must be < lid_open_min {self.lid_open_min}"
            )


@dataclass(frozen=True)
class EnvConfig:
    """The gym-style env: action / observation interface."""

    action_space: ActionSpace = "ee"
    obs_mode: ObsMode = "state"
    max_joint_step: float = 0.35  # rad per tick: a sane cap on one IK jump (~10 rad/s at 30 Hz)

    def __post_init__(self) -> None:
        if self.action_space not in ACTION_SPACES:
            raise ValueError(
                f"action_space: {self.action_space!r} is not one of {list(ACTION_SPACES)}"
            )
        if self.obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode: {self.obs_mode!r} is not one of {list(OBS_MODES)}")
        _positive("max_joint_step", self.max_joint_step)


@dataclass(frozen=True)
class ExpertConfig:
    """The scripted operator's hands: waypoint expert skill (noise, hesitation, regrasps)."""

    speed: float = 0.35  # m/s tool speed between waypoints
    pos_noise: float = 0.004  # m, std of the per-waypoint aim error
    yaw_noise: float = 0.08  # rad, std of the grasp yaw error
    hesitation_prob: float = 0.15  # chance per phase of a pause
    hesitation_ticks: tuple[int, int] = (3, 12)
    regrasp_prob: float = 0.1  # chance of a deliberately sloppy first grasp that must be redone
    grasp_close_ticks: int = 6
    release_ticks: int = 5

    def __post_init__(self) -> None:
        _positive("speed", self.speed)
        for name in ("pos_noise", "yaw_noise"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)!r}")
        _unit("hesitation_prob", self.hesitation_prob)
        _unit("regrasp_prob", self.regrasp_prob)
        lo, hi = self.hesitation_ticks
        if not 0 <= lo <= hi:
            raise ValueError(
                f"hesitation_ticks: need 0 <= low <= high, got {self.hesitation_ticks}"
            )


@dataclass(frozen=True)
class OperatorConfig:
    """The intervention model: when the simulated human takes over a rollout."""

    intervene_prob: float = 0.5  # chance to take over a failing episode
    stall_ticks: int = 60  # no new milestone this long (2 s) = failing
    miss_ticks: int = 15  # a gripper closed on nothing this long (0.5 s) = failing
    reaction_ticks: tuple[int, int] = (4, 12)  # perception + pedal delay
    hand_back_prob: float = 0.25  # after recovering a stage, hand back to the policy
    expert: ExpertConfig = field(default_factory=ExpertConfig)

    def __post_init__(self) -> None:
        _unit("intervene_prob", self.intervene_prob)
        _unit("hand_back_prob", self.hand_back_prob)
        if self.stall_ticks < 1:
            raise ValueError(f"stall_ticks: must be >= 1, got {self.stall_ticks!r}")
        if self.miss_ticks < 1:
            raise ValueError(f"miss_ticks: must be >= 1, got {self.miss_ticks!r}")
        lo, hi = self.reaction_ticks
        if not 0 <= lo <= hi:
            raise ValueError(f"reaction_ticks: need 0 <= low <= high, got {self.reaction_ticks}")


@dataclass(frozen=True)
class SimConfig:
    scene: SceneConfig = field(default_factory=SceneConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    operator: OperatorConfig = field(default_factory=OperatorConfig)


def _build(cls: type, data: Mapping[str, Any] | None, where: str) -> Any:
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid: {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        sub = _SUBCONFIGS.get((cls, name))
        if sub is not None:
            kwargs[name] = _build(sub, value, f"{where}.{name}")
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


_SUBCONFIGS: dict[tuple[type, str], type] = {
    (SimConfig, "scene"): SceneConfig,
    (SimConfig, "task"): TaskConfig,
    (SimConfig, "env"): EnvConfig,
    (SimConfig, "operator"): OperatorConfig,
    (OperatorConfig, "expert"): ExpertConfig,
}


def sim_config_from_dict(data: Mapping[str, Any] | None) -> SimConfig:
    """Build a SimConfig from nested dicts; unknown keys are errors naming the key."""
    return _build(SimConfig, data, "sim")


SIM_CONFIG_NAME = "sim.yaml"


def default_config_path() -> Path | None:
    """config/sim.yaml under the current directory, else the source tree's (not an installed
    copy: a sim run reads the checkout it runs from); None: the built-in defaults."""
    return find_config(SIM_CONFIG_NAME, cwd=True, installed=False)


def load_sim_config(path: Path | str | None) -> SimConfig:
    """config/sim.yaml (top-level key `sim`) -> SimConfig; None gives the defaults."""
    if path is None:
        return SimConfig()
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return sim_config_from_dict(data.get("sim", data))
