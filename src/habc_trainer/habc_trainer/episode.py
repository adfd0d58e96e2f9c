"""One bag -> one validated episode on the control clock (episode-format.md "Frames").

Frame t is the t-th executed command tick of the left arm (the clock): the commands of both
arms (the action; the right arm's is paired with the tick by arm_sync.py, by header stamp when
both arms carry the tick's stamp, else by log time), their safety bits, the mux's requests when
recorded, the authority in force at t, and the newest observation (joint state, EE pose, image,
env state) at or before t on the recorder's clock (bag log time: one clock for every topic,
unlike header stamps that a camera may take from its own hardware clock). Header stamps are
still checked for monotonicity.

Validation raises `EpisodeError` whose message names the file, the topic and the time and says
in plain words what is wrong: missing topic, log times or header stamps going backwards (a
log-time fault is named as one), stale observation, NaN / out-of-range value, dimension mismatch,
a sidecar that belongs to another episode, unreadable or empty file. The caller (convert)
reports it and skips the episode.

Outcome (episode-format.md "Outcome"): only a recording that reaches its end carries one (a
complete bag, or a torn one whose recovered data holds the END event or reaches the sidecar's
`end_ns`); then the sidecar `episode.yaml` > the last END / RELABEL event in the bag > unknown.
A torn bag that lost its end is `truncated` with outcome unknown, whatever its sidecar says: the
outcome describes frames that are gone, and labelling the recovered prefix with it would make its
last frame a false terminal. `EpisodeInfo.provenance` says where the outcome came from, how the
bag was read and what a recovery kept and lost.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from habc_core.bag_reader import BagContents, BagReadError, CompleteReadFailed, open_bag
from habc_core.contract import (
    AUTHORITY_HUMAN,
    AUTHORITY_TOPIC,
    ENV_STATE_TOPIC,
    EPISODE_EVENTS_TOPIC,
    EVENT_END,
    EVENT_RELABEL,
    EVENT_START,
    MODE_EE,
    MODE_JOINT,
    OUTCOMES,
    SIDECAR_NAME,
    SOURCES,
    EpisodeMeta,
    SidecarError,
    command_request_topic,
    command_topic,
    compressed_image_topic,
    ee_pose_topic,
    image_topic,
    joint_states_topic,
    read_sidecar,
)
from habc_core.features import (
    ACTION,
    ARM_NAMES,
    CAMERA_NAMES,
    ENV_STATE,
    HUMAN,
    MODEL_INDEX,
    PROPRIO,
    REQUESTED_ACTION,
    SAFETY,
    TIMESTAMP_NS,
    image_key,
)
from habc_trainer.arm_sync import pair_commands, skew_stats_ms

ProprioMode = Literal["auto", "ee", "joint"]
ARRAYS_VERSION = 2
_TARGET_DIMS = {MODE_JOINT: 6, MODE_EE: 9}


class EpisodeError(ValueError):
    """An episode that breaks the contract; the message names file, topic and time."""


class _SummaryDoubt(EpisodeError):
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


class _Series:
    """Messages of one topic as parallel lists (log time, header stamp, value)."""

    def __init__(self) -> None:
        self.times: list[int] = []
        self.stamps: list[int] = []
        self.values: list[Any] = []

    def add(self, log_ns: int, stamp_ns: int, value: Any) -> None:
        self.times.append(log_ns)
        self.stamps.append(stamp_ns)
        self.values.append(value)


def _stamp(msg: Any) -> int:
    header = getattr(msg, "header", None)
    if header is None:
        return 0
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


class _Where:
    """Formats 'file: topic @ t=...: what[ (torn bag: ...)]' for error messages."""

    def __init__(self, path: Path, t0: int, suffix: str = "") -> None:
        self.path, self.t0, self.suffix = path, t0, suffix

    def __call__(
        self, topic: str, t_ns: int | None, what: str, *, doubt: bool = False
    ) -> EpisodeError:
        when = "" if t_ns is None else f" @ t={(t_ns - self.t0) / 1e9:.3f}s ({t_ns} ns)"
        cls = _SummaryDoubt if doubt else EpisodeError
        return cls(f"{self.path}: {topic}{when}: {what}{self.suffix}")


_JPEG_REDUCED = (
    (8, cv2.IMREAD_REDUCED_COLOR_8),
    (4, cv2.IMREAD_REDUCED_COLOR_4),
    (2, cv2.IMREAD_REDUCED_COLOR_2),
)


def _reduced_flag(height: int, width: int, size: int) -> int:
    """The coarsest JPEG DCT-domain downscale that still leaves >= size pixels per side."""
    for factor, flag in _JPEG_REDUCED:
        if min(height, width) // factor >= size:
            return flag
    return cv2.IMREAD_COLOR


def _decode_image(msg: Any, msgtype: str, flag: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Image / CompressedImage -> (h, w, 3) uint8 RGB (`flag`: cv2 decode flag for JPEG)."""
    data = np.asarray(msg.data, dtype=np.uint8)
    if msgtype.endswith("CompressedImage"):
        bgr = cv2.imdecode(data, flag)
        if bgr is None:
            raise ValueError(f"undecodable compressed image (format {msg.format!r})")
        return bgr[:, :, ::-1]
    enc = msg.encoding.lower()
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}.get(enc)
    if channels is None:
        raise ValueError(f"unsupported image encoding {msg.encoding!r}")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if step < w * channels or data.size < h * step:
        raise ValueError(f"image buffer {data.size} B too small for {w}x{h} {enc} step {step}")
    img = data[: h * step].reshape(h, step)[:, : w * channels].reshape(h, w, channels)
    if enc == "mono8":
        return np.repeat(img, 3, axis=2)
    if enc.startswith("bgr"):
        return img[:, :, 2::-1]
    return img[:, :, :3]


