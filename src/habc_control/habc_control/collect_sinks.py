"""Where the DDS-free collector puts one episode's messages: a bag per episode, or nothing.

`BagSink` writes what the recorder node records from the ROS graph (joint states, EE poses,
images or env state, requests, executed commands, authority, chunks, START / END) with the
core's EpisodeBagWriter, plus the sim's own log next to the sidecar. `NullSink` writes nothing
(dry runs, evaluation trials, tests); subclass it to watch an episode tick by tick.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from habc_control.authority import Authority
from habc_core.bag_writer import EpisodeBagWriter
from habc_core.contract import episode_dir
from habc_core.episode_events import write_start_event
from habc_core.features import ARM_NAMES, CAMERA_NAMES, ENV_STATE, image_key
from habc_core.rostypes import make_typestore
from habc_core.rotations import quat_xyzw_from_matrix

SIM_LOG_NAME = "sim_log.yaml"  # operator decisions and task milestones, next to the sidecar


class EpisodeSink:
    """One episode's messages, in the order the collector produces them per tick; each method
    here does nothing, so a sink overrides only what it keeps."""

    def begin(self, meta: Any) -> None:
        pass

    def observation(self, env: Any, obs: dict[str, Any], t_ns: int) -> None:
        pass

    def command_request(self, arm: str, out: Any, mode: int, t_ns: int) -> None:
        pass

    def command(self, arm: str, executed: Any, t_ns: int) -> None:
        pass

    def authority(self, snapshot: dict[str, Authority], t_ns: int, source: str) -> None:
        pass

    def chunk(
        self,
        actions: np.ndarray,
        t_ns: int,
        chunk_id: int,
        model_index: int,
        execute_steps: int,
        dim_names: Sequence[str],
    ) -> None:
        pass

    def end(self, meta: Any, extra: dict[str, Any]) -> str | None:
        """The episode's path, or None where nothing was written."""
        return None


class NullSink(EpisodeSink):
    """Writes nothing: dry runs, evaluation trials, tests."""


class BagSink(EpisodeSink):
    """One rosbag2 (MCAP) directory + sidecar per episode, via habc_trainer's writer."""

    def __init__(
        self,
        data_root: Path | str,
        *,
        write_images: bool = True,
        compressed_images: bool = False,
        storage: str = "mcap",
    ) -> None:
        self.data_root = Path(data_root)
        self.write_images = write_images
        self.compressed_images = compressed_images
        self.storage = storage
        self._w: Any = None
        self._typestore: Any = None  # one per sink: rosbags compiles its serializers once

    def begin(self, meta: Any) -> None:
        if self._typestore is None:
            self._typestore = make_typestore()
        path = episode_dir(self.data_root, meta.task, meta.round, meta.episode_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._w = EpisodeBagWriter(path, storage=self.storage, typestore=self._typestore).open()
        write_start_event(self._w, meta, meta.start_ns)

    def observation(self, env: Any, obs: dict[str, Any], t_ns: int) -> None:
        w, rig = self._w, env.rig
        for arm in ARM_NAMES:
            q = np.append(rig.joint_pos(arm), rig.gripper_opening(arm))
            dq = np.append(rig.joint_vel(arm), 0.0)
            w.write_joint_state(arm, q, t_ns, velocity=dq)
            xyz, rot = rig.ee_pose(arm)
            w.write_ee_pose(arm, xyz, quat_xyzw_from_matrix(rot), t_ns)
        if hasattr(w, "write_env_state"):  # /sim/env_state: newer writers only
            w.write_env_state(obs[ENV_STATE], t_ns)
        if self.write_images:
            for cam in CAMERA_NAMES:
                img = obs.get(image_key(cam))
                if img is not None:
                    w.write_image(cam, img, t_ns, compressed=self.compressed_images)

    def command_request(self, arm: str, out: Any, mode: int, t_ns: int) -> None:
        self._w.write_command_request(
            arm,
            out.target.targets,
            out.target.gripper,
            t_ns,
            authority=int(out.authority),
            model_index=int(out.model_index),
            mode=mode,
        )

    def command(self, arm: str, executed: Any, t_ns: int) -> None:
        cmd = executed.command
        self._w.write_arm_command(
            arm,
            cmd.targets,
            cmd.gripper,
            t_ns,
            authority=int(cmd.authority),
            model_index=int(executed.model_index),
            mode=int(cmd.mode),
            safety=int(executed.flags),
        )

    def authority(self, snapshot: dict[str, Authority], t_ns: int, source: str) -> None:
        self._w.write_authority({a: int(v) for a, v in snapshot.items()}, t_ns, source=source)

    def chunk(
        self,
        actions: np.ndarray,
        t_ns: int,
        chunk_id: int,
        model_index: int,
        execute_steps: int,
        dim_names: Sequence[str],
    ) -> None:
        self._w.write_action_chunk(
            actions,
            t_ns,
            chunk_id=chunk_id,
            model_index=model_index,
            execute_steps=execute_steps,
            dim_names=dim_names,
        )

    def end(self, meta: Any, extra: dict[str, Any]) -> str | None:
        path = self._w.bag_dir
        self._w.finish(meta, meta.end_ns)
        self._w = None
        (path / SIM_LOG_NAME).write_text(yaml.safe_dump(extra, sort_keys=False), "utf-8")
        return str(path)
