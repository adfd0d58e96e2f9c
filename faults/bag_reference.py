"""The reference a damaged episode bag is judged against, and the judging (bag fault suite).

The reference episode is one synthetic episode (120 ticks at 10 Hz, one camera, a human takeover
in the middle), written complete; its chunk layout comes from the MCAP summary and its messages
from the `mcap` library's own stream reader, so nothing here goes through the reader under test.
`prefix_episode(kept)` is the complete bag of the first `kept` messages, read through rosbags.
"""

from __future__ import annotations

import atexit
import functools
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mcap.reader import make_reader
from mcap.records import Channel, Chunk, Message, Schema
from mcap.stream_reader import StreamReader, breakup_chunk

from faults.core import NotSurvived
from habc_core import contract as c
from habc_core.bag_writer import EpisodeBagWriter
from habc_core.rostypes import make_typestore
from habc_trainer.convert import ConvertSummary, convert
from habc_trainer.episode import Episode, EpisodeError, ExtractConfig, extract_episode
from habc_trainer.store import EpisodeStore
from habc_trainer.synthetic import SyntheticSpec, write_synthetic_episode

REPO = Path(__file__).resolve().parents[1]
CFG = ExtractConfig(cameras=("top",), image_size=16)
EPISODE_ID = "ep_fault_ref"
# 12 s at 10 Hz: the writer closes a chunk every second, so the data section holds 12 chunks.
PATTERN = "P" * 40 + "H" * 20 + "P" * 60
OUTCOME = "failure"  # not the default "success", so a made-up outcome cannot pass
# Raw exception text ("TypeError: ord() ...") or an internal error is not a plain skip reason.
RAW_TEXT = re.compile(r"\b\w+(Error|Exception): |internal error|Traceback|unpack requires")

MAGIC = b"\x89MCAP0\r\n"  # MCAP's magic, at both ends of a file


@functools.cache
def cache_dir() -> Path:
    """References shared by the trials of one run; made on first use (a killed recorder child
    imports this module too, and must leave nothing behind)."""
    path = Path(tempfile.mkdtemp(prefix="habc-bag-faults-"))
    atexit.register(shutil.rmtree, path, True)
    return path


# --- the reference episode --------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """The complete episode and what the `mcap` library says is inside it."""

    bag: Path  # the episode directory: MCAP, metadata.yaml, sidecar
    mcap: Path
    size: int
    chunks: tuple[tuple[int, int, int], ...]  # per chunk: start, end of its record, messages
    data_end: int  # offset of the DataEnd record: the summary follows it
    footer: int  # offset of the footer record
    messages: tuple[tuple[str, str, int, bytes], ...]  # topic, type, log time, CDR, file order
    episode: Episode  # its frames, read whole


@functools.cache
def typestore() -> Any:
    return make_typestore()


@functools.cache
def reference() -> Reference:
    bag = cache_dir() / "reference" / EPISODE_ID
    spec = SyntheticSpec(EPISODE_ID, PATTERN, outcome=OUTCOME, image_hw=(12, 16), cameras=("top",))
    write_synthetic_episode(bag, spec, typestore=typestore())
    mcap = c.storage_files(bag)[0]
    with mcap.open("rb") as fh:
        summary = make_reader(fh).get_summary()
    if summary is None:
        raise RuntimeError(f"{mcap}: the reference bag has no summary")
    index = sorted(summary.chunk_indexes, key=lambda ci: ci.chunk_start_offset)
    schemas: dict[int, str] = {}
    topics: dict[int, tuple[str, int]] = {}
    messages: list[tuple[str, str, int, bytes]] = []
    counts: list[int] = []
    with mcap.open("rb") as fh:
        for record in StreamReader(fh, emit_chunks=True).records:
            if not isinstance(record, Chunk):
                continue
            n = 0
            for inner in breakup_chunk(record):
                if isinstance(inner, Schema):
                    schemas[inner.id] = inner.name
                elif isinstance(inner, Channel):
                    topics[inner.id] = (inner.topic, inner.schema_id)
                elif isinstance(inner, Message):
                    topic, sid = topics[inner.channel_id]
                    messages.append((topic, schemas[sid], inner.log_time, bytes(inner.data)))
                    n += 1
            counts.append(n)
    chunks = tuple(
        (ci.chunk_start_offset, ci.chunk_start_offset + ci.chunk_length, n)
        for ci, n in zip(index, counts, strict=True)
    )
    size = mcap.stat().st_size
    footer = size - len(MAGIC) - (1 + 8 + 20)  # footer: opcode, length, 8 + 8 + 4 bytes
    data = mcap.read_bytes()
    summary_start = int.from_bytes(data[footer + 9 : footer + 17], "little")
    return Reference(
        bag=bag,
        mcap=mcap,
        size=size,
        chunks=chunks,
        data_end=summary_start - (1 + 8 + 4),  # DataEnd: opcode, length, CRC
        footer=footer,
        messages=tuple(messages),
        episode=extract_episode(bag, CFG),
    )