def _rot6d_from_quat(q: np.ndarray) -> np.ndarray:
    """(N, 4) x, y, z, w -> (N, 6) first two columns of R, column-major (ArmCommand layout)."""
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    x, y, z, w = q.T
    col0 = np.stack([1 - 2 * (y * y + z * z), 2 * (x * y + z * w), 2 * (x * z - y * w)], axis=1)
    col1 = np.stack([2 * (x * y - z * w), 1 - 2 * (x * x + z * z), 2 * (y * z + x * w)], axis=1)
    return np.concatenate([col0, col1], axis=1)


def _newest_at_or_before(times: np.ndarray, ticks: np.ndarray) -> np.ndarray:
    """Index of the newest sample with time <= tick (-1 when none)."""
    return np.searchsorted(times, ticks, side="right") - 1


def extract_episode(bag_dir: Path | str, cfg: ExtractConfig | None = None) -> Episode:
    """Read, validate and resample one episode bag (see module docstring)."""
    cfg = cfg or ExtractConfig()
    bag_dir = Path(bag_dir)
    try:
        sidecar = read_sidecar(bag_dir)
    except SidecarError as exc:
        raise EpisodeError(str(exc)) from exc
    try:
        bag = open_bag(bag_dir)
        first: EpisodeError | None = None
        try:
            with bag:
                return _extract(bag, bag_dir, sidecar, cfg)
        except CompleteReadFailed as exc:
            # rosbags opened the bag but met a chunk it cannot read (a damaged chunk): the
            # streaming reader keeps every good chunk before it.
            cause = str(exc)
        except _SummaryDoubt as exc:
            if bag.read_by != "rosbags" or bag.storage_path.suffix != ".mcap":
                raise
            first, cause = exc, f"through its summary: {exc}"
        bag = open_bag(bag_dir, stream=True, cause=cause)
        try:
            with bag:
                return _extract(bag, bag_dir, sidecar, cfg)
        except EpisodeError:
            if first is None:
                raise
            raise first from None  # the data agrees with the summary: the first verdict holds
    except BagReadError as exc:
        raise EpisodeError(str(exc)) from exc


