"""The episode contract shared by the rig (recorder, simulated collector) and the trainer.

One episode = one rosbag2 directory (MCAP storage by default) holding the bag's own
`metadata.yaml` and our sidecar `episode.yaml`. This module is the single place for topic names,
message type names, enum values, the sidecar schema and the directory layout; see
docs/episode-format.md for the prose version. No ROS import: the trainer runs without ROS.

Layout::

    <data_root>/<task_slug>/round_<NNN>/<episode_id>/
        <storage file(s)>   # <episode_id>.mcap (rosbags) or <episode_id>_0.mcap (ros2 bag)
        metadata.yaml       # rosbag2 metadata, written when the bag is closed
        episode.yaml        # sidecar, written atomically (tmp + fsync + rename) LAST

A bag directory without `episode.yaml` is an episode whose writer died (or a bag recorded with
`ros2 bag record`); the trainer falls back to the START / END events inside the bag.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from habc_core.features import ARM_NAMES, CAMERA_NAMES
from habc_core.fsio import atomic_write_text

SCHEMA_VERSION = 1

SIDECAR_NAME = "episode.yaml"
BAG_METADATA_NAME = "metadata.yaml"
STORAGE_SUFFIXES: tuple[str, ...] = (".mcap", ".db3")

# --- message types ---
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
JOINT_STATE_TYPE = "sensor_msgs/msg/JointState"
POSE_STAMPED_TYPE = "geometry_msgs/msg/PoseStamped"
ARM_COMMAND_TYPE = "habc_interfaces/msg/ArmCommand"
CONTROL_AUTHORITY_TYPE = "habc_interfaces/msg/ControlAuthority"
ACTION_CHUNK_TYPE = "habc_interfaces/msg/ActionChunk"
EPISODE_EVENT_TYPE = "habc_interfaces/msg/EpisodeEvent"
ENV_STATE_TYPE = "std_msgs/msg/Float64MultiArray"
SIM_TASK_STATUS_TYPE = "habc_interfaces/msg/SimTaskStatus"
CUSTOM_TYPES: tuple[str, ...] = (
    ARM_COMMAND_TYPE,
    CONTROL_AUTHORITY_TYPE,
    ACTION_CHUNK_TYPE,
    EPISODE_EVENT_TYPE,
)

# --- enum values mirrored from habc_interfaces/msg (checked against the .msg files in tests) ---
AUTHORITY_POLICY = 0
AUTHORITY_HUMAN = 1
AUTHORITY_HOLD = 2
MODE_JOINT = 0
MODE_EE = 1
EVENT_START = 0
EVENT_END = 1
EVENT_RELABEL = 2
# ArmCommand.safety bits: which limit of the arm driver's safety core shaped the executed command.
SAFETY_JOINT_LIMIT = 1
SAFETY_WORKSPACE = 2
SAFETY_STEP = 4
SAFETY_ROTATION = 8
SAFETY_GRIPPER = 16
SAFETY_WATCHDOG = 32
SAFETY_HOLD = 64
SAFETY_FLAG_NAMES: dict[int, str] = {
    SAFETY_JOINT_LIMIT: "joint_limit",
    SAFETY_WORKSPACE: "workspace",
    SAFETY_STEP: "step",
    SAFETY_ROTATION: "rotation",
    SAFETY_GRIPPER: "gripper",
    SAFETY_WATCHDOG: "watchdog",
    SAFETY_HOLD: "hold",
}

Source = Literal["demo", "rollout", "eval"]
Outcome = Literal["success", "failure", "unknown"]
SOURCES: tuple[str, ...] = ("demo", "rollout", "eval")
OUTCOMES: tuple[str, ...] = ("success", "failure", "unknown")

# --- names: unique per arm, so two arms' joint states never collide in one graph ---
ARM_JOINT_COUNT = 6


def _check(what: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"{what}: unknown {what} {value!r}; valid: {list(valid)}")


@dataclass(frozen=True)
class _Name:
    """A contract name of one arm or camera: `pattern` filled with it, after checking it is one
    of the contract's (a typo must fail here, not publish on a topic nobody reads)."""

    pattern: str  # one "{}" placeholder
    what: str  # "arm" | "camera", as errors name it
    valid: tuple[str, ...]

    def __call__(self, value: str) -> str:
        _check(self.what, value, self.valid)
        return self.pattern.format(value)


