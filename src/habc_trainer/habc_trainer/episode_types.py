"""The types of one episode's extraction: its settings, its facts, its arrays, its errors.

`ExtractConfig` says how bags become frames, `EpisodeInfo` holds the episode-level facts,
`Episode` the per-frame arrays; `Series` and `Where` are the shared working parts of the
extraction modules (episode.py reads, episode_facts.py labels, resample.py builds the frames).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from habc_core.contract import SOURCES
from habc_core.features import ACTION, CAMERA_NAMES

ProprioMode = Literal["auto", "ee", "joint"]
ARRAYS_VERSION = 2


class EpisodeError(ValueError):
    """An episode that breaks the contract; the message names file, topic and time."""


class SummaryDoubt(EpisodeError):
    """An error a damaged MCAP summary can fake: rosbags takes topics and message definitions
    from the summary, which no CRC protects, so a flipped byte there renames a topic or a field.
    The chunks carry their own copies (CRC-checked): the streaming reader reads those."""


@dataclass(frozen=True)
class ExtractConfig:
    """How bags become frames. Every bound is a config key (no literals buried in code).

    `max_command_gap_s`: a tick in the middle of an episode with no command of the other arm
    this close is an error (a hole: lost messages, a stalled driver); a skew between the arms is
    never one. The default 0.1 s is 3 control periods at 30 Hz: above the 30-80 ms the two arms'
    commands drift apart in a loaded in-process graph, below the 0.25 s of observation staleness
    and of the arm driver's watchdog, and it still lets a 10 Hz bag lose a single command.
    It replaces `command_sync_tolerance_s`, which is refused with a pointer to it.
    """

    cameras: tuple[str, ...] = CAMERA_NAMES  # () = state-only episodes, no images stored
    image_size: int = 96  # training resolution: images are area-resized to size x size
    proprio: ProprioMode = "auto"  # auto: EE pose when commands are MODE_EE, else joints
    max_obs_staleness_s: float = 0.25  # newest observation older than this at a tick: error
    max_command_gap_s: float = 0.1  # no command of an arm this close to a mid-episode tick: error
    max_abs_value: float = 100.0  # |value| bound on proprio / action / env state
    gripper_range: tuple[float, float] = (-0.01, 0.1)  # metres, contract says 0 .. 0.088
    quaternion_norm_tolerance: float = 0.05
    use_env_state: bool = True  # store /sim/env_state when the bag has it
    default_source: str | None = None  # for bags with neither sidecar nor START event
    default_task: str | None = None
    # Removed key, kept only to say what replaced it (an old caller gets one clear line).
    command_sync_tolerance_s: None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.command_sync_tolerance_s is not None:
            raise ValueError(
                "command_sync_tolerance_s: removed; use max_command_gap_s (arms are paired per "
                f"tick, only a gap is an error), got {self.command_sync_tolerance_s!r}"
            )
        for cam in self.cameras:
            if cam not in CAMERA_NAMES:
                raise ValueError(f"cameras: unknown camera {cam!r}; valid: {list(CAMERA_NAMES)}")
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras: duplicates in {self.cameras}")
        if not (8 <= self.image_size <= 1024):
            raise ValueError(f"image_size: must be in [8, 1024], got {self.image_size!r}")
        if self.proprio not in ("auto", "ee", "joint"):
            raise ValueError(f"proprio: {self.proprio!r} is not one of ['auto', 'ee', 'joint']")
        if not self.max_obs_staleness_s > 0:
            raise ValueError(f"max_obs_staleness_s: must be > 0, got {self.max_obs_staleness_s}")
        if not self.max_command_gap_s > 0:
            raise ValueError(f"max_command_gap_s: must be > 0, got {self.max_command_gap_s}")
        if not self.max_abs_value > 0:
            raise ValueError(f"max_abs_value: must be > 0, got {self.max_abs_value}")
        lo, hi = self.gripper_range
        if not lo < hi:
            raise ValueError(f"gripper_range: lower bound must be below upper, got {lo}, {hi}")
        if self.default_source is not None and self.default_source not in SOURCES:
            raise ValueError(f"default_source: {self.default_source!r} not in {list(SOURCES)}")

    def fingerprint(self) -> dict[str, Any]:
        """The settings that shape stored arrays (a store built with others must be rebuilt).

        `arrays` versions the per-frame keys: 2 added `safety` (and the optional
        `requested_action`), so a store of version-1 episodes is refused, not appended to.
        """
        return {
            "cameras": list(self.cameras),
            "image_size": self.image_size,
            "proprio": self.proprio,
            "arrays": ARRAYS_VERSION,
        }


@dataclass
class EpisodeInfo:
    """Episode-level facts (sidecar, events, or defaults) plus what extraction found."""

    episode_id: str
    task: str
    source: str
    outcome: str
    # "sidecar" | "event" | "truncated" (unknown: the recording lost its end) | "default"
    # (unknown: nothing said)
    outcome_from: str
    round: int
    model_index: int
    robot: str
    control_hz: float
    t_max_steps: int
    intervened: bool
    truncated: bool
    dropped_leading_frames: int
    bag_dir: str
    dropped_trailing_frames: int = 0  # clock ticks after the other arm's last command
    # How the other arm's commands were paired with the clock ticks, and the |log-time offset|
    # between each frame's tick and its paired command (ms).
    command_pairing: str = "log_time"  # "stamp" | "log_time"
    command_skew_median_ms: float = 0.0
    command_skew_p95_ms: float = 0.0
    command_skew_max_ms: float = 0.0
    # What a recovery of a torn / damaged bag kept and lost ("" for a bag read whole), e.g.
    # "recovered 412 frames (4130 messages in 14 complete chunks); torn at byte ...".
    recovery: str = ""
    # Plain lines on where the facts came from (outcome source, how the bag was read).
    provenance: list[str] = field(default_factory=list)
    # What a user should look at before training on it (ids that disagree, an outcome dropped).
    warnings: list[str] = field(default_factory=list)


@dataclass
class Episode:
    """Per-frame arrays keyed by features.py keys, all of length T along axis 0."""

    info: EpisodeInfo
    arrays: dict[str, np.ndarray]
    action_arm_dims: int  # D / number of arms: arm a owns dims [a*k, (a+1)*k)
    action_mode: int  # MODE_EE or MODE_JOINT
    notes: list[str] = field(default_factory=list)

    @property
    def length(self) -> int:
        return int(self.arrays[ACTION].shape[0])


class Series:
    """Messages of one topic as parallel lists (log time, header stamp, value)."""

    def __init__(self) -> None:
        self.times: list[int] = []
        self.stamps: list[int] = []
        self.values: list[Any] = []

    def add(self, log_ns: int, stamp_ns: int, value: Any) -> None:
        self.times.append(log_ns)
        self.stamps.append(stamp_ns)
        self.values.append(value)


def header_stamp(msg: Any) -> int:
    header = getattr(msg, "header", None)
    if header is None:
        return 0
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


class Where:
    """Formats 'file: topic @ t=...: what[ (torn bag: ...)]' for error messages."""

    def __init__(self, path: Path, t0: int, suffix: str = "") -> None:
        self.path, self.t0, self.suffix = path, t0, suffix

    def __call__(
        self, topic: str, t_ns: int | None, what: str, *, doubt: bool = False
    ) -> EpisodeError:
        when = "" if t_ns is None else f" @ t={(t_ns - self.t0) / 1e9:.3f}s ({t_ns} ns)"
        cls = SummaryDoubt if doubt else EpisodeError
        return cls(f"{self.path}: {topic}{when}: {what}{self.suffix}")