def _extract(
    bag: BagContents, bag_dir: Path, sidecar: EpisodeMeta | None, cfg: ExtractConfig
) -> Episode:
    torn = f" (torn bag: {bag.recovery.describe()})" if bag.recovery is not None else ""
    where = _Where(bag.storage_path, 0, torn)
    wanted_cams = {}
    for cam in cfg.cameras:
        raw, comp = image_topic(cam), compressed_image_topic(cam)
        if raw in bag.topics:
            wanted_cams[raw] = cam
        elif comp in bag.topics:
            wanted_cams[comp] = cam
        else:
            raise where(
                raw, None, "missing topic (neither raw nor /compressed recorded)", doubt=True
            )
    required = [command_topic(a) for a in ARM_NAMES] + [joint_states_topic(a) for a in ARM_NAMES]
    for topic in required:
        if topic not in bag.topics:
            raise where(topic, None, "missing topic", doubt=True)

    request_topics = {command_request_topic(a) for a in ARM_NAMES}
    series: dict[str, _Series] = defaultdict(_Series)
    events: list[tuple[int, Any]] = []
    jpeg_flags: dict[str, int] = {}
    first_time: int | None = None
    last_time: int | None = None
    messages = bag.messages()
    while True:
        try:
            topic, msgtype, log_ns, msg = next(messages)
        except StopIteration:
            break
        except CompleteReadFailed:
            raise
        except BagReadError as exc:
            raise EpisodeError(f"{exc}{torn}") from exc
        first_time = log_ns if first_time is None else min(first_time, log_ns)
        last_time = log_ns if last_time is None else max(last_time, log_ns)
        try:
            if topic == EPISODE_EVENTS_TOPIC:
                events.append((log_ns, msg))
            elif topic in wanted_cams:
                try:
                    img = _decode_image(msg, msgtype, jpeg_flags.get(topic, cv2.IMREAD_COLOR))
                except ValueError as exc:
                    raise where(topic, log_ns, str(exc)) from exc
                if topic not in jpeg_flags:
                    # Decoding JPEG at 1/2..1/8 scale is several times faster than full size,
                    # and so is the area resize of the smaller image.
                    jpeg_flags[topic] = _reduced_flag(img.shape[0], img.shape[1], cfg.image_size)
                small = cv2.resize(
                    img, (cfg.image_size, cfg.image_size), interpolation=cv2.INTER_AREA
                )
                series[topic].add(log_ns, _stamp(msg), small)
            elif topic.endswith("/command") and topic in required:
                value = (
                    int(msg.mode),
                    np.asarray(msg.targets, dtype=np.float64),
                    float(msg.gripper),
                    int(msg.authority),
                    int(msg.model_index),
                    # Bags recorded before the field existed carry its old definition: no bits.
                    int(getattr(msg, "safety", 0)),
                )
                series[topic].add(log_ns, _stamp(msg), value)
            elif topic in request_topics:
                value = (
                    int(msg.mode),
                    np.asarray(msg.targets, dtype=np.float64),
                    float(msg.gripper),
                )
                series[topic].add(log_ns, _stamp(msg), value)
            elif topic.endswith("/joint_states") and topic in required:
                series[topic].add(log_ns, _stamp(msg), np.asarray(msg.position, np.float64))
            elif topic in (ee_pose_topic(a) for a in ARM_NAMES):
                p, o = msg.pose.position, msg.pose.orientation
                series[topic].add(
                    log_ns, _stamp(msg), np.array([p.x, p.y, p.z, o.x, o.y, o.z, o.w])
                )
            elif topic == AUTHORITY_TOPIC:
                series[topic].add(
                    log_ns, _stamp(msg), (list(msg.arm_names), np.asarray(msg.authority))
                )
            elif topic == ENV_STATE_TOPIC and cfg.use_env_state:
                series[topic].add(log_ns, _stamp(msg), np.asarray(msg.data, np.float64))
        except EpisodeError:
            raise
        except Exception as exc:  # noqa: BLE001 - a message unlike the contract's
            raise where(topic, log_ns, _field_problem(msgtype, exc), doubt=True) from exc
    where.t0 = first_time or 0

    for topic, s in series.items():
        _check_monotonic(where, topic, s)

    info = _episode_info(bag_dir, bag, sidecar, events, last_time, cfg, where)
    episode = _resample(series, wanted_cams, info, cfg, where)
    if bag.recovery is not None:
        info.recovery = f"recovered {episode.length} frames ({bag.recovery.describe()})"
        info.provenance.insert(0, info.recovery)
    return episode


def _field_problem(msgtype: str, exc: Exception) -> str:
    """Plain words for a message that deserialized but is not what the contract reads."""
    if isinstance(exc, AttributeError):
        name = getattr(exc, "name", None)
        return f"a {msgtype} message lacks the field {name or '?'!r} the contract reads"
    return (
        f"a {msgtype} message holds a value of the wrong kind or size for the contract "
        f"({type(exc).__name__})"
    )


def _check_monotonic(where: _Where, topic: str, s: _Series) -> None:
    times = np.asarray(s.times, dtype=np.int64)
    back = np.flatnonzero(np.diff(times) < 0)
    if back.size:
        # The streaming reader yields file order: per topic it must already be time-sorted.
        i = int(back[0]) + 1
        raise where(
            topic,
            int(times[i]),
            f"log-time fault: log times go backwards (non-monotonic log times: {times[i]} ns "
            f"after {times[i - 1]} ns)",
        )
    stamps = np.asarray(s.stamps, dtype=np.int64)
    back = np.flatnonzero(np.diff(stamps) < 0)
    if back.size:
        i = int(back[0]) + 1
        j = _misplaced_log_time(times, stamps, i)
        if j is not None:
            raise where(
                topic,
                int(times[j]),
                "log-time fault: this message's log time is "
                f"{(times[j] - stamps[j]) / 1e9:+.3f}s from its header stamp while the topic's "
                f"others are {np.median(times - stamps) / 1e9:+.3f}s, so ordered by log time "
                "the header stamps go backwards",
            )
        raise where(
            topic,
            int(times[i]),
            f"non-monotonic header stamps ({stamps[i]} < {stamps[i - 1]}; log times are in "
            "order: the stamping clock went back)",
        )


