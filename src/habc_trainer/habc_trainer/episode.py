"""One bag -> one validated episode on the control clock (episode-format.md "Frames").

Frame t is the t-th executed command tick: the commands of both arms (the action), the authority
in force at t, and the newest observation (joint state, EE pose, image, env state) at or before t
on the recorder's clock (bag log time: one clock for every topic, unlike header stamps that a
camera may take from its own hardware clock). Header stamps are still checked for monotonicity.

Validation raises `EpisodeError` whose message names the file, the topic and the time: missing
topic, non-monotonic stamps, stale observation, NaN / out-of-range value, dimension mismatch,
unreadable or empty file. The caller (convert) reports it and skips the episode.

Outcome precedence: sidecar `episode.yaml` > the last END / RELABEL event in the bag > unknown.
A bag recovered from a torn MCAP is `truncated`; its outcome is unknown unless its sidecar says
otherwise.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from habc_trainer.bag_reader import BagReadError, open_bag
from habc_trainer.contract import (
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
    SOURCES,
    SidecarError,
    command_topic,
    compressed_image_topic,
    ee_pose_topic,
    image_topic,
    joint_states_topic,
    read_sidecar,
)
from habc_trainer.features import (
    ACTION,
    ARM_NAMES,
    CAMERA_NAMES,
    ENV_STATE,
    HUMAN,
    MODEL_INDEX,
    PROPRIO,
    TIMESTAMP_NS,
    image_key,
)

ProprioMode = Literal["auto", "ee", "joint"]
_TARGET_DIMS = {MODE_JOINT: 6, MODE_EE: 9}


class EpisodeError(ValueError):
    """An episode that breaks the contract; the message names file, topic and time."""


@dataclass(frozen=True)
class ExtractConfig:
    """How bags become frames. Every bound is a config key (no literals buried in code)."""

    cameras: tuple[str, ...] = CAMERA_NAMES  # () = state-only episodes, no images stored
    image_size: int = 96  # training resolution: images are area-resized to size x size
    proprio: ProprioMode = "auto"  # auto: EE pose when commands are MODE_EE, else joints
    max_obs_staleness_s: float = 0.25  # newest observation older than this at a tick: error
    command_sync_tolerance_s: float | None = None  # arm commands of one tick; None: half period
    max_abs_value: float = 100.0  # |value| bound on proprio / action / env state
    gripper_range: tuple[float, float] = (-0.01, 0.1)  # metres, contract says 0 .. 0.088
    quaternion_norm_tolerance: float = 0.05
    use_env_state: bool = True  # store /sim/env_state when the bag has it
    default_source: str | None = None  # for bags with neither sidecar nor START event
    default_task: str | None = None

    def __post_init__(self) -> None:
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
        tol = self.command_sync_tolerance_s
        if tol is not None and not tol > 0:
            raise ValueError(f"command_sync_tolerance_s: must be > 0 or None, got {tol}")
        if not self.max_abs_value > 0:
            raise ValueError(f"max_abs_value: must be > 0, got {self.max_abs_value}")
        lo, hi = self.gripper_range
        if not lo < hi:
            raise ValueError(f"gripper_range: lower bound must be below upper, got {lo}, {hi}")
        if self.default_source is not None and self.default_source not in SOURCES:
            raise ValueError(f"default_source: {self.default_source!r} not in {list(SOURCES)}")

    def fingerprint(self) -> dict[str, Any]:
        """The settings that shape stored arrays (a store built with others must be rebuilt)."""
        return {
            "cameras": list(self.cameras),
            "image_size": self.image_size,
            "proprio": self.proprio,
        }


@dataclass
class EpisodeInfo:
    """Episode-level facts (sidecar, events, or defaults) plus what extraction found."""

    episode_id: str
    task: str
    source: str
    outcome: str
    outcome_from: str  # "sidecar" | "event" | "truncated" (unknown) | "default" (unknown)
    round: int
    model_index: int
    robot: str
    control_hz: float
    t_max_steps: int
    intervened: bool
    truncated: bool
    dropped_leading_frames: int
    bag_dir: str


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
    """Formats 'file: topic @ t=...' for error messages."""

    def __init__(self, path: Path, t0: int) -> None:
        self.path, self.t0 = path, t0

    def __call__(self, topic: str, t_ns: int | None, what: str) -> EpisodeError:
        when = "" if t_ns is None else f" @ t={(t_ns - self.t0) / 1e9:.3f}s ({t_ns} ns)"
        return EpisodeError(f"{self.path}: {topic}{when}: {what}")


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
    except BagReadError as exc:
        raise EpisodeError(str(exc)) from exc
    with bag:
        return _extract(bag, bag_dir, sidecar, cfg)


def _extract(bag: Any, bag_dir: Path, sidecar: Any, cfg: ExtractConfig) -> Episode:

    where = _Where(bag.storage_path, 0)
    wanted_cams = {}
    for cam in cfg.cameras:
        raw, comp = image_topic(cam), compressed_image_topic(cam)
        if raw in bag.topics:
            wanted_cams[raw] = cam
        elif comp in bag.topics:
            wanted_cams[comp] = cam
        else:
            raise where(raw, None, "missing topic (neither raw nor /compressed recorded)")
    required = [command_topic(a) for a in ARM_NAMES] + [joint_states_topic(a) for a in ARM_NAMES]
    for topic in required:
        if topic not in bag.topics:
            raise where(topic, None, "missing topic")

    series: dict[str, _Series] = defaultdict(_Series)
    events: list[tuple[int, Any]] = []
    jpeg_flags: dict[str, int] = {}
    first_time: int | None = None
    try:
        for topic, msgtype, log_ns, msg in bag.messages():
            first_time = log_ns if first_time is None else min(first_time, log_ns)
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
    except Exception as exc:  # noqa: BLE001 - a corrupt message must not abort a conversion
        raise where(
            "<bag>", None, f"unreadable message data: {type(exc).__name__}: {exc}"
        ) from exc
    where.t0 = first_time or 0

    for topic, s in series.items():
        _check_monotonic(where, topic, s)

    info = _episode_info(bag_dir, bag.truncated, sidecar, events, cfg, where)
    return _resample(series, wanted_cams, info, cfg, where)


def _check_monotonic(where: _Where, topic: str, s: _Series) -> None:
    times = np.asarray(s.times, dtype=np.int64)
    order = np.argsort(times, kind="stable")
    if not np.array_equal(order, np.arange(len(times))):
        # The fallback reader yields file order: per topic it must already be time-sorted.
        bad = int(np.flatnonzero(np.diff(times) < 0)[0]) + 1
        raise where(topic, int(times[bad]), "non-monotonic log times")
    stamps = np.asarray(s.stamps, dtype=np.int64)
    back = np.flatnonzero(np.diff(stamps) < 0)
    if back.size:
        i = int(back[0]) + 1
        raise where(
            topic, int(times[i]), f"non-monotonic header stamps ({stamps[i]} < {stamps[i - 1]})"
        )


def _episode_info(
    bag_dir: Path,
    truncated: bool,
    sidecar: Any,
    events: list[tuple[int, Any]],
    cfg: ExtractConfig,
    where: _Where,
) -> EpisodeInfo:
    start = next((m for _t, m in events if m.event == EVENT_START), None)
    ends = [m for _t, m in events if m.event in (EVENT_END, EVENT_RELABEL) and m.outcome]
    if sidecar is not None:
        return EpisodeInfo(
            episode_id=sidecar.episode_id,
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
            truncated=truncated,
            dropped_leading_frames=0,
            bag_dir=str(bag_dir),
        )
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
    if truncated:
        # The recording stopped without a clean close: whatever END survived may predate an
        # operator's correction, so only a sidecar can vouch for the outcome (issue 4).
        outcome_from = "truncated"
    elif ends:
        outcome, outcome_from = ends[-1].outcome, "event"
    if outcome not in OUTCOMES:
        raise where(EPISODE_EVENTS_TOPIC, None, f"invalid outcome {outcome!r}")
    return EpisodeInfo(
        episode_id=(
            src_msg.episode_id if src_msg is not None and src_msg.episode_id else bag_dir.name
        ),
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
        truncated=truncated,
        dropped_leading_frames=0,
        bag_dir=str(bag_dir),
    )


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
            raise where(topic, None, "no messages (empty or fully truncated recording)")
    clock = np.asarray(series[cmd_topics[0]].times, dtype=np.int64)
    dup = np.flatnonzero(np.diff(clock) <= 0)
    if dup.size:
        raise where(cmd_topics[0], int(clock[dup[0] + 1]), "two command ticks at one time")
    if info.control_hz <= 0:
        if len(clock) < 2:
            raise where(cmd_topics[0], None, "cannot estimate control_hz from < 2 ticks")
        info.control_hz = float(1e9 / np.median(np.diff(clock)))
    period_ns = 1e9 / info.control_hz
    tol_ns = (
        cfg.command_sync_tolerance_s * 1e9
        if cfg.command_sync_tolerance_s is not None
        else 0.5 * period_ns
    )
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
                raise where(ee_pose_topic(arm), None, "missing topic (needed for EE proprio)")
            obs_topics.append(ee_pose_topic(arm))
    env_topic = (
        ENV_STATE_TOPIC if series.get(ENV_STATE_TOPIC) and series[ENV_STATE_TOPIC].times else None
    )
    if env_topic:
        obs_topics.append(env_topic)
    for topic in obs_topics:
        if not series[topic].times:
            raise where(topic, None, "no messages")

    # Ticks before every observation has arrived once cannot be frames (nothing to observe).
    first_obs = max(series[t].times[0] for t in obs_topics)
    keep = clock >= first_obs
    dropped = int(np.argmax(keep)) if keep.any() else len(clock)
    if not keep.any():
        raise where(obs_topics[0], int(first_obs), "no command tick after the first observation")
    ticks = clock[dropped:]
    info.dropped_leading_frames = dropped
    n = len(ticks)

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
    # --- actions: both arms' commands of each tick ---
    action_parts, authority_cmd, model_idx = [], [], []
    for arm, topic in zip(ARM_NAMES, cmd_topics, strict=True):
        s = series[topic]
        times = np.asarray(s.times, dtype=np.int64)
        if topic == cmd_topics[0]:
            idx = np.arange(dropped, len(clock))
        else:
            pos = np.clip(np.searchsorted(times, ticks), 1, max(len(times) - 1, 1))
            left = np.clip(pos - 1, 0, len(times) - 1)
            right = np.clip(pos, 0, len(times) - 1)
            idx = np.where(
                np.abs(times[left] - ticks) <= np.abs(times[right] - ticks), left, right
            )
            off = np.abs(times[idx] - ticks)
            bad = np.flatnonzero(off > tol_ns)
            if bad.size:
                i = int(bad[0])
                raise where(
                    topic,
                    int(ticks[i]),
                    f"no {arm} command within {tol_ns / 1e9:.4f}s of the tick",
                )
        want = _TARGET_DIMS[action_mode]
        rows = []
        for i in idx:
            _mode, targets, gripper, _auth, _mi = s.values[i]
            if targets.shape != (want,):
                raise where(
                    topic,
                    int(times[i]),
                    f"dimension mismatch: {targets.shape[0]} "
                    f"targets, mode {action_mode} needs {want}",
                )
            rows.append(np.append(targets, gripper))
        arr = np.asarray(rows, dtype=np.float64)
        _check_values(where, topic, ticks, arr, cfg, gripper_col=want)
        action_parts.append(arr)
        authority_cmd.append(np.array([s.values[i][3] for i in idx]))
        model_idx.append(np.array([s.values[i][4] for i in idx], dtype=np.int64))
    arrays[ACTION] = np.concatenate(action_parts, axis=1).astype(np.float32)
    arm_dims = action_parts[0].shape[1]

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
