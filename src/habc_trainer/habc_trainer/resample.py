"""Resample one episode's messages onto the control clock (episode-format.md "Frames").

Frame t is the t-th executed command tick of the left arm; the other arm's command is paired
with it by arm_sync.py; every observation is the newest at or before the tick on the
recorder's clock, and one older than `max_obs_staleness_s` is an error. Every value is checked
(NaN / inf, range, gripper, quaternion norm, dimensions) before it becomes a frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from habc_core.action_layout import TARGET_DIMS
from habc_core.contract import (
    AUTHORITY_HUMAN,
    AUTHORITY_TOPIC,
    ENV_STATE_TOPIC,
    MODE_EE,
    command_request_topic,
    command_topic,
    ee_pose_topic,
    joint_states_topic,
)
from habc_core.features import (
    ACTION,
    ARM_NAMES,
    ENV_STATE,
    HUMAN,
    MODEL_INDEX,
    PROPRIO,
    REQUESTED_ACTION,
    SAFETY,
    TIMESTAMP_NS,
    image_key,
)
from habc_core.rotations import rot6d_from_quats_xyzw
from habc_trainer.arm_sync import pair_commands, skew_stats_ms
from habc_trainer.episode_types import (
    Episode,
    EpisodeInfo,
    ExtractConfig,
    Series,
    Where,
)


def _newest_at_or_before(times: np.ndarray, ticks: np.ndarray) -> np.ndarray:
    """Index of the newest sample with time <= tick (-1 when none)."""
    return np.searchsorted(times, ticks, side="right") - 1


@dataclass(frozen=True)
class _Layout:
    """What the episode holds: its command mode, the proprio it yields, the observation topics
    every frame needs (joint states, wanted cameras, EE poses for EE proprio, env state)."""

    action_mode: int
    proprio_mode: str
    obs_topics: list[str]
    env_topic: str | None


@dataclass(frozen=True)
class _Frames:
    """The command ticks that become frames, and each arm's command of each tick."""

    clock: np.ndarray  # every left-arm command tick
    start: int  # frames are clock[start:stop]
    stop: int
    cmd_index: dict[str, np.ndarray]  # command topic -> index of its command per clock tick
    pairings: list  # (arm, topic, arm_sync.Pairing) of every arm but the clock's

    @property
    def ticks(self) -> np.ndarray:
        return self.clock[self.start : self.stop]


def resample(
    series: dict[str, Series],
    wanted_cams: dict[str, str],
    info: EpisodeInfo,
    cfg: ExtractConfig,
    where: Where,
) -> Episode:
    cmd_topics = [command_topic(a) for a in ARM_NAMES]
    clock = _command_clock(series, cmd_topics, info, where)
    layout = _layout(series, cmd_topics, wanted_cams, cfg, where)
    frames = _frames(series, cmd_topics, clock, layout.obs_topics, cfg, where)
    ticks = frames.ticks
    _note_pairing(info, series, frames)
    pick = _Picker(series, ticks, cfg, where)

    arrays: dict[str, np.ndarray] = {}
    authority_cmd, model_idx, arm_dims = _actions(
        arrays, series, cmd_topics, frames, layout.action_mode, cfg, where
    )
    human = _human(series, ticks, authority_cmd, where)
    arrays[HUMAN] = human
    # The actor that acted: policy arms carry its index; human / hold carry -1.
    arrays[MODEL_INDEX] = np.max(np.stack(model_idx, axis=1), axis=1)
    arrays[TIMESTAMP_NS] = ticks.copy()
    arrays[PROPRIO] = _proprio(series, pick, layout.proprio_mode, ticks, cfg, where)
    if layout.env_topic:
        arrays[ENV_STATE] = _env_state(series, pick, layout.env_topic, ticks, cfg, where)
    for topic, cam in wanted_cams.items():
        s = series[topic]
        arrays[image_key(cam)] = np.stack([s.values[i] for i in pick(topic)])

    if not info.intervened:
        info.intervened = bool(human.any()) and info.source != "demo"
    if info.t_max_steps <= 0:
        info.t_max_steps = len(ticks)
    return Episode(
        info=info, arrays=arrays, action_arm_dims=arm_dims, action_mode=layout.action_mode
    )