def _misplaced_log_time(times: np.ndarray, stamps: np.ndarray, i: int) -> int | None:
    """The message (i - 1 or i) whose log time, not header stamp, breaks the stamp order.

    A reader that sorts by log time moves a message with a wrong log time away from its
    neighbours: it leaves a hole in the log times where it belonged (its header stamp plus the
    topic's usual log - stamp offset). A wrong header stamp leaves the log times regular.
    """
    if len(times) < 4:
        return None
    offsets = times - stamps
    usual = int(np.median(offsets))
    j = max((i - 1, i), key=lambda k: abs(int(offsets[k]) - usual))
    others = np.delete(times, j)
    period = float(np.median(np.diff(others)))
    if period <= 0:
        return None
    pos = int(np.searchsorted(others, stamps[j] + usual))
    if 0 < pos < len(others) and others[pos] - others[pos - 1] >= 1.5 * period:
        return j
    return None


def _episode_info(
    bag_dir: Path,
    bag: BagContents,
    sidecar: EpisodeMeta | None,
    events: list[tuple[int, Any]],
    last_ns: int | None,
    cfg: ExtractConfig,
    where: _Where,
) -> EpisodeInfo:
    provenance = list(bag.notes)
    warnings: list[str] = []
    start = next((m for _t, m in events if m.event == EVENT_START), None)
    bag_id = start.episode_id if start is not None and start.episode_id else None
    closing = [m for _t, m in events if m.event in (EVENT_END, EVENT_RELABEL)]
    # One bag is one episode: an END of another episode says nothing about this one.
    foreign = [m for m in closing if bag_id and m.episode_id and m.episode_id != bag_id]
    if foreign:
        warnings.append(
            f"{len(foreign)} END/RELABEL event(s) of episode {foreign[0].episode_id!r} in the "
            f"bag of {bag_id!r} were ignored"
        )
    closing = [m for m in closing if not (bag_id and m.episode_id and m.episode_id != bag_id)]
    ends = [m for m in closing if m.outcome]
    # Without a START event, an END / RELABEL event still names the recording.
    recorded_id = bag_id or next((m.episode_id for m in closing if m.episode_id), None)
    episode_id = _checked_episode_id(bag_dir, sidecar, recorded_id, warnings)
    has_end = any(m.event == EVENT_END for m in closing)
    reaches_end = _reaches_end(bag, sidecar, has_end, last_ns)

    if sidecar is not None:
        info = EpisodeInfo(
            episode_id=episode_id,
            task=sidecar.task,
            source=sidecar.source,
            outcome=sidecar.outcome,
            outcome_from="sidecar",
            round=sidecar.round,
            model_index=sidecar.model_index,
            robot=sidecar.robot,
            control_hz=float(sidecar.control_hz),
            t_max_steps=sidecar.t_max_steps,
            intervened=sidecar.intervened,
            truncated=bag.truncated,
            dropped_leading_frames=0,
            bag_dir=str(bag_dir),
        )
        if reaches_end:
            provenance.append(f"outcome {sidecar.outcome} from the sidecar")
        else:
            info.outcome, info.outcome_from = "unknown", "truncated"
            lost = (sidecar.end_ns - last_ns) / 1e9 if last_ns is not None else float("nan")
            warnings.append(
                f"the sidecar says {sidecar.outcome}, not applied: the recovered recording stops "
                f"{lost:.3f}s before the sidecar's end_ns and holds no END event, so the "
                "outcome would label frames that are lost; stored as unknown"
            )
        info.provenance, info.warnings = provenance, warnings
        return info

    src_msg = start or (ends[-1] if ends else None)
    source = src_msg.source if src_msg is not None and src_msg.source else cfg.default_source
    task = src_msg.task if src_msg is not None and src_msg.task else cfg.default_task
    if source not in SOURCES:
        raise where(
            EPISODE_EVENTS_TOPIC,
            None,
            f"no sidecar and no usable START event (source {source!r}); pass a default source",
        )
    if not task:
        raise where(
            EPISODE_EVENTS_TOPIC, None, "no sidecar and no task in the events; pass a default task"
        )
    outcome, outcome_from = "unknown", "default"
    if not reaches_end:
        # The recording lost its end: an outcome describes frames that are gone.
        outcome_from = "truncated"
        provenance.append("no sidecar and no END event in the recovered data: outcome unknown")
    elif ends:
        outcome, outcome_from = ends[-1].outcome, "event"
        kind = "END" if ends[-1].event == EVENT_END else "RELABEL"
        provenance.append(f"outcome {outcome} from the {kind} event (no sidecar)")
    else:
        provenance.append("no sidecar and no END event with an outcome: outcome unknown")
    if outcome not in OUTCOMES:
        raise where(EPISODE_EVENTS_TOPIC, None, f"invalid outcome {outcome!r}")
    return EpisodeInfo(
        episode_id=episode_id,
        task=task,
        source=source,
        outcome=outcome,
        outcome_from=outcome_from,
        round=int(src_msg.round) if src_msg is not None else 0,
        model_index=int(src_msg.model_index) if src_msg is not None else -1,
        robot="unknown",
        control_hz=0.0,  # estimated from the command ticks below
        t_max_steps=0,
        intervened=False,
        truncated=bag.truncated,
        dropped_leading_frames=0,
        bag_dir=str(bag_dir),
        provenance=provenance,
        warnings=warnings,
    )


