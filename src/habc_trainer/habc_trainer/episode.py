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
from pathlib import Path
from typing import Any

import numpy as np

from habc_core.bag_reader import BagContents, BagReadError, CompleteReadFailed, open_bag
from habc_core.contract import (
    AUTHORITY_TOPIC,
    ENV_STATE_TOPIC,
    EPISODE_EVENTS_TOPIC,
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
from habc_core.features import ARM_NAMES
from habc_core.images import CameraDecoder
from habc_trainer.episode_facts import episode_info
from habc_trainer.episode_types import (
    ARRAYS_VERSION,
    Episode,
    EpisodeError,
    EpisodeInfo,
    ExtractConfig,
    ProprioMode,
    Series,
    SummaryDoubt,
    Where,
    header_stamp,
)
from habc_trainer.resample import resample

# The public names of episode extraction live here (importers use habc_trainer.episode).
__all__ = [
    "ARRAYS_VERSION",
    "Episode",
    "EpisodeError",
    "EpisodeInfo",
    "ExtractConfig",
    "ProprioMode",
    "extract_episode",
]


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
        except SummaryDoubt as exc:
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
    where = Where(bag.storage_path, 0, torn)
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
    series: dict[str, Series] = defaultdict(Series)
    events: list[tuple[int, Any]] = []
    decoders: dict[str, CameraDecoder] = {}
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
                decoder = decoders.get(topic)
                if decoder is None:
                    decoder = decoders[topic] = CameraDecoder(cfg.image_size)
                try:
                    small = decoder(msg, compressed=msgtype.endswith("CompressedImage"))
                except ValueError as exc:
                    raise where(topic, log_ns, str(exc)) from exc
                series[topic].add(log_ns, header_stamp(msg), small)
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
                series[topic].add(log_ns, header_stamp(msg), value)
            elif topic in request_topics:
                value = (
                    int(msg.mode),
                    np.asarray(msg.targets, dtype=np.float64),
                    float(msg.gripper),
                )
                series[topic].add(log_ns, header_stamp(msg), value)
            elif topic.endswith("/joint_states") and topic in required:
                series[topic].add(log_ns, header_stamp(msg), np.asarray(msg.position, np.float64))
            elif topic in (ee_pose_topic(a) for a in ARM_NAMES):
                p, o = msg.pose.position, msg.pose.orientation
                series[topic].add(
                    log_ns, header_stamp(msg), np.array([p.x, p.y, p.z, o.x, o.y, o.z, o.w])
                )
            elif topic == AUTHORITY_TOPIC:
                series[topic].add(
                    log_ns, header_stamp(msg), (list(msg.arm_names), np.asarray(msg.authority))
                )
            elif topic == ENV_STATE_TOPIC and cfg.use_env_state:
                series[topic].add(log_ns, header_stamp(msg), np.asarray(msg.data, np.float64))
        except EpisodeError:
            raise
        except Exception as exc:  # noqa: BLE001 - a message unlike the contract's
            raise where(topic, log_ns, _field_problem(msgtype, exc), doubt=True) from exc
    where.t0 = first_time or 0

    for topic, s in series.items():
        _check_monotonic(where, topic, s)

    info = episode_info(bag_dir, bag, sidecar, events, last_time, cfg, where)
    episode = resample(series, wanted_cams, info, cfg, where)
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


def _check_monotonic(where: Where, topic: str, s: Series) -> None:
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