def _command_clock(
    series: dict[str, Series], cmd_topics: list[str], info: EpisodeInfo, where: Where
) -> np.ndarray:
    """The first arm's command ticks (the frames' clock); estimates control_hz if unknown."""
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
    return clock


def _layout(
    series: dict[str, Series],
    cmd_topics: list[str],
    wanted_cams: dict[str, str],
    cfg: ExtractConfig,
    where: Where,
) -> _Layout:
    obs_topics = [joint_states_topic(a) for a in ARM_NAMES] + list(wanted_cams)
    modes = {v[0] for t in cmd_topics for v in series[t].values}
    if len(modes) != 1:
        raise where(cmd_topics[0], None, f"mixed command modes {sorted(modes)} in one episode")
    action_mode = modes.pop()
    if action_mode not in TARGET_DIMS:
        raise where(cmd_topics[0], None, f"unknown command mode {action_mode}")
    proprio_mode = cfg.proprio
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
    return _Layout(action_mode, proprio_mode, obs_topics, env_topic)


def _frames(
    series: dict[str, Series],
    cmd_topics: list[str],
    clock: np.ndarray,
    obs_topics: list[str],
    cfg: ExtractConfig,
    where: Where,
) -> _Frames:
    max_gap_ns = cfg.max_command_gap_s * 1e9
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
    return _Frames(clock, start, stop, cmd_index, pairings)


def _note_pairing(info: EpisodeInfo, series: dict[str, Series], frames: _Frames) -> None:
    """Frames dropped at either end, how the arms were paired and their skew, into `info`."""
    ticks = frames.ticks
    info.dropped_leading_frames = frames.start
    info.dropped_trailing_frames = len(frames.clock) - frames.stop
    offsets = [
        np.asarray(series[t].times, dtype=np.int64)[p.index[frames.start : frames.stop]] - ticks
        for _arm, t, p in frames.pairings
    ]
    skew = skew_stats_ms(np.concatenate(offsets) if offsets else np.zeros(0, np.int64))
    info.command_pairing = frames.pairings[0][2].mode if frames.pairings else "stamp"
    info.command_skew_median_ms = skew["median"]
    info.command_skew_p95_ms = skew["p95"]
    info.command_skew_max_ms = skew["max"]


class _Picker:
    """Per topic, the newest message at or before each frame; one too old is an error."""

    def __init__(
        self, series: dict[str, Series], ticks: np.ndarray, cfg: ExtractConfig, where: Where
    ) -> None:
        self.series, self.ticks, self.cfg, self.where = series, ticks, cfg, where
        self.stale_ns = cfg.max_obs_staleness_s * 1e9

    def __call__(self, topic: str) -> np.ndarray:
        times = np.asarray(self.series[topic].times, dtype=np.int64)
        idx = _newest_at_or_before(times, self.ticks)
        age = self.ticks - times[idx]
        bad = np.flatnonzero(age > self.stale_ns)
        if bad.size:
            i = int(bad[0])
            raise self.where(
                topic,
                int(self.ticks[i]),
                f"stale observation: newest is {age[i] / 1e9:.3f}s "
                f"old (bound {self.cfg.max_obs_staleness_s}s)",
            )
        return idx