def _per_arm(pattern: str) -> _Name:
    return _Name(pattern, "arm", ARM_NAMES)


def _per_camera(pattern: str) -> _Name:
    return _Name(pattern, "camera", CAMERA_NAMES)


def joint_names(arm: str) -> list[str]:
    """JointState names of one arm: `<arm>_joint1` .. `<arm>_joint6`, `<arm>_gripper`."""
    _check("arm", arm, ARM_NAMES)
    return [f"{arm}_joint{i}" for i in range(1, ARM_JOINT_COUNT + 1)] + [f"{arm}_gripper"]


# The frame id of an arm's poses and commands (the X5 URDF's base link, prefixed).
base_frame = _per_arm("{}_base_link")
# The frame id of a camera's images (realsense-ros naming).
camera_frame = _per_camera("{}_color_optical_frame")


# --- topics and services ---
# Names in the bag (and in this contract) are absolute; a node opens each one by `ros_name`,
# relative, so that a namespace (`--ros-args -r __ns:=/rig1`) and remapping apply to it.
AUTHORITY_TOPIC = "/control_authority"
ACTION_CHUNK_TOPIC = "/policy/action_chunk"
EPISODE_EVENTS_TOPIC = "/episode/events"
START_EPISODE_SERVICE = "/episode/start"
END_EPISODE_SERVICE = "/episode/end"
# Optional, simulation only: privileged environment state (object poses, ...) for state-mode
# experiments; a flat Float64MultiArray published at the control tick.
ENV_STATE_TOPIC = "/sim/env_state"
# Simulation only (never recorded): the task's own judgement each tick, and a seeded reset.
SIM_TASK_STATUS_TOPIC = "/sim/task_status"
SIM_RESET_SERVICE = "/sim/reset"

# Raw RGB image topic (`sensor_msgs/msg/Image`) of one camera.
image_topic = _per_camera("/camera/{}/color/image_raw")
# JPEG image topic (`sensor_msgs/msg/CompressedImage`) of one camera (real rigs).
compressed_image_topic = _per_camera("/camera/{}/color/image_raw/compressed")
joint_states_topic = _per_arm("/{}_arm/joint_states")
ee_pose_topic = _per_arm("/{}_arm/ee_pose")
# The command the arm driver executed (after its safety core): the recorded action.
command_topic = _per_arm("/{}_arm/command")
# The mux's request to the arm driver (before safety); recorded beside the action.
command_request_topic = _per_arm("/{}_arm/command_request")
# The policy node's row for one arm this tick (input of the mux).
policy_command_topic = _per_arm("/policy/{}/command")
# The human's target for one arm (input of the mux).
teleop_command_topic = _per_arm("/teleop/{}/command")
# Where the teleop node's `topic` human source reads the human's hands (sim: the expert).
teleop_source_topic = _per_arm("/teleop/source/{}")


def ros_name(name: str) -> str:
    """The relative name a node passes to rclpy for a contract topic or service."""
    if not name.startswith("/"):
        raise ValueError(f"name: contract names are absolute, got {name!r}")
    return name[1:]


def contract_topics(*, compressed_images: bool = False) -> dict[str, str]:
    """Every topic of the contract -> its message type.

    A bag carries each camera either raw or compressed; `compressed_images` picks which one is
    listed here (the reader accepts either).
    """
    topics: dict[str, str] = {}
    for cam in CAMERA_NAMES:
        if compressed_images:
            topics[compressed_image_topic(cam)] = COMPRESSED_IMAGE_TYPE
        else:
            topics[image_topic(cam)] = IMAGE_TYPE
    for arm in ARM_NAMES:
        topics[joint_states_topic(arm)] = JOINT_STATE_TYPE
        topics[ee_pose_topic(arm)] = POSE_STAMPED_TYPE
        topics[command_topic(arm)] = ARM_COMMAND_TYPE
    topics[AUTHORITY_TOPIC] = CONTROL_AUTHORITY_TYPE
    topics[ACTION_CHUNK_TOPIC] = ACTION_CHUNK_TYPE
    topics[EPISODE_EVENTS_TOPIC] = EPISODE_EVENT_TYPE
    return topics