def _checked_episode_id(
    bag_dir: Path, sidecar: EpisodeMeta | None, bag_id: str | None, warnings: list[str]
) -> str:
    """The episode's id, after checking that the sidecar belongs to this bag.

    `bag_id` is the id the recording's own events carry (START, else END / RELABEL). The sidecar
    carries the outcome, so a sidecar of another episode (copied, or a bag moved under another
    episode's folder) would mislabel this one: it is an error when its id disagrees with the
    bag's events, or, without events, with the folder name. A folder renamed after recording
    (sidecar and events agree) is accepted with a warning.
    """
    folder = bag_dir.name
    sidecar_file = bag_dir / SIDECAR_NAME
    if sidecar is not None:
        if bag_id is not None and sidecar.episode_id != bag_id:
            raise EpisodeError(
                f"{sidecar_file}: episode_id mismatch: the sidecar says "
                f"{sidecar.episode_id!r}, the bag's events say {bag_id!r} (folder "
                f"{folder!r}); the sidecar's outcome would label another episode's recording. "
                "Put this episode's own episode.yaml here, or remove it to use the bag's events"
            )
        if bag_id is None and sidecar.episode_id != folder:
            raise EpisodeError(
                f"{sidecar_file}: episode_id mismatch: the sidecar says "
                f"{sidecar.episode_id!r}, its folder is {folder!r}, and the bag has no START / "
                "END event to tell which is right; a sidecar copied from another episode would "
                "mislabel this one. Fix episode_id in episode.yaml or rename the folder"
            )
        if sidecar.episode_id != folder:
            warnings.append(
                f"folder {folder!r} is not the episode_id {sidecar.episode_id!r} its sidecar and "
                "events agree on (a renamed folder?); stored under the sidecar's id"
            )
        return sidecar.episode_id
    if bag_id is not None and bag_id != folder:
        warnings.append(
            f"folder {folder!r} holds the recording of episode {bag_id!r} (its events); stored "
            "under the events' id"
        )
    return bag_id or folder


def _reaches_end(
    bag: BagContents, sidecar: EpisodeMeta | None, has_end: bool, last_ns: int | None
) -> bool:
    """Whether the data read holds the episode's end (so an outcome may describe it)."""
    if not bag.truncated or has_end:
        return True
    if bag.recovery is not None and bag.recovery.data_complete:
        return True  # only the summary / index after the data was lost
    if sidecar is None or last_ns is None:
        return False
    # A bag without events: its data reaches the sidecar's end (within one and a half periods).
    return last_ns >= sidecar.end_ns - 1.5e9 / float(sidecar.control_hz)


