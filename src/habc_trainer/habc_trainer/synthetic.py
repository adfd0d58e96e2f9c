"""Synthesised contract-conforming episodes, for tests and the conversion benchmark.

`write_synthetic_episode` writes a bag the way the rig does: per control tick both arms' joint
states and EE poses, camera frames, then both arm commands, plus authority changes, action chunks
and START / END events, and (unless told not to) the sidecar. The authority pattern is a string,
one letter per tick: `P` policy, `H` human on the left arm, `B` human on both arms, `R` human on
the right arm.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rosbags.typesys.store import Typestore

from habc_core.bag_writer import EpisodeBagWriter, StorageName
from habc_core.contract import (
    AUTHORITY_HUMAN,
    AUTHORITY_POLICY,
    MODE_EE,
    EpisodeMeta,
)
from habc_core.episode_events import write_start_event
from habc_core.features import ARM_NAMES, CAMERA_NAMES

_HUMAN_ARMS = {"P": (), "H": (0,), "R": (1,), "B": (0, 1)}


@dataclass(frozen=True)
class SyntheticSpec:
    """What to synthesise; `pattern` has one letter per tick (see module docstring)."""

    episode_id: str
    pattern: str
    source: str = "rollout"
    outcome: str = "success"
    task: str = "put the pencil in the pouch"
    round: int = 1
    model_index: int = 500
    control_hz: float = 10.0
    cameras: tuple[str, ...] = CAMERA_NAMES
    image_hw: tuple[int, int] = (48, 64)
    compressed: bool = False
    storage: StorageName = "mcap"
    write_sidecar: bool = True
    with_env_state: bool = False
    start_ns: int = 1_000_000_000

    def __post_init__(self) -> None:
        bad = sorted(set(self.pattern) - set(_HUMAN_ARMS))
        if not self.pattern or bad:
            raise ValueError(f"pattern: letters must be in {sorted(_HUMAN_ARMS)}, got {bad}")


def tick_ns(spec: SyntheticSpec, t: int) -> int:
    return spec.start_ns + int(round(t * 1e9 / spec.control_hz))


def expected_action(t: int, arm: int) -> np.ndarray:
    """The (10,) EE command the synthesiser sends for `arm` at tick t (xyz, rot6d, gripper)."""
    xyz = np.array([0.3 + 0.001 * t, 0.1 * (1 - 2 * arm), 0.2])
    rot6d = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    return np.concatenate([xyz, rot6d, [0.04 + 0.0001 * (t % 100)]])


def write_synthetic_episode(
    bag_dir: Path | str, spec: SyntheticSpec, *, typestore: Typestore | None = None
) -> EpisodeMeta:
    """Write one episode bag (+ sidecar unless `spec.write_sidecar` is False); returns its meta."""
    rng = np.random.default_rng(zlib.crc32(spec.episode_id.encode()))
    h, w = spec.image_hw
    t_len = len(spec.pattern)
    meta = EpisodeMeta(
        episode_id=spec.episode_id,
        task=spec.task,
        source=spec.source,
        outcome=spec.outcome,
        round=spec.round,
        model_index=spec.model_index if spec.source == "rollout" else -1,
        robot="arx_x5_bimanual_synthetic",
        control_hz=spec.control_hz,
        t_max_steps=max(t_len, 1),
        start_ns=spec.start_ns,
        end_ns=tick_ns(spec, t_len),
        intervened=spec.source == "rollout" and any(c != "P" for c in spec.pattern),
    )
    writer = EpisodeBagWriter(bag_dir, storage=spec.storage, typestore=typestore)
    writer.open()
    write_start_event(writer, meta, meta.start_ns)
    previous: tuple[int, ...] | None = None
    for t, letter in enumerate(spec.pattern):
        now = tick_ns(spec, t)
        human_arms = _HUMAN_ARMS[letter] if spec.source == "rollout" else (0, 1)
        auth = [AUTHORITY_HUMAN if a in human_arms else AUTHORITY_POLICY for a in range(2)]
        if tuple(auth) != previous:
            writer.write_authority(auth, now, source="synthetic")
            previous = tuple(auth)
        for a, arm in enumerate(ARM_NAMES):
            act = expected_action(t, a)
            writer.write_joint_state(arm, np.append(np.full(6, 0.01 * t), act[-1]), now)
            writer.write_ee_pose(arm, act[:3], [0.0, 0.0, 0.0, 1.0], now)
        for cam in spec.cameras:
            # Smooth content, like a camera view: JPEG sizes and decode times stay realistic.
            coarse = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
            img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
            writer.write_image(cam, img, now, compressed=spec.compressed)
        if spec.with_env_state:
            writer.write_env_state(np.array([0.01 * t, 1.0, -1.0]), now)
        if t % 25 == 0 and spec.source == "rollout":
            writer.write_action_chunk(
                np.zeros((50, 20), np.float32),
                now,
                chunk_id=t // 25,
                model_index=spec.model_index,
                execute_steps=25,
            )
        for a, arm in enumerate(ARM_NAMES):
            act = expected_action(t, a)
            policy = auth[a] == AUTHORITY_POLICY
            writer.write_arm_command(
                arm,
                act[:9],
                act[9],
                now,
                authority=auth[a],
                mode=MODE_EE,
                model_index=spec.model_index if policy and spec.source == "rollout" else -1,
            )
    if spec.write_sidecar:
        writer.finish(meta)
    else:
        writer.close()
    return meta
