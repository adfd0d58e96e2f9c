"""The MCAP file format at the level of records: framing, chunks, and the summary's index.

The pieces both ways of reading a bag need (bag_reader.py): the streaming reader of torn files
(mcap_stream.py) walks records with `top_records` / `chunk_records`, and the complete read
checks the unprotected summary with `summary_disagrees` before it trusts rosbags with it. A
record that is cut or malformed raises `Damage` with its offset and plain words.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

MCAP_MAGIC = b"\x89MCAP0\r\n"
RECORD_HEADER = struct.Struct("<BQ")  # opcode, content length

# MCAP record opcodes (https://mcap.dev/spec) and the words used for them in messages.
OP_HEADER, OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK = 0x01, 0x02, 0x03, 0x04, 0x05, 6
OP_DATA_END = 0x0F
RECORD_NAMES = {
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
PRIVATE_OPS = range(0x80, 0x100)


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


class Damage(Exception):  # noqa: N818 - control flow inside the MCAP readers only
    """The first record that is cut (`torn`) or malformed; reading stops before it."""

    def __init__(self, offset: int, what: str, *, torn: bool) -> None:
        super().__init__(what)
        self.offset, self.what, self.torn = offset, what, torn


class Cursor:
    """Bounds-checked little-endian reads from one record's bytes."""

    def __init__(self, data: memoryview, offset: int, what: str) -> None:
        self.data, self.pos, self.offset, self.what = data, 0, offset, what

    def _take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise Damage(
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
            raise Damage(
                self.offset,
                f"{self.what} record at byte {self.offset} holds broken text",
                torn=False,
            ) from None

    def blob(self, prefix: int = 4) -> memoryview:
        return self._take(self.u32() if prefix == 4 else self.u64())

    def rest(self) -> memoryview:
        return self._take(len(self.data) - self.pos)


def top_records(fh: Any, size: int) -> Iterator[tuple[int, int, memoryview]]:
    """(offset, opcode, content) of each top-level record after the magic; raises Damage at
    the first one that is cut by the end of the file or cannot be a record."""
    if size < len(MCAP_MAGIC):
        raise Damage(0, f"the file is {size} bytes: not even the MCAP magic", torn=True)
    if fh.read(len(MCAP_MAGIC)) != MCAP_MAGIC:
        raise Damage(0, "the file does not start with the MCAP magic", torn=False)
    offset = len(MCAP_MAGIC)
    while True:
        head = fh.read(RECORD_HEADER.size)
        if len(head) < RECORD_HEADER.size:
            if not head:
                raise Damage(offset, "the file ends without a footer", torn=True)
            raise Damage(offset, f"a record header at byte {offset} is cut", torn=True)
        opcode, length = RECORD_HEADER.unpack(head)
        name = RECORD_NAMES.get(opcode)
        if name is None and opcode not in PRIVATE_OPS:
            raise Damage(
                offset, f"byte {offset} holds no MCAP record (opcode 0x{opcode:02x})", torn=False
            )
        name = name or f"private (0x{opcode:02x})"
        available = size - offset - RECORD_HEADER.size
        if length > available:
            raise Damage(
                offset,
                f"the {name} record at byte {offset} needs {length} bytes, the file holds "
                f"{available} more",
                torn=True,
            )
        content = fh.read(length)
        if len(content) != length:  # the file shrank while being read
            raise Damage(offset, f"the {name} record at byte {offset} is cut", torn=True)
        yield offset, opcode, memoryview(content)
        offset += RECORD_HEADER.size + length


def chunk_records(content: memoryview, offset: int) -> list[tuple[int, memoryview]]:
    """The (opcode, content) records inside one chunk, after checking size and CRC."""
    cur = Cursor(content, offset, "chunk")
    cur.u64(), cur.u64()  # message start / end time (the messages carry their own)
    uncompressed_size, crc = cur.u64(), cur.u32()
    compression = cur.text()
    data = cur.blob(prefix=8)
    decompress = _DECOMPRESS.get(compression)
    if decompress is None:
        raise Damage(
            offset,
            f"the chunk at byte {offset} uses unknown compression {compression!r}",
            torn=False,
        )
    try:
        raw = decompress(data, uncompressed_size)
    except Exception:  # noqa: BLE001 - a damaged compressed stream raises anything
        raw = None
    if raw is None or len(raw) != uncompressed_size:
        raise Damage(
            offset, f"the chunk at byte {offset} does not decompress to its size", torn=False
        )
    if crc and zlib.crc32(raw) != crc:
        raise Damage(offset, f"the chunk at byte {offset} fails its CRC check", torn=False)
    view, pos, out = memoryview(raw), 0, []
    while pos < len(view):
        if pos + RECORD_HEADER.size > len(view):
            raise Damage(offset, f"the chunk at byte {offset} ends inside a record", torn=False)
        opcode, length = RECORD_HEADER.unpack_from(view, pos)
        start = pos + RECORD_HEADER.size
        if opcode not in (OP_SCHEMA, OP_CHANNEL, OP_MESSAGE) or start + length > len(view):
            raise Damage(offset, f"the chunk at byte {offset} holds malformed records", torn=False)
        out.append((opcode, view[start : start + length]))
        pos = start + length
    return out


_FOOTER = struct.Struct("<BQQQI")  # opcode, length, summary start, summary offset start, CRC
_CHUNK_HEAD = struct.Struct("<BQQQQI")  # opcode, length, start, end, uncompressed size, CRC


def summary_disagrees(path: Path) -> str:
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
            if pos + RECORD_HEADER.size > len(summary):
                return f"the summary at byte {summary_start} is malformed"
            op, length = RECORD_HEADER.unpack_from(summary, pos)
            body = summary[pos + RECORD_HEADER.size : pos + RECORD_HEADER.size + length]
            if len(body) != length:
                return f"the summary at byte {summary_start} is malformed"
            if op == 0x08:  # chunk index
                try:
                    cur = Cursor(body, summary_start + pos, "chunk index")
                    start_t, end_t, offset, chunk_len = cur.u64(), cur.u64(), cur.u64(), cur.u64()
                    cur.blob()  # message index offsets
                    cur.u64()  # message index length
                    compression = cur.text()
                    compressed, uncompressed = cur.u64(), cur.u64()
                except Damage as damage:
                    return damage.what
                chunks.append(
                    (offset, chunk_len, start_t, end_t, compression, compressed, uncompressed)
                )
            pos += RECORD_HEADER.size + length
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
            if (op, length + RECORD_HEADER.size, c_start, c_end, c_size, name, c_compressed) != (
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
