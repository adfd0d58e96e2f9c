"""Read every message of one episode bag, including a bag whose writer was SIGKILLed.

`open_bag(bag_dir)` returns a `BagContents`; its `messages()` yields `(topic, msgtype, log_ns,
msg)` with `msg` deserialized by rosbags. Message types come from the definitions stored in the
bag itself (MCAP schemas, sqlite3 message_definitions), so custom types need not be installed.

Complete bags (MCAP or sqlite3, any compression rosbags supports) go through rosbags' AnyReader.
An MCAP file without summary/footer (writer killed; rosbags then reports "File end magic is
invalid" or, without metadata.yaml, FileNotFoundError) is read with mcap's NonSeekingReader,
which returns every message of every complete chunk before it hits the torn end; such a bag is
flagged `truncated`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcap.exceptions import EndOfFile, McapError
from mcap.reader import NonSeekingReader
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag2.errors import ReaderError
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from habc_trainer.contract import BAG_METADATA_NAME, storage_files


class BagReadError(RuntimeError):
    """A bag that cannot be read at all; the message names the file."""


@dataclass
class BagContents:
    """One opened episode bag. `topics` maps topic -> message type."""

    bag_dir: Path
    storage_path: Path
    topics: dict[str, str]
    truncated: bool
    _iter: Any = field(repr=False, default=None)
    _close: Any = field(repr=False, default=None)

    def messages(self) -> Iterator[tuple[str, str, int, Any]]:
        """(topic, msgtype, log time ns, deserialized message), per topic in recording order."""
        return self._iter()

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None

    def __enter__(self) -> BagContents:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def open_bag(bag_dir: Path | str) -> BagContents:
    """Open a bag directory (close it, or use it as a context manager).

    A torn MCAP is recovered; anything else unreadable raises BagReadError.
    """
    bag_dir = Path(bag_dir)
    if not bag_dir.is_dir():
        raise BagReadError(f"{bag_dir}: not a bag directory")
    files = storage_files(bag_dir)
    if not files:
        raise BagReadError(f"{bag_dir}: no storage file (*.mcap / *.db3)")
    complete_error: Exception | None = None
    if (bag_dir / BAG_METADATA_NAME).is_file():
        try:
            return _open_complete(bag_dir, files[0])
        except (AnyReaderError, ReaderError, FileNotFoundError, ValueError, KeyError) as exc:
            complete_error = exc
    mcaps = [f for f in files if f.suffix == ".mcap"]
    if len(mcaps) != 1:
        raise BagReadError(
            f"{bag_dir}: unreadable bag ({complete_error or 'no metadata.yaml'}) and no single "
            "MCAP file to recover from"
        )
    return _open_truncated(bag_dir, mcaps[0], complete_error)


def _open_complete(bag_dir: Path, storage_path: Path) -> BagContents:
    # Opened here so a broken bag fails now (and falls back), not mid-iteration; opening parses
    # metadata and generates types, so it happens once per bag.
    reader = AnyReader([bag_dir])
    reader.open()
    topics = {c.topic: c.msgtype for c in reader.connections}

    def iterate() -> Iterator[tuple[str, str, int, Any]]:
        for conn, log_ns, raw in reader.messages():
            yield conn.topic, conn.msgtype, log_ns, reader.deserialize(raw, conn.msgtype)

    return BagContents(
        bag_dir, storage_path, topics, truncated=False, _iter=iterate, _close=reader.close
    )


def _typestore_from_schemas(schemas: dict[str, tuple[str, str]]) -> Typestore:
    """Jazzy standard types plus every type defined in the bag's schemas."""
    typestore = get_typestore(Stores.ROS2_JAZZY)
    types: dict = {}
    for name, (encoding, text) in schemas.items():
        if encoding == "ros2msg":
            types.update(get_types_from_msg(text, name))
        elif encoding == "ros2idl":
            types.update(get_types_from_idl(text))
    # Definitions in the bag win: they describe exactly the bytes that were written.
    typestore.register(types)
    return typestore


def _open_truncated(bag_dir: Path, path: Path, cause: Exception | None) -> BagContents:
    topics: dict[str, str] = {}
    schemas: dict[str, tuple[str, str]] = {}
    try:
        with path.open("rb") as fh:
            for schema, channel, _msg in _nonseeking(fh):
                if schema is not None:
                    topics[channel.topic] = schema.name
                    schemas[schema.name] = (schema.encoding, schema.data.decode("utf-8"))
    except (McapError, ValueError, OSError, struct.error) as exc:
        raise BagReadError(
            f"{path}: corrupt or not an MCAP file ({type(exc).__name__}: {exc})"
        ) from exc
    if not topics:
        raise BagReadError(
            f"{path}: truncated MCAP holds no complete chunk"
            + (f" (rosbags: {cause})" if cause else "")
        )
    typestore = _typestore_from_schemas(schemas)

    def iterate() -> Iterator[tuple[str, str, int, Any]]:
        with path.open("rb") as fh:
            for schema, channel, msg in _nonseeking(fh):
                if schema is None:
                    continue
                yield (
                    channel.topic,
                    schema.name,
                    msg.log_time,
                    typestore.deserialize_cdr(msg.data, schema.name),
                )

    return BagContents(bag_dir, path, topics, truncated=True, _iter=iterate)


def _nonseeking(fh: Any) -> Iterator[tuple[Any, Any, Any]]:
    """Every message of every complete chunk; the torn tail ends the iteration quietly."""
    reader = NonSeekingReader(fh)
    try:
        yield from reader.iter_messages(log_time_order=False)
    except EndOfFile:
        return