def _resample(
    series: dict[str, _Series],
    wanted_cams: dict[str, str],
    info: EpisodeInfo,
    cfg: ExtractConfig,
    where: _Where,
) -> Episode:
    cmd_topics = [command_topic(a) for a in ARM_NAMES]
    for topic in cmd_topics:
        if not series[topic].times:
            raise where(
                topic, None, "no messages (empty or fully truncated recording)", doubt=True
            )
    clock = np.asarray(series[cmd_topics[0]].times, dtype=np.int64)
    dup = np.flatnonzero(np.diff(clock) <= 0)
    if dup.size:
        raise where(cmd_topics[0], int(clock[dup[0] + 1]), "two command ticks at one time")
    if info.control_hz <= 0:
        if len(clock) < 2:
            raise where(cmd_topics[0], None, "cannot estimate control_hz from < 2 ticks")
        info.control_hz = float(1e9 / np.median(np.diff(clock)))
    max_gap_ns = cfg.max_command_gap_s * 1e9
    stale_ns = cfg.max_obs_staleness_s * 1e9

    obs_topics = [joint_states_topic(a) for a in ARM_NAMES] + list(wanted_cams)
    proprio_mode = cfg.proprio
    modes = {v[0] for t in cmd_topics for v in series[t].values}
    if len(modes) != 1:
        raise where(cmd_topics[0], None, f"mixed command modes {sorted(modes)} in one episode")
    action_mode = modes.pop()
    if action_mode not in _TARGET_DIMS:
        raise where(cmd_topics[0], None, f"unknown command mode {action_mode}")
    if proprio_mode == "auto":
        proprio_mode = "ee" if action_mode == MODE_EE else "joint"
    if proprio_mode == "ee":
        for arm in ARM_NAMES:
            if not series[ee_pose_topic(arm)].times:
                raise where(
                    ee_pose_topic(arm), None, "missing topic (needed for EE proprio)", doubt=True
                )
            obs_topics.append(ee_pose_topic(arm))
    env_topic = (
        ENV_STATE_TOPIC if series.get(ENV_STATE_TOPIC) and series[ENV_STATE_TOPIC].times else None
    )
    if env_topic:
        obs_topics.append(env_topic)
    for topic in obs_topics:
        if not series[topic].times:
            raise where(topic, None, "no messages", doubt=True)

    # Ticks before every observation has arrived once cannot be frames (nothing to observe).
    first_obs = max(series[t].times[0] for t in obs_topics)
    keep = clock >= first_obs
    if not keep.any():
        raise where(obs_topics[0], int(first_obs), "no command tick after the first observation")
    start, stop = int(np.argmax(keep)), len(clock)
    # The other arm is resampled onto the clock on its own (arm_sync.py): a skew is paired, the
    # ticks before its first / after its last command are dropped, a hole mid-episode is an error.
    clock_stamps = np.asarray(series[cmd_topics[0]].stamps, dtype=np.int64)
    cmd_index = {cmd_topics[0]: np.arange(len(clock))}
    pairings = []
    for arm, topic in zip(ARM_NAMES[1:], cmd_topics[1:], strict=True):
        s = series[topic]
        times = np.asarray(s.times, dtype=np.int64)
        pairing = pair_commands(
            clock, clock_stamps, times, np.asarray(s.stamps, dtype=np.int64), max_gap_ns
        )
        if pairing.lead >= len(clock):
            raise where(
                topic,
                None,
                f"no {arm} command within {cfg.max_command_gap_s}s of any {ARM_NAMES[0]} "
                "command tick",
            )
        start, stop = max(start, pairing.lead), min(stop, len(clock) - pairing.trail)
        cmd_index[topic] = pairing.index
        pairings.append((arm, topic, pairing))
    if start >= stop:
        raise where(cmd_topics[0], None, "no tick with both arms' commands and every observation")
    for arm, topic, pairing in pairings:
        inside = np.flatnonzero((pairing.gaps >= start) & (pairing.gaps < stop))
        if inside.size:
            k = int(inside[0])
            raise where(
                topic,
                int(clock[pairing.gaps[k]]),
                f"no {arm} command within {cfg.max_command_gap_s}s of the tick (nearest usable "
                f"{pairing.gap_ns[k] / 1e9:.3f}s away; paired by {pairing.mode}): a gap in the "
                "middle of the episode",
            )
    ticks = clock[start:stop]
    info.dropped_leading_frames = start
    info.dropped_trailing_frames = len(clock) - stop
    n = len(ticks)
    offsets = [
        np.asarray(series[t].times, dtype=np.int64)[p.index[start:stop]] - ticks
        for _arm, t, p in pairings
    ]
    skew = skew_stats_ms(np.concatenate(offsets) if offsets else np.zeros(0, np.int64))
    info.command_pairing = pairings[0][2].mode if pairings else "stamp"
    info.command_skew_median_ms = skew["median"]
    info.command_skew_p95_ms = skew["p95"]
    info.command_skew_max_ms = skew["max"]

    def pick(topic: str) -> np.ndarray:
        times = np.asarray(series[topic].times, dtype=np.int64)
        idx = _newest_at_or_before(times, ticks)
        age = ticks - times[idx]
        bad = np.flatnonzero(age > stale_ns)
        if bad.size:
            i = int(bad[0])
            raise where(
                topic,
                int(ticks[i]),
                f"stale observation: newest is {age[i] / 1e9:.3f}s "
                f"old (bound {cfg.max_obs_staleness_s}s)",
            )
        return idx

    arrays: dict[str, np.ndarray] = {}
    # --- actions: both arms' executed commands of each tick, their safety bits, the requests ---
    action_parts, authority_cmd, model_idx, safety = [], [], [], []
    for topic in cmd_topics:
        s = series[topic]
        idx = cmd_index[topic][start:stop]
        arr = _command_rows(where, topic, s, idx, action_mode)
        _check_values(where, topic, ticks, arr, cfg, gripper_col=arr.shape[1] - 1)
        action_parts.append(arr)
        authority_cmd.append(np.array([s.values[i][3] for i in idx]))
        model_idx.append(np.array([s.values[i][4] for i in idx], dtype=np.int64))
        safety.append(np.array([s.values[i][5] for i in idx], dtype=np.uint8))
    arrays[ACTION] = np.concatenate(action_parts, axis=1).astype(np.float32)
    arrays[SAFETY] = np.stack(safety, axis=1)
    arm_dims = action_parts[0].shape[1]
    req_topics = [command_request_topic(a) for a in ARM_NAMES]
    if all(series.get(t) is not None and series[t].times for t in req_topics):
        parts = []
        for topic, ctopic in zip(req_topics, cmd_topics, strict=True):
            # The request behind an executed command precedes that arm's own command; the
            # clock tick may precede it when the arms are skewed.
            cmd_times = np.asarray(series[ctopic].times, dtype=np.int64)
            sent = cmd_times[cmd_index[ctopic][start:stop]]
            parts.append(_request_rows(where, topic, series[topic], sent, action_mode, cfg))
        arrays[REQUESTED_ACTION] = np.concatenate(parts, axis=1).astype(np.float32)

    # --- authority in force at t: /control_authority, else the command's own field ---
    human = np.stack([a == AUTHORITY_HUMAN for a in authority_cmd], axis=1)
    auth_series = series.get(AUTHORITY_TOPIC)
    if auth_series is not None and auth_series.times:
        times = np.asarray(auth_series.times, dtype=np.int64)
        idx = _newest_at_or_before(times, ticks)
        for k in np.flatnonzero(idx >= 0):
            names, values = auth_series.values[idx[k]]
            if len(names) != len(values):
                raise where(
                    AUTHORITY_TOPIC,
                    int(times[idx[k]]),
                    f"dimension mismatch: {len(names)} arm names, {len(values)} authorities",
                )
            lookup = dict(zip(names, values, strict=True))
            for a, arm in enumerate(ARM_NAMES):
                if arm in lookup:
                    human[k, a] = int(lookup[arm]) == AUTHORITY_HUMAN
    arrays[HUMAN] = human
    # The actor that acted: policy arms carry its index; human / hold carry -1.
    arrays[MODEL_INDEX] = np.max(np.stack(model_idx, axis=1), axis=1)
    arrays[TIMESTAMP_NS] = ticks.copy()

    # --- proprio ---
    parts = []
    for arm in ARM_NAMES:
        topic = joint_states_topic(arm)
        s = series[topic]
        idx = pick(topic)
        widths = {len(s.values[i]) for i in idx}
        if len(widths) != 1 or widths.pop() < 2:
            raise where(
                topic,
                None,
                f"dimension mismatch: joint state widths {sorted({len(v) for v in s.values})}",
            )
        joints = np.stack([s.values[i] for i in idx])
        _check_values(where, topic, ticks, joints, cfg, gripper_col=joints.shape[1] - 1)
        gripper = joints[:, -1:]
        if proprio_mode == "joint":
            parts.append(joints)
        else:
            etopic = ee_pose_topic(arm)
            e = series[etopic]
            eidx = pick(etopic)
            pose = np.stack([e.values[i] for i in eidx])
            _check_values(where, etopic, ticks, pose, cfg)
            qn = np.linalg.norm(pose[:, 3:], axis=1)
            bad = np.flatnonzero(np.abs(qn - 1) > cfg.quaternion_norm_tolerance)
            if bad.size:
                raise where(
                    etopic, int(ticks[bad[0]]), f"out-of-range quaternion norm {qn[bad[0]]:.4f}"
                )
            parts.append(np.concatenate([pose[:, :3], _rot6d_from_quat(pose[:, 3:]), gripper], 1))
    arrays[PROPRIO] = np.concatenate(parts, axis=1).astype(np.float32)

    if env_topic:
        s = series[env_topic]
        idx = pick(env_topic)
        widths = {len(s.values[i]) for i in idx}
        if len(widths) != 1:
            raise where(env_topic, None, f"dimension mismatch: env state widths {sorted(widths)}")
        env = np.stack([s.values[i] for i in idx])
        _check_values(where, env_topic, ticks, env, cfg)
        arrays[ENV_STATE] = env.astype(np.float32)

    for topic, cam in wanted_cams.items():
        s = series[topic]
        idx = pick(topic)
        arrays[image_key(cam)] = np.stack([s.values[i] for i in idx])

    if not info.intervened:
        info.intervened = bool(human.any()) and info.source != "demo"
    if info.t_max_steps <= 0:
        info.t_max_steps = n
    return Episode(info=info, arrays=arrays, action_arm_dims=arm_dims, action_mode=action_mode)


