"""Read every message of one episode bag, including a bag that was torn or damaged.

`open_bag(bag_dir)` returns a `BagContents`; its `messages()` yields `(topic, msgtype, log_ns,
msg)` with `msg` deserialized by rosbags. Message types come from the definitions stored in the
bag itself (MCAP schemas, sqlite3 message_definitions), so custom types need not be installed.

Two ways in:

* **complete bags** (MCAP or sqlite3 with `metadata.yaml`) go through rosbags' AnyReader, which
  yields messages in log-time order and checks chunk CRCs when the writer stored them;
* **everything else that is MCAP** (no `metadata.yaml`, a torn summary / footer / end magic, a
  chunk rosbags cannot read) goes through this module's streaming reader: it walks the file's
  records from the start, keeps every complete record and every complete chunk whose framing,
  size and CRC check out, and stops cleanly at the first record that is cut or malformed.
  `BagContents.recovery` then says how much was read and what was lost (in bytes and plain
  words). A file that reaches its footer and end magic intact is not `truncated`.

The streaming reader never holds more than one chunk (the writer closes one at least every
second of recording) plus one record in memory. It reads the file twice: a first pass checks
the structure and collects the schemas and topics (the caller needs the topics before the
messages), the second decodes the messages of what the first pass accepted.

Every error is a `BagReadError` whose message names the file and says what is wrong in plain
words (no raw parser exception text).
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from habc_core.contract import BAG_METADATA_NAME, storage_files

MCAP_MAGIC = b"\x89MCAP0\r\n"
_RECORD_HEADER = struct.Struct("<BQ")  # opcode, content length

# MCAP record opcodes (https://mcap.dev/spec) and the words used for them in messages.
OP_HEADER, OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK = 0x01, 0x02, 0x03, 0x04, 0x05, 6
OP_DATA_END = 0x0F
_RECORD_NAMES = {
    0x01: "header",
    0x02: "footer",
    0x03: "schema",
    0x04: "channel",
    0x05: "message",
    0x06: "chunk",
    0x07: "message index",
    0x08: "chunk index",
    0x09: "attachment",
    0x0A: "attachment index",
    0x0B: "statistics",
    0x0C: "metadata",
    0x0D: "metadata index",
    0x0E: "summary offset",
    0x0F: "data end",
}
# The MCAP spec lets a writer add private records (opcodes 0x80-0xFF); they are skipped.
_PRIVATE_OPS = range(0x80, 0x100)


def _decompressors() -> dict[str, Callable[[bytes, int], bytes]]:
    out: dict[str, Callable[[bytes, int], bytes]] = {"": lambda data, _size: data}
    try:
        import zstandard

        out["zstd"] = lambda data, size: zstandard.ZstdDecompressor().decompress(
            data, max_output_size=size
        )
    except ImportError:  # pragma: no cover - rosbags' own dependencies bring it
        pass
    try:
        import lz4.frame

        out["lz4"] = lambda data, _size: lz4.frame.decompress(data)
    except ImportError:  # pragma: no cover
        pass
    return out


_DECOMPRESS = _decompressors()


class BagReadError(RuntimeError):
    """A bag that cannot be read at all; the message names the file and the problem."""


class CompleteReadFailed(BagReadError):
    """rosbags could not read part of a bag it had opened; a streaming read may recover it."""


@dataclass(frozen=True)
class Recovery:
    """What a streaming read of a torn or damaged MCAP kept and what it lost.

    `data_complete`: the data section reached its end record, so every message was kept and only
    the summary / index / footer was lost. `good_bytes` is where the kept records end.
    """

    storage_path: Path
    file_size: int
    good_bytes: int
    messages: int
    chunks: int
    lost: str  # plain words: what was cut or corrupt, and where
    data_complete: bool
    cause: str = ""  # why the complete read was not used, when it was tried

    def describe(self) -> str:
        kept = f"{self.messages} messages in {self.chunks} complete chunks"
        return f"{kept}; {self.lost}"


@dataclass
class BagContents:
    """One opened episode bag. `topics` maps topic -> message type.

    `truncated`: the bag was torn or damaged and was recovered (`recovery` says how); `notes`:
    plain remarks on how it was read (e.g. "no metadata.yaml: read the MCAP by itself");
    `read_by`: "rosbags" (through the bag's summary / metadata) or "stream" (record by record).
    """

    bag_dir: Path
    storage_path: Path
    topics: dict[str, str]
    truncated: bool
    recovery: Recovery | None = None
    notes: tuple[str, ...] = ()
    read_by: str = "rosbags"
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


def open_bag(bag_dir: Path | str, *, stream: bool = False, cause: str = "") -> BagContents:
    """Open a bag directory (close it, or use it as a context manager).

    `stream=True` skips rosbags and reads the MCAP with the streaming reader (used after
    rosbags failed mid-read: `cause` says how). A torn or damaged MCAP is recovered; anything
    else unreadable raises BagReadError.
    """
    bag_dir = Path(bag_dir)
    if not bag_dir.is_dir():
        raise BagReadError(f"{bag_dir}: not a bag directory")
    files = storage_files(bag_dir)
    if not files:
        raise BagReadError(f"{bag_dir}: no storage file (*.mcap / *.db3)")
    mcaps = sorted((f for f in files if f.suffix == ".mcap"), key=_natural_key)
    has_metadata = (bag_dir / BAG_METADATA_NAME).is_file()
    if has_metadata and not stream:
        try:
            return _open_complete(bag_dir, files[0])
        except BagReadError as exc:
            cause = str(exc).partition(": ")[2]
        except Exception as exc:  # noqa: BLE001 - any rosbags failure falls back to streaming
            cause = _plain_rosbags_error(exc)
    if not mcaps:
        why = cause or f"no {BAG_METADATA_NAME}"
        raise BagReadError(
            f"{files[0]}: sqlite3 bag unreadable ({why}); only MCAP bags can be recovered"
        )
    if len(mcaps) != len(files):
        raise BagReadError(f"{bag_dir}: both MCAP and sqlite3 files; one bag has one storage")
    return _open_streaming(bag_dir, mcaps, cause, has_metadata)


def _natural_key(path: Path) -> tuple[Any, ...]:
    # ros2 bag record splits into <name>_0.mcap, <name>_1.mcap, ... <name>_10.mcap.
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path.name))


def _plain_rosbags_error(exc: BaseException) -> str:
    text = " ".join(str(exc).split()).rstrip(".")
    if "magic" in text.lower():
        return "the file does not end with an intact MCAP footer"
    if isinstance(exc, FileNotFoundError):
        return f"{BAG_METADATA_NAME} names a storage file that is not there"
    if type(exc).__module__.startswith("rosbags") and text:
        return f"rosbags: {text}"
    return f"rosbags failed ({type(exc).__name__})"


def _open_complete(bag_dir: Path, storage_path: Path) -> BagContents:
    # rosbags finds the chunks through the summary, which no CRC protects: a flipped byte in
    # its chunk index makes it skip or misorder a chunk silently. Checking the index against
    # the chunks' own headers costs one small read per chunk.
    for path in storage_files(bag_dir):
        if path.suffix == ".mcap":
            problem = _summary_disagrees(path)
            if problem:
                raise BagReadError(f"{path}: {problem}")
    # Opened here so a broken bag fails now (and falls back), not mid-iteration; opening parses
    # metadata and generates types, so it happens once per bag.
    reader = AnyReader([bag_dir])
    reader.open()
    topics = {c.topic: c.msgtype for c in reader.connections}

    def iterate() -> Iterator[tuple[str, str, int, Any]]:
        messages = reader.messages()
        while True:
            try:
                conn, log_ns, raw = next(messages)
            except StopIteration:
                return
            except Exception as exc:  # noqa: BLE001 - a chunk rosbags cannot read
                raise CompleteReadFailed(
                    f"{storage_path}: a chunk cannot be read ({_plain_rosbags_error(exc)})"
                ) from exc
            try:
                msg = _decode(
                    reader.deserialize, raw, conn.topic, conn.msgtype, log_ns, storage_path
                )
            except BagReadError as exc:
                # The definition comes from the unprotected summary; the chunks hold their own.
                raise CompleteReadFailed(str(exc)) from exc
            yield conn.topic, conn.msgtype, log_ns, msg

    return BagContents(
        bag_dir, storage_path, topics, truncated=False, _iter=iterate, _close=reader.close
    )


_FOOTER = struct.Struct("<BQQQI")  # opcode, length, summary start, summary offset start, CRC
_CHUNK_HEAD = struct.Struct("<BQQQQI")  # opcode, length, start, end, uncompressed size, CRC


def _summary_disagrees(path: Path) -> str:
    """Why the MCAP's chunk index cannot be trusted ("" when every entry matches its chunk)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        if size < len(MCAP_MAGIC) + _FOOTER.size + len(MCAP_MAGIC):
            return "too short for an MCAP file"
        fh.seek(size - len(MCAP_MAGIC) - _FOOTER.size)
        tail = fh.read(_FOOTER.size + len(MCAP_MAGIC))
        opcode, length, summary_start, _offsets, _crc = _FOOTER.unpack_from(tail)
        if opcode != OP_FOOTER or length != 20 or tail[_FOOTER.size :] != MCAP_MAGIC:
            return "the file does not end with an intact MCAP footer"
        if not len(MCAP_MAGIC) <= summary_start < size - _FOOTER.size:
            return "the footer points outside the file"
        fh.seek(summary_start)
        summary = memoryview(fh.read(size - len(MCAP_MAGIC) - _FOOTER.size - summary_start))
        pos, chunks = 0, []
        while pos < len(summary):
            if pos + _RECORD_HEADER.size > len(summary):
                return f"the summary at byte {summary_start} is malformed"
            op, length = _RECORD_HEADER.unpack_from(summary, pos)
            body = summary[pos + _RECORD_HEADER.size : pos + _RECORD_HEADER.size + length]
            if len(body) != length:
                return f"the summary at byte {summary_start} is malformed"
            if op == 0x08:  # chunk index
                try:
                    cur = _Cursor(body, summary_start + pos, "chunk index")
                    start_t, end_t, offset, chunk_len = cur.u64(), cur.u64(), cur.u64(), cur.u64()
                    cur.blob()  # message index offsets
                    cur.u64()  # message index length
                    compression = cur.text()
                    compressed, uncompressed = cur.u64(), cur.u64()
                except _Damage as damage:
                    return damage.what
                chunks.append(
                    (offset, chunk_len, start_t, end_t, compression, compressed, uncompressed)
                )
            pos += _RECORD_HEADER.size + length
        previous_end = len(MCAP_MAGIC)
        for offset, chunk_len, start_t, end_t, compression, compressed, uncompressed in sorted(
            chunks
        ):
            where = f"the summary's index of the chunk at byte {offset}"
            if offset < previous_end or offset + chunk_len > summary_start:
                return f"{where} points at overlapping or missing bytes"
            previous_end = offset + chunk_len
            fh.seek(offset)
            head = fh.read(_CHUNK_HEAD.size + 4 + len(compression.encode()) + 8)
            if len(head) != _CHUNK_HEAD.size + 4 + len(compression.encode()) + 8:
                return f"{where} points past the data"
            op, length, c_start, c_end, c_size, _crc = _CHUNK_HEAD.unpack_from(head)
            name_len = int.from_bytes(head[_CHUNK_HEAD.size : _CHUNK_HEAD.size + 4], "little")
            name = head[_CHUNK_HEAD.size + 4 : _CHUNK_HEAD.size + 4 + name_len]
            c_compressed = int.from_bytes(head[-8:], "little")
            if (op, length + _RECORD_HEADER.size, c_start, c_end, c_size, name, c_compressed) != (
                OP_CHUNK,
                chunk_len,
                start_t,
                end_t,
                uncompressed,
                compression.encode(),
                compressed,
            ):
                return f"{where} disagrees with the chunk itself"
    return ""


def _decode(
    deserialize: Callable[[Any, str], Any],
    raw: Any,
    topic: str,
    msgtype: str,
    log_ns: int,
    path: Path,
) -> Any:
    try:
        return deserialize(raw, msgtype)
    except Exception as exc:  # noqa: BLE001 - corrupt CDR bytes raise anything
        raise BagReadError(
            f"{path}: {topic} (log time {log_ns} ns): a message cannot be decoded as "
            f"{msgtype}; its bytes are corrupt ({type(exc).__name__})"
        ) from exc


def _typestore_from_schemas(schemas: dict[str, tuple[str, str]], path: Path) -> Typestore:
    """Jazzy standard types plus every type defined in the bag's schemas."""
    typestore = get_typestore(Stores.ROS2_JAZZY)
    types: dict = {}
    for name, (encoding, text) in schemas.items():
        try:
            if encoding == "ros2msg":
                types.update(get_types_from_msg(text, name))
            elif encoding == "ros2idl":
                types.update(get_types_from_idl(text))
        except Exception as exc:  # noqa: BLE001 - a damaged definition raises anything
            raise BagReadError(
                f"{path}: the bag's definition of {name} does not parse ({type(exc).__name__})"
            ) from exc
    # Definitions in the bag win: they describe exactly the bytes that were written.
    try:
        typestore.register(types)
    except Exception as exc:  # noqa: BLE001
        raise BagReadError(
            f"{path}: the bag's message definitions clash ({type(exc).__name__}: {exc})"
        ) from exc
    return typestore


# --- the streaming MCAP reader ---------------------------------------------------------------


class _Damage(Exception):  # noqa: N818 - internal control flow, never escapes this module
    """The first record that is cut (`torn`) or malformed; reading stops before it."""

    def __init__(self, offset: int, what: str, *, torn: bool) -> None:
        super().__init__(what)
        self.offset, self.what, self.torn = offset, what, torn


@dataclass
class _Scan:
    """What the first pass found in one MCAP file."""

    path: Path
    size: int
    schemas: dict[int, tuple[str, str, str]] = field(default_factory=dict)  # id -> name, enc, text
    channels: dict[int, tuple[str, int]] = field(default_factory=dict)  # id -> topic, schema id
    messages: int = 0
    chunks: int = 0
    good_end: int = 0  # end of the last record kept
    data_end_at: int | None = None  # offset of the DataEnd record
    complete: bool = False  # footer and end magic intact
    damage: _Damage | None = None


class _Cursor:
    """Bounds-checked little-endian reads from one record's bytes."""

    def __init__(self, data: memoryview, offset: int, what: str) -> None:
        self.data, self.pos, self.offset, self.what = data, 0, offset, what

    def _take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise _Damage(
                self.offset, f"{self.what} record at byte {self.offset} is malformed", torn=False
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u16(self) -> int:
        return int.from_bytes(self._take(2), "little")

    def u32(self) -> int:
        return int.from_bytes(self._take(4), "little")

    def u64(self) -> int:
        return int.from_bytes(self._take(8), "little")

    def text(self) -> str:
        raw = self._take(self.u32())
        try:
            return str(raw, "utf-8")
        except UnicodeDecodeError:
            raise _Damage(
                self.offset,
                f"{self.what} record at byte {self.offset} holds broken text",
                torn=False,
            ) from None

    def blob(self, prefix: int = 4) -> memoryview:
        return self._take(self.u32() if prefix == 4 else self.u64())

    def rest(self) -> memoryview:
        return self._take(len(self.data) - self.pos)


def _top_records(fh: Any, size: int) -> Iterator[tuple[int, int, memoryview]]:
    """(offset, opcode, content) of each top-level record after the magic; raises _Damage at
    the first one that is cut by the end of the file or cannot be a record."""
    if size < len(MCAP_MAGIC):
        raise _Damage(0, f"the file is {size} bytes: not even the MCAP magic", torn=True)
    if fh.read(len(MCAP_MAGIC)) != MCAP_MAGIC:
        raise _Damage(0, "the file does not start with the MCAP magic", torn=False)
    offset = len(MCAP_MAGIC)
    while True:
        head = fh.read(_RECORD_HEADER.size)
        if len(head) < _RECORD_HEADER.size:
            if not head:
                raise _Damage(offset, "the file ends without a footer", torn=True)
            raise _Damage(offset, f"a record header at byte {offset} is cut", torn=True)
        opcode, length = _RECORD_HEADER.unpack(head)
        name = _RECORD_NAMES.get(opcode)
        if name is None and opcode not in _PRIVATE_OPS:
            raise _Damage(
                offset, f"byte {offset} holds no MCAP record (opcode 0x{opcode:02x})", torn=False
            )
        name = name or f"private (0x{opcode:02x})"
        available = size - offset - _RECORD_HEADER.size
        if length > available:
            raise _Damage(
                offset,
                f"the {name} record at byte {offset} needs {length} bytes, the file holds "
                f"{available} more",
                torn=True,
            )
        content = fh.read(length)
        if len(content) != length:  # the file shrank while being read
            raise _Damage(offset, f"the {name} record at byte {offset} is cut", torn=True)
        yield offset, opcode, memoryview(content)
        offset += _RECORD_HEADER.size + length


def _chunk_records(content: memoryview, offset: int) -> list[tuple[int, memoryview]]:
    """The (opcode, content) records inside one chunk, after checking size and CRC."""
    cur = _Cursor(content, offset, "chunk")
    cur.u64(), cur.u64()  # message start / end time (the messages carry their own)
    uncompressed_size, crc = cur.u64(), cur.u32()
    compression = cur.text()
    data = cur.blob(prefix=8)
    decompress = _DECOMPRESS.get(compression)
    if decompress is None:
        raise _Damage(
            offset,
            f"the chunk at byte {offset} uses unknown compression {compression!r}",
            torn=False,
        )
    try:
        raw = decompress(data, uncompressed_size)
    except Exception:  # noqa: BLE001 - a damaged compressed stream raises anything
        raw = None
    if raw is None or len(raw) != uncompressed_size:
        raise _Damage(
            offset, f"the chunk at byte {offset} does not decompress to its size", torn=False
        )
    if crc and zlib.crc32(raw) != crc:
        raise _Damage(offset, f"the chunk at byte {offset} fails its CRC check", torn=False)
    view, pos, out = memoryview(raw), 0, []
    while pos < len(view):
        if pos + _RECORD_HEADER.size > len(view):
            raise _Damage(offset, f"the chunk at byte {offset} ends inside a record", torn=False)
        opcode, length = _RECORD_HEADER.unpack_from(view, pos)
        start = pos + _RECORD_HEADER.size
        if opcode not in (OP_SCHEMA, OP_CHANNEL, OP_MESSAGE) or start + length > len(view):
            raise _Damage(
                offset, f"the chunk at byte {offset} holds malformed records", torn=False
            )
        out.append((opcode, view[start : start + length]))
        pos = start + length
    return out


@dataclass
class _Unit:
    """One top-level record kept whole: what it defines and the messages it holds."""

    offset: int
    end: int  # offset just past it (past the end magic for the footer)
    opcode: int
    schemas: dict[int, tuple[str, str, str]] = field(default_factory=dict)
    channels: dict[int, tuple[str, int]] = field(default_factory=dict)
    messages: list[tuple[int, int, memoryview]] = field(default_factory=list)


# Records the data section may hold beside schemas, channels, messages and chunks.
_DATA_SECTION_SKIPPED = {0x07, 0x09, 0x0C}  # message index, attachment, metadata


def _units(fh: Any, size: int) -> Iterator[_Unit]:
    """Every top-level record of the file in order, checked; raises _Damage at the first one
    that is cut or malformed. The footer's unit is the last one (the end magic was checked)."""
    schemas: dict[int, tuple[str, str, str]] = {}
    channels: dict[int, tuple[str, int]] = {}
    in_summary = False
    for offset, opcode, content in _top_records(fh, size):
        end = offset + _RECORD_HEADER.size + len(content)
        if opcode == OP_FOOTER:
            tail = fh.read(len(MCAP_MAGIC))
            if tail != MCAP_MAGIC:
                cut = len(tail) < len(MCAP_MAGIC)
                raise _Damage(
                    end,
                    f"the end magic after the footer is {'cut' if cut else 'damaged'}",
                    torn=cut,
                )
            yield _Unit(offset, end + len(MCAP_MAGIC), opcode)
            return
        if opcode == OP_DATA_END:
            in_summary = True
            yield _Unit(offset, end, opcode)
            continue
        skipped = (
            in_summary  # the summary repeats schemas / channels and indexes the data: not needed
            or (opcode == OP_HEADER and offset == len(MCAP_MAGIC))
            or opcode in _DATA_SECTION_SKIPPED
            or opcode in _PRIVATE_OPS
        )
        if skipped:
            yield _Unit(offset, end, opcode)
            continue
        if opcode not in (OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK):
            raise _Damage(
                offset,
                f"a {_RECORD_NAMES[opcode]} record at byte {offset} sits inside the data section",
                torn=False,
            )
        inner = _chunk_records(content, offset) if opcode == OP_CHUNK else [(opcode, content)]
        # Every record of a chunk is checked before any is kept: a chunk is kept whole or not.
        unit = _Unit(offset, end, opcode)
        for op, body in inner:
            cur = _Cursor(body, offset, _RECORD_NAMES[op])
            if op == OP_SCHEMA:
                sid, name, encoding, text = cur.u16(), cur.text(), cur.text(), cur.text()
                unit.schemas[sid] = (name, encoding, text)
            elif op == OP_CHANNEL:
                cid, sid, topic = cur.u16(), cur.u16(), cur.text()
                if sid not in schemas and sid not in unit.schemas:
                    raise _Damage(
                        offset,
                        f"channel {topic} at byte {offset} names no known schema",
                        torn=False,
                    )
                unit.channels[cid] = (topic, sid)
            else:
                cid = cur.u16()
                cur.u32()  # sequence
                log_ns = cur.u64()
                cur.u64()  # publish time
                if cid not in channels and cid not in unit.channels:
                    raise _Damage(
                        offset, f"a message at byte {offset} names no known channel", torn=False
                    )
                unit.messages.append((cid, log_ns, cur.rest()))
        schemas.update(unit.schemas)
        channels.update(unit.channels)
        yield unit


def _scan_mcap(path: Path) -> _Scan:
    """First pass: structure, schemas, channels and counts of what can be kept."""
    scan = _Scan(path, path.stat().st_size)
    with path.open("rb") as fh:
        try:
            for unit in _units(fh, scan.size):
                scan.good_end = unit.end
                scan.messages += len(unit.messages)
                scan.chunks += unit.opcode == OP_CHUNK
                scan.schemas.update(unit.schemas)
                scan.channels.update(unit.channels)
                if unit.opcode == OP_DATA_END:
                    scan.data_end_at = unit.offset
                scan.complete = unit.opcode == OP_FOOTER
        except _Damage as damage:
            if damage.torn and _ends_with_magic(fh, scan.size):
                # A record that runs past the end of a file that still ends with the MCAP
                # magic was not cut: its length field is corrupt.
                damage = _Damage(damage.offset, f"{damage.what} (a corrupt length)", torn=False)
            scan.damage = damage
    return scan


def _ends_with_magic(fh: Any, size: int) -> bool:
    if size < 2 * len(MCAP_MAGIC):
        return False
    fh.seek(size - len(MCAP_MAGIC))
    return fh.read(len(MCAP_MAGIC)) == MCAP_MAGIC


def _kept_messages(scan: _Scan) -> Iterator[tuple[int, int, memoryview]]:
    """Second pass: (channel id, log time, data) of the messages the first pass kept."""
    with scan.path.open("rb") as fh:
        try:
            for unit in _units(fh, scan.size):
                if unit.end > scan.good_end:
                    return
                yield from unit.messages
                if unit.end == scan.good_end:  # the damage the first pass met comes next
                    return
        except _Damage as damage:
            # Only a file rewritten between the passes gets here (a growing one stops above).
            raise BagReadError(f"{scan.path}: changed while it was read ({damage.what})") from None


def _lost_words(scan: _Scan) -> str:
    d = scan.damage
    if d is None:
        return "nothing lost"
    if scan.data_end_at is not None:
        return (
            f"every data chunk is complete; the summary is {'torn' if d.torn else 'damaged'} "
            f"at byte {d.offset} of {scan.size} ({d.what})"
        )
    rest = scan.size - scan.good_end
    if scan.size < len(MCAP_MAGIC):
        return f"the file holds {scan.size} bytes: its writer died before its first flush"
    if d.torn:
        if rest == 0:
            return f"the file ends at byte {scan.size} after its last complete record ({d.what})"
        return f"torn at byte {d.offset} of {scan.size}: {d.what}; those {rest} bytes are lost"
    return (
        f"corrupt data at byte {d.offset} of {scan.size}: {d.what}; the {rest} bytes from "
        "there on were not read"
    )


def _open_streaming(
    bag_dir: Path, paths: list[Path], cause: str, has_metadata: bool
) -> BagContents:
    scans: list[_Scan] = []
    for path in paths:
        try:
            scan = _scan_mcap(path)
        except OSError as exc:
            raise BagReadError(
                f"{path}: cannot be read ({exc.strerror or type(exc).__name__})"
            ) from exc
        scans.append(scan)
        if not scan.complete:
            # A later split file would follow a hole: the episode ends where this one breaks.
            break
    last = scans[-1]
    topics: dict[str, str] = {}
    schema_defs: dict[str, tuple[str, str]] = {}
    for scan in scans:
        for topic, sid in scan.channels.values():
            name, encoding, text = scan.schemas[sid]
            topics[topic] = name
            schema_defs[name] = (encoding, text)
    messages = sum(s.messages for s in scans)
    if not messages:
        what = _lost_words(last) if last.damage else "it holds no message"
        raise BagReadError(f"{last.path}: no complete message to recover ({what})")
    truncated = not last.complete
    recovery = None
    notes: list[str] = []
    if truncated:
        recovery = Recovery(
            storage_path=last.path,
            file_size=last.size,
            good_bytes=last.good_end,
            messages=messages,
            chunks=sum(s.chunks for s in scans),
            lost=_lost_words(last)
            + (
                f"; the later files {[p.name for p in paths[len(scans) :]]} were not read"
                if len(scans) < len(paths)
                else ""
            ),
            data_complete=last.data_end_at is not None,
            cause=cause,
        )
    elif has_metadata:
        notes.append(f"rosbags could not read it ({cause}); read the MCAP file by itself")
    else:
        notes.append(f"no {BAG_METADATA_NAME}: read the MCAP file by itself")
    typestore = _typestore_from_schemas(schema_defs, last.path)

    def iterate() -> Iterator[tuple[str, str, int, Any]]:
        for scan in scans:
            for cid, log_ns, data in _kept_messages(scan):
                topic, sid = scan.channels[cid]
                name = scan.schemas[sid][0]
                yield (
                    topic,
                    name,
                    log_ns,
                    _decode(typestore.deserialize_cdr, data, topic, name, log_ns, scan.path),
                )

    return BagContents(
        bag_dir,
        scans[0].path,
        topics,
        truncated=truncated,
        recovery=recovery,
        notes=tuple(notes),
        read_by="stream",
        _iter=iterate,
    )