def _actions(
    arrays: dict[str, np.ndarray],
    series: dict[str, Series],
    cmd_topics: list[str],
    frames: _Frames,
    action_mode: int,
    cfg: ExtractConfig,
    where: Where,
) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    """Both arms' executed commands of each tick (ACTION), their safety bits and the requests
    behind them; returns each arm's commanded authority and model index, and the arm width."""
    ticks = frames.ticks
    action_parts, authority_cmd, model_idx, safety = [], [], [], []
    for topic in cmd_topics:
        s = series[topic]
        idx = frames.cmd_index[topic][frames.start : frames.stop]
        arr = _command_rows(where, topic, s, idx, action_mode)
        _check_values(where, topic, ticks, arr, cfg, gripper_col=arr.shape[1] - 1)
        action_parts.append(arr)
        authority_cmd.append(np.array([s.values[i][3] for i in idx]))
        model_idx.append(np.array([s.values[i][4] for i in idx], dtype=np.int64))
        safety.append(np.array([s.values[i][5] for i in idx], dtype=np.uint8))
    arrays[ACTION] = np.concatenate(action_parts, axis=1).astype(np.float32)
    arrays[SAFETY] = np.stack(safety, axis=1)
    req_topics = [command_request_topic(a) for a in ARM_NAMES]
    if all(series.get(t) is not None and series[t].times for t in req_topics):
        parts = []
        for topic, ctopic in zip(req_topics, cmd_topics, strict=True):
            # The request behind an executed command precedes that arm's own command; the
            # clock tick may precede it when the arms are skewed.
            cmd_times = np.asarray(series[ctopic].times, dtype=np.int64)
            sent = cmd_times[frames.cmd_index[ctopic][frames.start : frames.stop]]
            parts.append(_request_rows(where, topic, series[topic], sent, action_mode, cfg))
        arrays[REQUESTED_ACTION] = np.concatenate(parts, axis=1).astype(np.float32)
    return authority_cmd, model_idx, action_parts[0].shape[1]


def _human(
    series: dict[str, Series], ticks: np.ndarray, authority_cmd: list[np.ndarray], where: Where
) -> np.ndarray:
    """(n, arms) HUMAN authority in force at each frame: /control_authority, else the command's
    own authority field."""
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
    return human


def _proprio(
    series: dict[str, Series],
    pick: _Picker,
    proprio_mode: str,
    ticks: np.ndarray,
    cfg: ExtractConfig,
    where: Where,
) -> np.ndarray:
    """Per arm the joints (+ gripper), or the EE pose as xyz + 6-D rotation + gripper."""
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
            continue
        etopic = ee_pose_topic(arm)
        e = series[etopic]
        pose = np.stack([e.values[i] for i in pick(etopic)])
        _check_values(where, etopic, ticks, pose, cfg)
        qn = np.linalg.norm(pose[:, 3:], axis=1)
        bad = np.flatnonzero(np.abs(qn - 1) > cfg.quaternion_norm_tolerance)
        if bad.size:
            raise where(
                etopic, int(ticks[bad[0]]), f"out-of-range quaternion norm {qn[bad[0]]:.4f}"
            )
        parts.append(np.concatenate([pose[:, :3], rot6d_from_quats_xyzw(pose[:, 3:]), gripper], 1))
    return np.concatenate(parts, axis=1).astype(np.float32)


def _env_state(
    series: dict[str, Series],
    pick: _Picker,
    env_topic: str,
    ticks: np.ndarray,
    cfg: ExtractConfig,
    where: Where,
) -> np.ndarray:
    s = series[env_topic]
    idx = pick(env_topic)
    widths = {len(s.values[i]) for i in idx}
    if len(widths) != 1:
        raise where(env_topic, None, f"dimension mismatch: env state widths {sorted(widths)}")
    env = np.stack([s.values[i] for i in idx])
    _check_values(where, env_topic, ticks, env, cfg)
    return env.astype(np.float32)


def _command_rows(
    where: Where, topic: str, s: Series, idx: np.ndarray, action_mode: int
) -> np.ndarray:
    """(n, k) targets + gripper of the commands `idx` of one arm."""
    want = TARGET_DIMS[action_mode]
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
    where: Where,
    topic: str,
    s: Series,
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
    want = TARGET_DIMS[action_mode]
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
    where: Where,
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