def _command_rows(
    where: _Where, topic: str, s: _Series, idx: np.ndarray, action_mode: int
) -> np.ndarray:
    """(n, k) targets + gripper of the commands `idx` of one arm."""
    want = _TARGET_DIMS[action_mode]
    rows = []
    for i in idx:
        targets, gripper = s.values[i][1], s.values[i][2]
        if targets.shape != (want,):
            raise where(
                topic,
                int(s.times[i]),
                f"dimension mismatch: {targets.shape[0]} targets, mode {action_mode} needs {want}",
            )
        rows.append(np.append(targets, gripper))
    return np.asarray(rows, dtype=np.float64).reshape(len(idx), want + 1)


def _request_rows(
    where: _Where,
    topic: str,
    s: _Series,
    sent: np.ndarray,
    action_mode: int,
    cfg: ExtractConfig,
) -> np.ndarray:
    """(n, k) per frame the newest request at or before the arm's executed command; NaN rows
    before the first request. Finite rows are checked for |x|, not for the gripper range: a
    request may ask for more than the arm executes, which is what it is recorded for. A NaN/inf
    request is kept as a NaN row: the driver refused it and held the arm, and the executed
    command (the action) is what the episode is judged by."""
    times = np.asarray(s.times, dtype=np.int64)
    idx = _newest_at_or_before(times, sent)
    want = _TARGET_DIMS[action_mode]
    out = np.full((len(sent), want + 1), np.nan)
    valid = np.flatnonzero(idx >= 0)
    for k in valid:
        mode, targets, gripper = s.values[idx[k]]
        if mode != action_mode:
            raise where(
                topic, int(times[idx[k]]), f"request mode {mode}, executed mode {action_mode}"
            )
        if targets.shape != (want,):
            raise where(
                topic,
                int(times[idx[k]]),
                f"dimension mismatch: {targets.shape[0]} targets, mode {action_mode} needs {want}",
            )
        row = np.append(targets, gripper)
        out[k] = row if np.isfinite(row).all() else np.nan
    finite = valid[np.isfinite(out[valid]).all(axis=1)]
    _check_values(where, topic, times[idx[finite]], out[finite], cfg)
    return out


def _check_values(
    where: _Where,
    topic: str,
    ticks: np.ndarray,
    values: np.ndarray,
    cfg: ExtractConfig,
    *,
    gripper_col: int | None = None,
) -> None:
    """NaN / inf, |value| > max_abs_value, gripper outside gripper_range -> EpisodeError."""
    bad_rows = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if bad_rows.size:
        i = int(bad_rows[0])
        raise where(topic, int(ticks[i]), f"NaN/inf value {values[i].tolist()}")
    big = np.flatnonzero((np.abs(values) > cfg.max_abs_value).any(axis=1))
    if big.size:
        i = int(big[0])
        raise where(
            topic,
            int(ticks[i]),
            f"out-of-range value (|x| > {cfg.max_abs_value}): {values[i].tolist()}",
        )
    if gripper_col is not None:
        lo, hi = cfg.gripper_range
        g = values[:, gripper_col]
        bad = np.flatnonzero((g < lo) | (g > hi))
        if bad.size:
            i = int(bad[0])
            raise where(
                topic, int(ticks[i]), f"out-of-range gripper {g[i]:.4f} (range {lo} .. {hi})"
            )