@functools.cache
def prefix_episode(kept: int) -> Episode | str:
    """The frames of a complete bag holding the reference's first `kept` messages (or the
    reason such a bag converts to nothing). Read through rosbags: independent of recovery."""
    ref = reference()
    bag = cache_dir() / "prefix" / f"{EPISODE_ID}_{kept}"
    if not bag.exists():
        with EpisodeBagWriter(bag, typestore=typestore()) as w:
            for topic, msgtype, log_ns, data in ref.messages[:kept]:
                w.write_raw(topic, msgtype, data, log_ns)
    try:
        return extract_episode(bag, CFG)
    except EpisodeError as exc:
        return str(exc)


def kept_by_cut(offset: int) -> int:
    """Messages of the chunks whose record lies wholly before `offset`."""
    return sum(n for start, end, n in reference().chunks if end <= offset)


# --- judging a convert run -------------------------------------------------------------------


def convert_store(data_root: Path, workdir: Path) -> tuple[ConvertSummary, EpisodeStore]:
    summary = convert([data_root], workdir / "store", CFG)
    return summary, EpisodeStore(workdir / "store")


def plain_skip(summary: ConvertSummary, bag: Path) -> str:
    reason = summary.skipped.get(str(bag))
    if reason is None:
        raise NotSurvived(f"{bag}: neither stored nor skipped")
    if RAW_TEXT.search(reason):
        raise NotSurvived(f"skip reason is not plain words: {reason}")
    if str(bag) not in reason:
        raise NotSurvived(f"skip reason does not name the bag: {reason}")
    return reason


def same_frames(store: EpisodeStore, i: int, want: Episode, n: int | None = None) -> None:
    """Store episode i holds exactly `want`'s first n frames (all of them when n is None)."""
    entry = store.episodes[i]
    n = want.length if n is None else n
    if entry["length"] != n:
        raise NotSurvived(f"stored {entry['length']} frames, expected {n}")
    for key, arr in want.arrays.items():
        got = np.asarray(store.array(key, i))
        if got.shape != arr[:n].shape or not np.array_equal(got, arr[:n], equal_nan=True):
            raise NotSurvived(f"stored {key} differs from the true episode's frames")


def judge_stored(
    summary: ConvertSummary,
    store: EpisodeStore,
    bag: Path,
    want: Episode | str,
    where: str,
    *,
    kept_as: str,
    outcome: str,
) -> dict[str, Any] | str:
    """The store's one entry, checked to hold exactly `want`'s frames with `outcome`; or, when
    `want` is the reason no frame was complete (`kept_as`: how the frames were kept, for the
    message), the bag's plain skip reason. Raises NotSurvived for anything else."""
    if isinstance(want, str):
        if len(store):
            raise NotSurvived(f"{where}: stored an episode where no frame was complete")
        return plain_skip(summary, bag)
    if len(store) != 1:
        reason = summary.skipped.get(str(bag), "?")
        raise NotSurvived(f"{where}: {want.length} frames were {kept_as}, none stored ({reason})")
    same_frames(store, 0, want)
    entry = store.episodes[0]
    if entry["outcome"] != outcome:
        raise NotSurvived(f"{where}: outcome {entry['outcome']!r}, expected {outcome!r}")
    return entry


def where_in_file(offset: int) -> str:
    ref = reference()
    if offset < len(MAGIC):
        return "inside the start magic"
    if offset < ref.chunks[0][0]:
        return "inside the header"
    for k, (start, end, _n) in enumerate(ref.chunks):
        if start <= offset < end:
            return f"inside data chunk {k + 1} of {len(ref.chunks)}"
    if offset < ref.data_end:
        return "between data chunks"
    if offset < ref.footer:
        return "inside the summary"
    if offset < ref.size - len(MAGIC):
        return "inside the footer"
    return "inside the end magic"


def short(reason: str, limit: int = 90) -> str:
    tail = reason.split(": ", 1)[-1]
    return tail if len(tail) <= limit else tail[: limit - 1] + "…"


def tick_ns(t: int) -> int:
    return 1_000_000_000 + t * 100_000_000