def recorded_topics(*, compressed_images: bool = False) -> dict[str, str]:
    """What the recorder records: the contract plus the optional topics beside it.

    The requested commands (before safety) let a user see how often safety intervened; the
    privileged `/sim/env_state` exists only on the simulated rig (on a robot nothing publishes
    it, so subscribing costs nothing). The DDS-free collector writes exactly these topics.
    """
    topics = contract_topics(compressed_images=compressed_images)
    for arm in ARM_NAMES:
        topics[command_request_topic(arm)] = ARM_COMMAND_TYPE
    topics[ENV_STATE_TOPIC] = ENV_STATE_TYPE
    return topics


# --- sidecar ---
_EPISODE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class SidecarError(ValueError):
    """An `episode.yaml` that exists but cannot be trusted (bad YAML, bad field)."""


@dataclass(frozen=True)
class EpisodeMeta:
    """The sidecar `episode.yaml`: the source of truth for an episode's outcome.

    `model_index` is the gradient-step counter of the actor that acted (-1 for demos);
    `t_max_steps` is the episode step budget T_max; `start_ns` / `end_ns` bound the episode on
    the bag clock; `intervened` says whether any arm was under HUMAN authority.
    """

    episode_id: str
    task: str
    source: Source
    outcome: Outcome
    round: int
    model_index: int
    robot: str
    control_hz: float
    t_max_steps: int
    start_ns: int
    end_ns: int
    intervened: bool
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.episode_id, str) or not _EPISODE_ID_RE.match(self.episode_id):
            raise ValueError(
                f"episode_id: {self.episode_id!r} must match {_EPISODE_ID_RE.pattern} "
                "(it names a directory)"
            )
        if not isinstance(self.task, str) or not self.task.strip():
            raise ValueError(f"task: must be a non-empty prompt string, got {self.task!r}")
        if self.source not in SOURCES:
            raise ValueError(f"source: {self.source!r} is not one of {list(SOURCES)}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome: {self.outcome!r} is not one of {list(OUTCOMES)}")
        _check_int("round", self.round, minimum=0)
        _check_int("model_index", self.model_index, minimum=-1)
        if not isinstance(self.robot, str) or not self.robot:
            raise ValueError(f"robot: must be a non-empty string, got {self.robot!r}")
        if (
            isinstance(self.control_hz, bool)
            or not isinstance(self.control_hz, int | float)
            or not (0.0 < float(self.control_hz) < 10_000.0)
        ):
            raise ValueError(
                f"control_hz: must be a number in (0, 10000), got {self.control_hz!r}"
            )
        _check_int("t_max_steps", self.t_max_steps, minimum=1)
        _check_int("start_ns", self.start_ns, minimum=0)
        _check_int("end_ns", self.end_ns, minimum=0)
        if self.end_ns < self.start_ns:
            raise ValueError(f"end_ns: {self.end_ns} is before start_ns {self.start_ns}")
        if not isinstance(self.intervened, bool):
            raise ValueError(f"intervened: must be a bool, got {self.intervened!r}")
        _check_int("schema_version", self.schema_version, minimum=1)
        if self.schema_version > SCHEMA_VERSION:
            raise ValueError(
                f"schema_version: {self.schema_version} is newer than this trainer's "
                f"{SCHEMA_VERSION}; update habc_trainer"
            )

    def replace(self, **changes: Any) -> EpisodeMeta:
        """A copy with some fields changed (e.g. an operator's relabel), validated again."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["control_hz"] = float(self.control_hz)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EpisodeMeta:
        """Build from a parsed sidecar; unknown or missing fields are errors naming them."""
        if not isinstance(data, Mapping):
            raise ValueError(f"sidecar: expected a mapping, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"sidecar: unknown field(s) {unknown}; valid: {sorted(names)}")
        required = {f.name for f in dataclasses.fields(cls) if f.name != "schema_version"}
        missing = sorted(required - set(data))
        if missing:
            raise ValueError(f"sidecar: missing field(s) {missing}")
        return cls(**dict(data))


def _check_int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: must be an int >= {minimum}, got {value!r}")


def write_sidecar(bag_dir: Path | str, meta: EpisodeMeta) -> Path:
    """Write `episode.yaml` atomically and durably (fsio.atomic_write_text): a reader sees the
    old file or the new one, never half, and a power cut cannot leave an empty sidecar."""
    bag_dir = Path(bag_dir)
    if not bag_dir.is_dir():
        raise FileNotFoundError(f"{bag_dir}: episode directory does not exist")
    text = yaml.safe_dump(meta.to_dict(), sort_keys=False)
    return atomic_write_text(bag_dir / SIDECAR_NAME, text)


def read_sidecar(bag_dir: Path | str) -> EpisodeMeta | None:
    """The episode's sidecar, or None when there is none (writer killed, `ros2 bag record`).

    Raises SidecarError (naming the file) when the sidecar exists but is unreadable or invalid.
    """
    path = Path(bag_dir) / SIDECAR_NAME
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return EpisodeMeta.from_dict(data)
    except (yaml.YAMLError, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise SidecarError(f"{path}: invalid sidecar: {exc}") from exc


# --- layout ---
def task_slug(task: str) -> str:
    """A directory-safe name for a task prompt ("Put the pencil in the pouch" -> put_the_...)."""
    slug = re.sub(r"[^a-z0-9]+", "_", task.lower()).strip("_")[:64]
    if not slug:
        raise ValueError(f"task: {task!r} has no letters or digits to name a directory")
    return slug


def round_dir_name(round_index: int) -> str:
    _check_int("round", round_index, minimum=0)
    return f"round_{round_index:03d}"


def episode_dir(data_root: Path | str, task: str, round_index: int, episode_id: str) -> Path:
    """`<data_root>/<task_slug>/round_<NNN>/<episode_id>`: the bag directory of one episode."""
    if not _EPISODE_ID_RE.match(episode_id):
        raise ValueError(f"episode_id: {episode_id!r} must match {_EPISODE_ID_RE.pattern}")
    return Path(data_root) / task_slug(task) / round_dir_name(round_index) / episode_id


def make_episode_id(start_ns: int, *, prefix: str = "ep", suffix: str = "") -> str:
    """A sortable id from the start time (UTC), e.g. `ep_20261122T010203_123456`."""
    _check_int("start_ns", start_ns, minimum=0)
    stamp = datetime.datetime.fromtimestamp(start_ns / 1e9, tz=datetime.UTC)
    out = f"{prefix}_{stamp:%Y%m%dT%H%M%S}_{stamp.microsecond:06d}"
    return f"{out}_{suffix}" if suffix else out


def storage_files(bag_dir: Path | str) -> list[Path]:
    """The bag's storage files (MCAP or sqlite3), sorted by name (split bags keep their order)."""
    bag_dir = Path(bag_dir)
    return sorted(p for p in bag_dir.iterdir() if p.is_file() and p.suffix in STORAGE_SUFFIXES)


def find_episode_dirs(data_root: Path | str) -> list[Path]:
    """Every directory under `data_root` that holds a bag (storage file or metadata.yaml)."""
    data_root = Path(data_root)
    if not data_root.is_dir():
        raise FileNotFoundError(f"{data_root}: data root does not exist")
    found: set[Path] = set()
    for dirpath, _dirnames, filenames in os.walk(data_root):
        if BAG_METADATA_NAME in filenames or any(
            name.endswith(STORAGE_SUFFIXES) for name in filenames
        ):
            found.add(Path(dirpath))
    return sorted(found)


# --- shared lookups of the enum values above (one definition; nodes and cores import these) ---
# ArmCommand.mode by action space: "ee" (xyz + 6-D rotation) or "joint" (6 joints).
MODE_BY_SPACE: dict[str, int] = {"joint": MODE_JOINT, "ee": MODE_EE}
