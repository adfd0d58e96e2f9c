"""The streaming MCAP reader: what of a torn or damaged file can be kept, record by record.

It walks the records from the start, keeps every complete record and every complete chunk whose
framing, decompressed size and CRC check out (a chunk is kept whole or not at all), ignores the
summary, and stops cleanly at the first record that is cut or malformed. It holds one chunk in
memory and reads the file twice: `scan_mcap` checks the structure and collects schemas and
topics (the caller needs the topics before the messages), `kept_messages` yields the messages
of what the scan accepted; `lost_words` says in plain words what was lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from habc_core.bag_errors import BagReadError
from habc_core.mcap_format import (
    MCAP_MAGIC,
    OP_CHANNEL,
    OP_CHUNK,
    OP_DATA_END,
    OP_FOOTER,
    OP_HEADER,
    OP_MESSAGE,
    OP_SCHEMA,
    PRIVATE_OPS,
    RECORD_HEADER,
    RECORD_NAMES,
    Cursor,
    Damage,
    chunk_records,
    top_records,
)


@dataclass
class Scan:
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
    damage: Damage | None = None


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
    """Every top-level record of the file in order, checked; raises Damage at the first one
    that is cut or malformed. The footer's unit is the last one (the end magic was checked)."""
    schemas: dict[int, tuple[str, str, str]] = {}
    channels: dict[int, tuple[str, int]] = {}
    in_summary = False
    for offset, opcode, content in top_records(fh, size):
        end = offset + RECORD_HEADER.size + len(content)
        if opcode == OP_FOOTER:
            tail = fh.read(len(MCAP_MAGIC))
            if tail != MCAP_MAGIC:
                cut = len(tail) < len(MCAP_MAGIC)
                raise Damage(
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
            or opcode in PRIVATE_OPS
        )
        if skipped:
            yield _Unit(offset, end, opcode)
            continue
        if opcode not in (OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK):
            raise Damage(
                offset,
                f"a {RECORD_NAMES[opcode]} record at byte {offset} sits inside the data section",
                torn=False,
            )
        inner = chunk_records(content, offset) if opcode == OP_CHUNK else [(opcode, content)]
        # Every record of a chunk is checked before any is kept: a chunk is kept whole or not.
        unit = _Unit(offset, end, opcode)
        for op, body in inner:
            cur = Cursor(body, offset, RECORD_NAMES[op])
            if op == OP_SCHEMA:
                sid, name, encoding, text = cur.u16(), cur.text(), cur.text(), cur.text()
                unit.schemas[sid] = (name, encoding, text)
            elif op == OP_CHANNEL:
                cid, sid, topic = cur.u16(), cur.u16(), cur.text()
                if sid not in schemas and sid not in unit.schemas:
                    raise Damage(
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
                    raise Damage(
                        offset, f"a message at byte {offset} names no known channel", torn=False
                    )
                unit.messages.append((cid, log_ns, cur.rest()))
        schemas.update(unit.schemas)
        channels.update(unit.channels)
        yield unit


def scan_mcap(path: Path) -> Scan:
    """First pass: structure, schemas, channels and counts of what can be kept."""
    scan = Scan(path, path.stat().st_size)
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
        except Damage as damage:
            if damage.torn and _ends_with_magic(fh, scan.size):
                # A record that runs past the end of a file that still ends with the MCAP
                # magic was not cut: its length field is corrupt.
                damage = Damage(damage.offset, f"{damage.what} (a corrupt length)", torn=False)
            scan.damage = damage
    return scan


def _ends_with_magic(fh: Any, size: int) -> bool:
    if size < 2 * len(MCAP_MAGIC):
        return False
    fh.seek(size - len(MCAP_MAGIC))
    return fh.read(len(MCAP_MAGIC)) == MCAP_MAGIC


def kept_messages(scan: Scan) -> Iterator[tuple[int, int, memoryview]]:
    """Second pass: (channel id, log time, data) of the messages the first pass kept."""
    with scan.path.open("rb") as fh:
        try:
            for unit in _units(fh, scan.size):
                if unit.end > scan.good_end:
                    return
                yield from unit.messages
                if unit.end == scan.good_end:  # the damage the first pass met comes next
                    return
        except Damage as damage:
            # Only a file rewritten between the passes gets here (a growing one stops above).
            raise BagReadError(f"{scan.path}: changed while it was read ({damage.what})") from None


def lost_words(scan: Scan) -> str:
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
