"""Write one episode as a rosbag2 directory (MCAP by default) plus its sidecar, without ROS.

Used by the simulated collector (typed messages built here) and by the ROS recorder node (raw CDR
bytes from `rclpy.serialization.serialize_message`, via `write_raw`). Every connection carries the
full message definition, so a bag stays readable where habc_interfaces is not installed.

Crash safety: messages are grouped into MCAP chunks; the writer closes the pending chunk and
flushes the file at least every `flush_interval_ns` of bag time, so a SIGKILL loses at most that
much. Every chunk carries the CRC of its records (rosbags leaves it 0, "unchecked"), so a reader
can tell a damaged chunk from a good one. `metadata.yaml` is written when the bag closes; the
storage file and `metadata.yaml` are fsynced before `episode.yaml` is written, last: a sidecar
promises a bag that is durably complete, and a directory without it is an episode that did not
finish cleanly, whose complete chunks the reader recovers.

Typical use::

    with EpisodeBagWriter(bag_dir) as w:
        w.write_event(EVENT_START, t0, episode_id=..., task=..., source="rollout")
        w.write_image("top", rgb, t)          # (h, w, 3) uint8 RGB
        w.write_command_request("left", targets, gripper, t, authority=AUTHORITY_POLICY)
        w.write_arm_command("left", sent, gripper, t, authority=AUTHORITY_POLICY, safety=bits)
        ...
        w.finish(meta, end_ns)                # END event, close bag, then the sidecar
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from rosbags.rosbag2.storage_mcap import McapWriter
from rosbags.typesys.store import Typestore

from habc_core.contract import (
    ACTION_CHUNK_TOPIC,
    ACTION_CHUNK_TYPE,
    ARM_COMMAND_TYPE,
    AUTHORITY_TOPIC,
    COMPRESSED_IMAGE_TYPE,
    CONTROL_AUTHORITY_TYPE,
    ENV_STATE_TOPIC,
    ENV_STATE_TYPE,
    EPISODE_EVENT_TYPE,
    EPISODE_EVENTS_TOPIC,
    EVENT_END,
    EVENT_RELABEL,
    EVENT_START,
    IMAGE_TYPE,
    JOINT_STATE_TYPE,
    MODE_EE,
    MODE_JOINT,
    OUTCOMES,
    POSE_STAMPED_TYPE,
    SAFETY_FLAG_NAMES,
    SOURCES,
    EpisodeMeta,
    base_frame,
    camera_frame,
    command_request_topic,
    command_topic,
    compressed_image_topic,
    ee_pose_topic,
    image_topic,
    joint_names,
    joint_states_topic,
    write_sidecar,
)
from habc_core.episode_events import write_end_event
from habc_core.features import ARM_NAMES
from habc_core.fsio import fsync_dir
from habc_core.rostypes import make_typestore, register_msg_texts

StorageName = Literal["mcap", "sqlite3"]
_STORAGE = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
# ros2 bag in Jazzy writes (and reads) rosbag2 metadata version 8.
_BAG_VERSION = 8
# The format string compressed_image_transport writes for JPEG.
JPEG_FORMAT = "rgb8; jpeg compressed bgr8"
_SAFETY_MASK = sum(SAFETY_FLAG_NAMES)
# Where a chunk record keeps its uncompressed CRC: opcode (1) + length (8) + message start / end
# time (8 + 8) + uncompressed size (8) (MCAP spec, "Chunk").
_CHUNK_CRC_OFFSET = 1 + 8 + 8 + 8 + 8


class BagWriteError(RuntimeError):
    """A write that would break the contract (closed writer, topic type clash)."""


class EpisodeBagWriter:
    """Typed and raw message writing for one episode bag directory (must not exist yet)."""

    def __init__(
        self,
        bag_dir: Path | str,
        *,
        storage: StorageName = "mcap",
        typestore: Typestore | None = None,
        flush_interval_ns: int = 1_000_000_000,
    ) -> None:
        if storage not in _STORAGE:
            raise ValueError(f"storage: {storage!r} is not one of {sorted(_STORAGE)}")
        if flush_interval_ns <= 0:
            raise ValueError(f"flush_interval_ns: must be > 0, got {flush_interval_ns}")
        self.bag_dir = Path(bag_dir)
        self.storage = storage
        self.typestore = typestore if typestore is not None else make_typestore()
        self.flush_interval_ns = flush_interval_ns
        try:
            self._writer = Writer(
                self.bag_dir, version=_BAG_VERSION, storage_plugin=_STORAGE[storage]
            )
        except WriterError as exc:
            raise BagWriteError(f"{self.bag_dir}: {exc}") from exc
        self._connections: dict[str, Any] = {}
        self._last_flush_ns: int | None = None
        self._open = False
        self._closed = False
        self.message_count = 0

    # --- lifecycle ---
    def open(self) -> EpisodeBagWriter:
        if self._open or self._closed:
            raise BagWriteError(f"{self.bag_dir}: writer already opened")
        try:
            self._writer.open()
        except WriterError as exc:
            raise BagWriteError(f"{self.bag_dir}: {exc}") from exc
        storage = getattr(self._writer, "storage", None)
        if isinstance(storage, McapWriter):
            _store_chunk_crcs(storage)
        self._open = True
        return self

    def __enter__(self) -> EpisodeBagWriter:
        return self.open()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        # On an exception the bag is closed without a sidecar: the episode reads as unfinished.
        if self._open:
            self.close()

    def close(self, meta: EpisodeMeta | None = None) -> None:
        """Close the bag (writes metadata.yaml), then write the sidecar if `meta` is given."""
        if not self._open:
            raise BagWriteError(f"{self.bag_dir}: writer is not open")
        self._writer.close()
        self._open = False
        self._closed = True
        if meta is not None:
            # The page cache may still hold the bag when the sidecar is written: without this a
            # power cut can leave a durable sidecar beside a torn bag.
            _fsync_files(self.bag_dir)
            write_sidecar(self.bag_dir, meta)

    def finish(self, meta: EpisodeMeta, end_ns: int | None = None) -> None:
        """Write the END event (outcome from `meta`), close the bag, then write the sidecar."""
        write_end_event(self, meta, meta.end_ns if end_ns is None else end_ns, meta.outcome)
        self.close(meta)

    def flush(self) -> None:
        """Make everything written so far survive a SIGKILL (closes the pending MCAP chunk)."""
        self._require_open()
        storage = getattr(self._writer, "storage", None)
        # rosbags keeps the pending chunk in memory; its McapWriter has no public flush, so we
        # close the chunk through its own method. sqlite3 storage commits on close only.
        if isinstance(storage, McapWriter):
            if storage.chunk.bio.tell():
                storage.close_chunk()
            storage.bio.flush()

    # --- generic writes ---
    def _require_open(self) -> None:
        if not self._open:
            raise BagWriteError(f"{self.bag_dir}: writer is not open")

    def _connection(self, topic: str, msgtype: str, msgdef: str | None) -> Any:
        conn = self._connections.get(topic)
        if conn is None:
            if msgdef is None and msgtype not in self.typestore.types:
                raise BagWriteError(
                    f"{self.bag_dir}: topic {topic}: type {msgtype} is unknown to the typestore; "
                    "pass msgdef= with its full definition"
                )
            if msgdef is not None and msgtype not in self.typestore.types:
                # Register it so rosbags can hash it and store the full definition in the bag.
                register_msg_texts(self.typestore, [(msgtype, msgdef)])
            conn = self._writer.add_connection(topic, msgtype, typestore=self.typestore)
            self._connections[topic] = conn
        elif conn.msgtype != msgtype:
            raise BagWriteError(
                f"{self.bag_dir}: topic {topic} already has type {conn.msgtype}, not {msgtype}"
            )
        return conn

    def write_raw(
        self,
        topic: str,
        msgtype: str,
        data: bytes | memoryview,
        timestamp_ns: int,
        *,
        msgdef: str | None = None,
    ) -> None:
        """Write already-serialized CDR bytes (e.g. from rclpy's serialize_message)."""
        self._require_open()
        if timestamp_ns < 0:
            raise ValueError(f"timestamp_ns: must be >= 0, got {timestamp_ns}")
        conn = self._connection(topic, msgtype, msgdef)
        self._writer.write(conn, int(timestamp_ns), data)
        self.message_count += 1
        if self._last_flush_ns is None:
            self._last_flush_ns = int(timestamp_ns)
        elif timestamp_ns - self._last_flush_ns >= self.flush_interval_ns:
            self.flush()
            self._last_flush_ns = int(timestamp_ns)

    def write(self, topic: str, msg: Any, timestamp_ns: int) -> None:
        """Serialize a rosbags message object (from `self.typestore.types`) and write it."""
        data = self.typestore.serialize_cdr(msg, msg.__msgtype__)
        self.write_raw(topic, msg.__msgtype__, data, timestamp_ns)

    # --- message builders ---
    def _header(self, stamp_ns: int, frame_id: str = "") -> Any:
        t = self.typestore.types
        time = t["builtin_interfaces/msg/Time"](
            sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000)
        )
        return t["std_msgs/msg/Header"](stamp=time, frame_id=frame_id)

    def write_image(
        self,
        camera: str,
        rgb: np.ndarray,
        timestamp_ns: int,
        *,
        compressed: bool = False,
        jpeg_quality: int = 90,
    ) -> None:
        """One (h, w, 3) uint8 RGB frame, raw (`rgb8` Image) or JPEG (CompressedImage)."""
        rgb = np.asarray(rgb)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(
                f"rgb: expected (h, w, 3) uint8, got {rgb.shape} {rgb.dtype} for camera {camera}"
            )
        header = self._header(timestamp_ns, camera_frame(camera))
        t = self.typestore.types
        if compressed:
            ok, buf = cv2.imencode(
                ".jpg", rgb[:, :, ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), int(jpeg_quality)]
            )
            if not ok:
                raise ValueError(f"rgb: JPEG encoding failed for camera {camera}")
            msg = t[COMPRESSED_IMAGE_TYPE](
                header=header, format=JPEG_FORMAT, data=np.asarray(buf, dtype=np.uint8).ravel()
            )
            self.write(compressed_image_topic(camera), msg, timestamp_ns)
            return
        h, w, _ = rgb.shape
        msg = t[IMAGE_TYPE](
            header=header,
            height=h,
            width=w,
            encoding="rgb8",
            is_bigendian=0,
            step=w * 3,
            data=np.ascontiguousarray(rgb).reshape(-1),
        )
        self.write(image_topic(camera), msg, timestamp_ns)

    def write_joint_state(
        self,
        arm: str,
        position: Sequence[float] | np.ndarray,
        timestamp_ns: int,
        *,
        velocity: Sequence[float] | np.ndarray | None = None,
        effort: Sequence[float] | np.ndarray | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        """Joint positions of one arm: 6 joints + gripper by the contract (`joint_names`)."""
        pos = np.asarray(position, dtype=np.float64).ravel()
        if names is None:
            names = joint_names(arm)
        if len(names) != len(pos):
            raise ValueError(f"names: {len(names)} names for {len(pos)} positions ({arm} arm)")
        empty = np.zeros(0, dtype=np.float64)
        msg = self.typestore.types[JOINT_STATE_TYPE](
            header=self._header(timestamp_ns, base_frame(arm)),
            name=list(names),
            position=pos,
            velocity=empty if velocity is None else np.asarray(velocity, np.float64).ravel(),
            effort=empty if effort is None else np.asarray(effort, np.float64).ravel(),
        )
        self.write(joint_states_topic(arm), msg, timestamp_ns)

    def write_ee_pose(
        self,
        arm: str,
        position: Sequence[float] | np.ndarray,
        orientation_xyzw: Sequence[float] | np.ndarray,
        timestamp_ns: int,
    ) -> None:
        """End-effector pose of one arm in its base frame (quaternion x, y, z, w)."""
        p = np.asarray(position, dtype=np.float64).ravel()
        q = np.asarray(orientation_xyzw, dtype=np.float64).ravel()
        if p.shape != (3,) or q.shape != (4,):
            raise ValueError(
                f"ee pose ({arm}): position (3,), orientation (4,); got {p.shape}, {q.shape}"
            )
        t = self.typestore.types
        pose = t["geometry_msgs/msg/Pose"](
            position=t["geometry_msgs/msg/Point"](x=p[0], y=p[1], z=p[2]),
            orientation=t["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]),
        )
        msg = t[POSE_STAMPED_TYPE](header=self._header(timestamp_ns, base_frame(arm)), pose=pose)
        self.write(ee_pose_topic(arm), msg, timestamp_ns)

    def write_arm_command(
        self,
        arm: str,
        targets: Sequence[float] | np.ndarray,
        gripper: float,
        timestamp_ns: int,
        *,
        authority: int,
        model_index: int = -1,
        mode: int = MODE_EE,
        safety: int = 0,
    ) -> None:
        """The command executed on one arm at one control tick (the recorded action).

        `timestamp_ns` is the log time and the header stamp: stamp both arms of one tick with
        the same tick time, so the reader pairs them exactly. `safety` holds the contract's
        SAFETY_* bits (which limit shaped the command; 0: executed as requested).
        """
        msg = self._arm_command(
            arm, targets, gripper, timestamp_ns, authority, model_index, mode, safety
        )
        self.write(command_topic(arm), msg, timestamp_ns)

    def write_command_request(
        self,
        arm: str,
        targets: Sequence[float] | np.ndarray,
        gripper: float,
        timestamp_ns: int,
        *,
        authority: int,
        model_index: int = -1,
        mode: int = MODE_EE,
    ) -> None:
        """The mux's request to one arm at one control tick (before safety; `safety` is 0)."""
        msg = self._arm_command(
            arm, targets, gripper, timestamp_ns, authority, model_index, mode, 0
        )
        self.write(command_request_topic(arm), msg, timestamp_ns)

    def _arm_command(
        self,
        arm: str,
        targets: Sequence[float] | np.ndarray,
        gripper: float,
        timestamp_ns: int,
        authority: int,
        model_index: int,
        mode: int,
        safety: int,
    ) -> Any:
        if mode not in (MODE_JOINT, MODE_EE):
            raise ValueError(f"mode: {mode!r} is not MODE_JOINT (0) or MODE_EE (1)")
        if (
            isinstance(safety, bool)
            or not isinstance(safety, int | np.integer)
            or (safety < 0 or int(safety) & ~_SAFETY_MASK)
        ):
            raise ValueError(
                f"safety: {safety!r} is not a combination of the SAFETY_* bits "
                f"{sorted(SAFETY_FLAG_NAMES)}"
            )
        cls = self.typestore.types[ARM_COMMAND_TYPE]
        fields = dict(
            header=self._header(timestamp_ns, base_frame(arm)),
            mode=int(mode),
            targets=np.asarray(targets, dtype=np.float64).ravel(),
            gripper=float(gripper),
            authority=int(authority),
            model_index=int(model_index),
        )
        if "safety" in cls.__dataclass_fields__:
            fields["safety"] = int(safety)
        elif safety:
            # A typestore with a definition from before the field (old bags, tests of them).
            raise ValueError(f"safety: {safety} given, but this typestore's ArmCommand has none")
        return cls(**fields)

    def write_authority(
        self,
        authority: Mapping[str, int] | Sequence[int],
        timestamp_ns: int,
        *,
        source: str = "",
    ) -> None:
        """Per-arm POLICY / HUMAN / HOLD; a sequence is in ARM_NAMES order."""
        if isinstance(authority, Mapping):
            names, values = list(authority), [int(v) for v in authority.values()]
        else:
            values = [int(v) for v in authority]
            if len(values) != len(ARM_NAMES):
                raise ValueError(f"authority: {len(values)} values for arms {list(ARM_NAMES)}")
            names = list(ARM_NAMES)
        msg = self.typestore.types[CONTROL_AUTHORITY_TYPE](
            header=self._header(timestamp_ns),
            arm_names=names,
            authority=np.asarray(values, dtype=np.uint8),
            source=source,
        )
        self.write(AUTHORITY_TOPIC, msg, timestamp_ns)

    def write_action_chunk(
        self,
        actions: np.ndarray,
        timestamp_ns: int,
        *,
        chunk_id: int,
        model_index: int,
        execute_steps: int,
        dim_names: Sequence[str] = (),
    ) -> None:
        """One predicted (H, D) chunk, row-major."""
        a = np.asarray(actions, dtype=np.float32)
        if a.ndim != 2:
            raise ValueError(f"actions: expected (H, D), got shape {a.shape}")
        msg = self.typestore.types[ACTION_CHUNK_TYPE](
            header=self._header(timestamp_ns),
            chunk_id=int(chunk_id),
            model_index=int(model_index),
            horizon=a.shape[0],
            action_dim=a.shape[1],
            execute_steps=int(execute_steps),
            dim_names=list(dim_names),
            actions=a.ravel(),
        )
        self.write(ACTION_CHUNK_TOPIC, msg, timestamp_ns)

    def write_env_state(self, state: Sequence[float] | np.ndarray, timestamp_ns: int) -> None:
        """Privileged simulator state (flat vector) at a control tick; sim only, optional."""
        t = self.typestore.types
        layout = t["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
        msg = t[ENV_STATE_TYPE](layout=layout, data=np.asarray(state, dtype=np.float64).ravel())
        self.write(ENV_STATE_TOPIC, msg, timestamp_ns)

    def write_event(
        self,
        event: int,
        timestamp_ns: int,
        *,
        episode_id: str,
        task: str,
        source: str,
        outcome: str = "",
        round_index: int = 0,
        model_index: int = -1,
    ) -> None:
        """START / END (with outcome) / RELABEL."""
        if event not in (EVENT_START, EVENT_END, EVENT_RELABEL):
            raise ValueError(f"event: {event!r} is not START (0), END (1) or RELABEL (2)")
        if source not in SOURCES:
            raise ValueError(f"source: {source!r} is not one of {list(SOURCES)}")
        if outcome and outcome not in OUTCOMES:
            raise ValueError(f"outcome: {outcome!r} is not one of {list(OUTCOMES)}")
        msg = self.typestore.types[EPISODE_EVENT_TYPE](
            header=self._header(timestamp_ns),
            event=int(event),
            episode_id=episode_id,
            task=task,
            source=source,
            outcome=outcome,
            round=int(round_index),
            model_index=int(model_index),
        )
        self.write(EPISODE_EVENTS_TOPIC, msg, timestamp_ns)


def _store_chunk_crcs(storage: McapWriter) -> None:
    """Make rosbags' MCAP writer store each chunk's CRC (it writes 0: "not computed").

    The CRC is computed over the chunk's uncompressed records before rosbags closes the chunk,
    then written into the chunk record rosbags just wrote; the file position is restored.
    """
    close_chunk = storage.close_chunk

    def close_chunk_with_crc() -> None:
        with storage.chunk.bio.getbuffer() as records:
            crc = zlib.crc32(records)
        start = storage.bio.tell()
        close_chunk()
        end = storage.bio.tell()
        storage.bio.seek(start + _CHUNK_CRC_OFFSET)
        storage.bio.write(crc.to_bytes(4, "little"))
        storage.bio.seek(end)

    # An instance attribute: rosbags' own calls (chunk full, close) go through it too.
    storage.close_chunk = close_chunk_with_crc  # type: ignore[method-assign]


def _fsync_files(bag_dir: Path) -> None:
    """fsync every file of a closed bag directory, then the directory (its entries)."""
    for path in sorted(bag_dir.iterdir()):
        if path.is_file():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())
    fsync_dir(bag_dir)
