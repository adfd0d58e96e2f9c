"""Faults of episode bags: torn files, flipped bytes, a SIGKILLed recorder, lost side files.

Every trial damages one episode the way a rig does (power lost while the bag closes, bit rot,
``kill -9`` of the recorder, a copied or renamed sidecar), converts it with
``habc_trainer.convert.convert`` into a fresh store and judges what came out against a
reference built without the reader under test:

* the **reference episode** is one synthetic episode (120 ticks at 10 Hz, one camera, a human
  takeover in the middle), written complete; its chunk layout comes from the MCAP summary and
  its messages from the ``mcap`` library's own stream reader;
* the **frames a damaged bag must yield** are those of a complete bag rebuilt from exactly the
  messages of the chunks that survived (read through rosbags, not the recovery path), compared
  array by array, bit for bit;
* a **bad store entry** is one whose frames are not a prefix of the true episode's, or whose
  outcome is not the true one (or ``unknown`` when the end was lost), or a skip whose reason is
  raw exception text or an internal error.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mcap.reader import make_reader
from mcap.records import Channel, Chunk, Message, Schema
from mcap.stream_reader import StreamReader, breakup_chunk

from faults.core import Fault, NotSurvived
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
_RAW_TEXT = re.compile(r"\b\w+(Error|Exception): |internal error|Traceback|unpack requires")

_MAGIC = b"\x89MCAP0\r\n"  # MCAP's magic, at both ends of a file


@functools.cache
def _cache() -> Path:
    """References shared by the trials of one run; made on first use (a killed recorder child
    imports this module too, and must leave nothing behind)."""
    path = Path(tempfile.mkdtemp(prefix="habc-bag-faults-"))
    atexit.register(shutil.rmtree, path, True)
    return path


# --- the reference episode --------------------------------------------------------------------


@dataclass(frozen=True)
class _Reference:
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
def _typestore() -> Any:
    return make_typestore()


@functools.cache
def reference() -> _Reference:
    bag = _cache() / "reference" / EPISODE_ID
    spec = SyntheticSpec(EPISODE_ID, PATTERN, outcome=OUTCOME, image_hw=(12, 16), cameras=("top",))
    write_synthetic_episode(bag, spec, typestore=_typestore())
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
    footer = size - len(_MAGIC) - (1 + 8 + 20)  # footer: opcode, length, 8 + 8 + 4 bytes
    data = mcap.read_bytes()
    summary_start = int.from_bytes(data[footer + 9 : footer + 17], "little")
    return _Reference(
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
def _prefix_episode(kept: int) -> Episode | str:
    """The frames of a complete bag holding the reference's first `kept` messages (or the
    reason such a bag converts to nothing). Read through rosbags: independent of recovery."""
    ref = reference()
    bag = _cache() / "prefix" / f"{EPISODE_ID}_{kept}"
    if not bag.exists():
        with EpisodeBagWriter(bag, typestore=_typestore()) as w:
            for topic, msgtype, log_ns, data in ref.messages[:kept]:
                w.write_raw(topic, msgtype, data, log_ns)
    try:
        return extract_episode(bag, CFG)
    except EpisodeError as exc:
        return str(exc)


def _kept_by_cut(offset: int) -> int:
    """Messages of the chunks whose record lies wholly before `offset`."""
    return sum(n for start, end, n in reference().chunks if end <= offset)


# --- judging a convert run -------------------------------------------------------------------


def _convert(data_root: Path, workdir: Path) -> tuple[ConvertSummary, EpisodeStore]:
    summary = convert([data_root], workdir / "store", CFG)
    return summary, EpisodeStore(workdir / "store")


def _plain_skip(summary: ConvertSummary, bag: Path) -> str:
    reason = summary.skipped.get(str(bag))
    if reason is None:
        raise NotSurvived(f"{bag}: neither stored nor skipped")
    if _RAW_TEXT.search(reason):
        raise NotSurvived(f"skip reason is not plain words: {reason}")
    if str(bag) not in reason:
        raise NotSurvived(f"skip reason does not name the bag: {reason}")
    return reason


def _same_frames(store: EpisodeStore, i: int, want: Episode, n: int | None = None) -> None:
    """Store episode i holds exactly `want`'s first n frames (all of them when n is None)."""
    entry = store.episodes[i]
    n = want.length if n is None else n
    if entry["length"] != n:
        raise NotSurvived(f"stored {entry['length']} frames, expected {n}")
    for key, arr in want.arrays.items():
        got = np.asarray(store.array(key, i))
        if got.shape != arr[:n].shape or not np.array_equal(got, arr[:n], equal_nan=True):
            raise NotSurvived(f"stored {key} differs from the true episode's frames")


def _where(offset: int) -> str:
    ref = reference()
    if offset < len(_MAGIC):
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
    if offset < ref.size - len(_MAGIC):
        return "inside the footer"
    return "inside the end magic"


def _short(reason: str, limit: int = 90) -> str:
    tail = reason.split(": ", 1)[-1]
    return tail if len(tail) <= limit else tail[: limit - 1] + "…"


# --- (a) a bag cut at an offset ---------------------------------------------------------------


def _cut_trials(fast: bool) -> list[tuple[int, bool]]:
    ref = reference()
    summary_len = ref.size - ref.data_end
    if fast:
        mid_chunk = (ref.chunks[5][0] + ref.chunks[5][1]) // 2
        return [
            (mid_chunk, False),
            (ref.data_end + 5, True),
            (ref.data_end + summary_len // 2, True),
            (ref.footer + 4, False),
            (ref.size - 3, True),
        ]
    offsets: set[int] = {9, 100}
    for start, end, _n in ref.chunks:
        offsets |= {start, start + 5, start + 40, (start + end) // 2, end - 1, end, end + 3}
    # Tens of offsets inside the summary and the footer: the close a power cut interrupts.
    offsets |= {ref.data_end + k * summary_len // 30 for k in range(30)}
    offsets |= {ref.footer + k for k in (0, 1, 8, 9, 20, 28)}
    offsets |= {ref.size - k for k in range(1, 9)}
    out = sorted(o for o in offsets if 0 <= o < ref.size)
    # Half the cuts keep metadata.yaml and the sidecar (a bag cut after the close), half lose
    # them (power lost during the close, before they were written).
    return [(o, k % 2 == 0) for k, o in enumerate(out)]


def _inject_cut(param: object, workdir: Path) -> str:
    offset, side_files = param  # type: ignore[misc]
    ref = reference()
    bag = workdir / "data" / EPISODE_ID
    shutil.copytree(ref.bag, bag)
    if not side_files:
        (bag / c.SIDECAR_NAME).unlink()
        (bag / c.BAG_METADATA_NAME).unlink()
    (bag / ref.mcap.name).write_bytes(ref.mcap.read_bytes()[:offset])
    kept = _kept_by_cut(offset)
    want = _prefix_episode(kept)
    summary, store = _convert(workdir / "data", workdir)
    where = f"cut at byte {offset} of {ref.size} ({_where(offset)})"
    if isinstance(want, str):
        if len(store):
            raise NotSurvived(f"{where}: stored an episode where no frame was complete")
        return (
            f"{where}: nothing complete to recover, skipped: {_short(_plain_skip(summary, bag))}"
        )
    if len(store) != 1:
        reason = summary.skipped.get(str(bag), "?")
        raise NotSurvived(f"{where}: {want.length} frames were complete, none stored ({reason})")
    _same_frames(store, 0, want)
    entry = store.episodes[0]
    end_kept = kept == len(ref.messages)
    expected = OUTCOME if end_kept else "unknown"
    if entry["outcome"] != expected:
        raise NotSurvived(f"{where}: outcome {entry['outcome']!r}, expected {expected!r}")
    if not entry["truncated"] or str(bag) not in summary.recovered:
        raise NotSurvived(f"{where}: the recovery is not reported in the convert summary")
    if f"recovered {want.length} frames" not in summary.recovered[str(bag)]:
        raise NotSurvived(f"{where}: summary says {summary.recovered[str(bag)]!r}")
    return (
        f"cut {_where(offset)}: {want.length} of {ref.episode.length} frames recovered "
        f"(all complete chunks), outcome {entry['outcome']}"
    )


# --- (b) one flipped bit ----------------------------------------------------------------------


def _flip_trials(fast: bool) -> list[tuple[int, int]]:
    ref = reference()
    named = [
        12,  # the header record
        ref.chunks[0][0] + 1,  # the first chunk's length field
        ref.chunks[3][0] + 200,  # inside a chunk's records
        ref.chunks[6][1] + 20,  # a message index
        ref.data_end + 600,  # a schema in the summary
        ref.footer + 12,  # the footer's summary offset
    ]
    if fast:
        return [(o, k % 8) for k, o in enumerate(named)]
    rng = np.random.default_rng(7)
    offsets = named + sorted(int(o) for o in rng.integers(0, ref.size, 54))
    return [(o, int(rng.integers(0, 8))) for o in offsets]


def _inject_flip(param: object, workdir: Path) -> str:
    offset, bit = param  # type: ignore[misc]
    ref = reference()
    bag = workdir / "data" / EPISODE_ID
    shutil.copytree(ref.bag, bag)
    data = bytearray(ref.mcap.read_bytes())
    data[offset] ^= 1 << bit
    (bag / ref.mcap.name).write_bytes(bytes(data))
    summary, store = _convert(workdir / "data", workdir)
    where = f"bit {bit} of byte {offset} ({_where(offset)})"
    if not len(store):
        return f"flip {_where(offset)}: skipped: {_short(_plain_skip(summary, bag))}"
    entry = store.episodes[0]
    n = entry["length"]
    if n > ref.episode.length:
        raise NotSurvived(f"{where}: stored {n} frames, the episode has {ref.episode.length}")
    _same_frames(store, 0, ref.episode, n)
    # Every frame is there: the outcome may stand (a summary torn after the data is only an
    # index lost); a shorter prefix lost its end and must be unknown.
    whole = n == ref.episode.length
    if entry["outcome"] != (OUTCOME if whole else "unknown") and entry["outcome"] != "unknown":
        raise NotSurvived(f"{where}: outcome {entry['outcome']!r} on {n} frames")
    if entry["truncated"] and str(bag) not in summary.recovered:
        raise NotSurvived(f"{where}: a recovered prefix is not named in the convert summary")
    kind = (
        f"prefix of {n} frames recovered"
        if not whole
        else ("all frames recovered" if entry["truncated"] else "read whole")
    )
    return f"flip {_where(offset)}: {kind}, outcome {entry['outcome']}"


# --- (c) the recorder SIGKILLed ---------------------------------------------------------------


class _Capture(EpisodeBagWriter):
    """The contract's message builders, capturing the CDR bytes instead of writing a bag."""

    def __init__(self) -> None:
        super().__init__(
            Path(tempfile.gettempdir()) / f"habc-never-opened-{os.getpid()}",
            typestore=_typestore(),
        )
        self.captured: list[tuple[str, str, bytes, int]] = []

    def write_raw(
        self, topic: str, msgtype: str, data: Any, timestamp_ns: int, **_kw: Any
    ) -> None:
        self.captured.append((topic, msgtype, bytes(data), int(timestamp_ns)))


def _tick_ns(t: int) -> int:
    return 1_000_000_000 + t * 100_000_000


@functools.cache
def _recorder_steps() -> tuple[tuple[str, str, bytes, int], ...]:
    """The raw messages a recorder gets during the episode, in order (after START)."""
    cap = _Capture()
    spec = SyntheticSpec(EPISODE_ID, PATTERN)
    from habc_trainer.synthetic import expected_action

    for t, letter in enumerate(spec.pattern):
        now = _tick_ns(t)
        human = letter != "P"
        if t == 0 or (PATTERN[t - 1] != "P") != human:
            cap.write_authority([int(human), 0], now, source="fault")
        for a, arm in enumerate(("left", "right")):
            act = expected_action(t, a)
            cap.write_joint_state(arm, np.append(np.full(6, 0.01 * t), act[-1]), now)
            cap.write_ee_pose(arm, act[:3], [0.0, 0.0, 0.0, 1.0], now)
        cap.write_image("top", np.full((12, 16, 3), t % 256, np.uint8), now)
        for a, arm in enumerate(("left", "right")):
            act = expected_action(t, a)
            authority = c.AUTHORITY_HUMAN if human and a == 0 else c.AUTHORITY_POLICY
            cap.write_arm_command(arm, act[:9], act[9], now, authority=authority, model_index=3)
    return tuple(cap.captured)


def _drive(data_root: Path, stop_after: int | None, kill_point: str = "") -> Path:
    """Run one episode through the recorder core; `stop_after` messages written: close it
    unfinished there (a reference). In the child, `kill_point` pauses it to be killed."""
    from habc_control.authority import Authority
    from habc_control.recorder import EpisodeEventData, EpisodeRecorder, RecorderConfig

    rec = EpisodeRecorder(RecorderConfig(data_root=str(data_root), control_hz=10.0))
    start = EpisodeEventData(c.EVENT_START, _tick_ns(0), EPISODE_ID, "fold the towel", "rollout")
    rec.on_event(start)
    bag_dir = rec.bag_dir
    assert bag_dir is not None

    def written() -> int:
        return rec._writer.message_count if rec._writer is not None else -1

    def closed() -> int:
        # Messages in chunks already on disk: the rest sit in rosbags' pending chunk.
        storage = rec._writer._writer.storage
        return rec._writer.message_count - sum(len(v) for v in storage.chunk.msgs.values())

    def pause(count: int) -> None:
        print(f"ready {count}", flush=True)
        signal.pause()

    ticks = 0
    for topic, msgtype, raw, stamp in _recorder_steps():
        if stop_after is not None and written() >= stop_after:
            rec.close()
            return bag_dir
        if topic == c.AUTHORITY_TOPIC:
            human = PATTERN[(stamp - _tick_ns(0)) // 100_000_000] != "P"
            left = Authority.HUMAN if human else Authority.POLICY
            rec.on_authority({"left": left, "right": Authority.POLICY}, raw, stamp)
        else:
            rec.on_message(topic, msgtype, raw, stamp)
        if topic == c.command_topic("right"):
            ticks += 1
            if kill_point == f"tick_{ticks}":
                pause(closed())
    if stop_after is not None and written() >= stop_after:
        rec.close()
        return bag_dir
    if kill_point in ("before_close", "before_sidecar"):
        import habc_core.bag_writer as bw

        if kill_point == "before_close":
            real_close = bw.EpisodeBagWriter.close

            def close_paused(self: EpisodeBagWriter, meta: Any = None) -> None:
                pause(closed())
                real_close(self, meta)

            bw.EpisodeBagWriter.close = close_paused  # type: ignore[method-assign]
        else:
            total = written() + 1  # + the END event

            def sidecar_paused(*_a: Any, **_k: Any) -> None:
                pause(total)

            bw.write_sidecar = sidecar_paused  # type: ignore[assignment]
    end = EpisodeEventData(
        c.EVENT_END, _tick_ns(len(PATTERN)), EPISODE_ID, "fold the towel", "rollout", "failure"
    )
    rec.on_event(end)
    return bag_dir


def _recorder_child() -> None:
    """Entry point of the subprocess the recorder trial kills."""
    _drive(Path(sys.argv[1]), None, sys.argv[2])
    print("done", flush=True)


def _kill_trials(fast: bool) -> list[str]:
    if fast:
        return ["tick_37", "before_sidecar"]
    ticks = [1, 2, 9, 10, 11, 25, 37, 60, 99, 119, 120]
    return [f"tick_{t}" for t in ticks] + ["before_close", "before_sidecar"]


def _inject_kill(param: object, workdir: Path) -> str:
    point = str(param)
    data_root = workdir / "data"
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    code = "from faults.bag_faults import _recorder_child; _recorder_child()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(data_root), point],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip() if proc.stdout else ""
        if not line.startswith("ready "):
            proc.wait(timeout=30)
            err = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"recorder child did not pause at {point}: {line!r} {err[-500:]}")
        closed = int(line.split()[1])
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    bag = next(p.parent for p in data_root.rglob("*.mcap"))
    # The reference: the same episode through the same recorder, closed cleanly after the
    # messages that were on disk when the child died.
    steps = len(_recorder_steps()) + 2  # + START + END
    ref_root = _cache() / "recorder" / f"kept_{closed}"
    if not ref_root.exists():
        if closed >= steps:
            ref_bag = _drive(ref_root, None)
            (ref_bag / c.SIDECAR_NAME).unlink()
        else:
            _drive(ref_root, closed)
    ref_bag = next(p.parent for p in ref_root.rglob("*.mcap"))
    try:
        want: Episode | str = extract_episode(ref_bag, CFG)
    except EpisodeError as exc:
        want = str(exc)
    summary, store = _convert(data_root, workdir)
    has_sidecar = (bag / c.SIDECAR_NAME).exists()
    where = f"killed at {point} ({closed} messages on disk)"
    if has_sidecar:
        raise NotSurvived(f"{where}: a sidecar was written for a killed recording")
    if isinstance(want, str):
        if len(store):
            raise NotSurvived(f"{where}: stored an episode where no frame was complete")
        return f"killed at {point}: nothing complete, skipped: {_short(_plain_skip(summary, bag))}"
    if len(store) != 1:
        reason = summary.skipped.get(str(bag), "?")
        raise NotSurvived(f"{where}: {want.length} frames were on disk, none stored ({reason})")
    _same_frames(store, 0, want)
    entry = store.episodes[0]
    end_on_disk = closed >= steps
    expected = "failure" if end_on_disk else "unknown"
    if entry["outcome"] != expected:
        raise NotSurvived(f"{where}: outcome {entry['outcome']!r}, expected {expected!r}")
    complete = (bag / c.BAG_METADATA_NAME).exists()
    if entry["truncated"] == complete:
        raise NotSurvived(f"{where}: truncated={entry['truncated']} for a bag complete={complete}")
    if entry["truncated"] and str(bag) not in summary.recovered:
        raise NotSurvived(f"{where}: the recovery is not named in the convert summary")
    state = "complete bag, no sidecar" if complete else "torn bag"
    return (
        f"killed at {point}: {state}; {want.length} frames recovered (all on disk), "
        f"outcome {entry['outcome']} ({entry['outcome_from']})"
    )


# --- (d) metadata.yaml (and the sidecar) missing ----------------------------------------------


def _no_metadata_trials(fast: bool) -> list[tuple[str, str]]:
    # (END outcome, sidecar): "none" = no sidecar, else the sidecar's (relabelled) outcome.
    full = [("success", "none"), ("failure", "none"), ("failure", "success"), ("unknown", "none")]
    return full[:2] if fast else full


def _inject_no_metadata(param: object, workdir: Path) -> str:
    end_outcome, sidecar = param  # type: ignore[misc]
    bag = workdir / "data" / "ep_nometa"
    spec = SyntheticSpec(
        "ep_nometa", "P" * 30, outcome=end_outcome, image_hw=(12, 16), cameras=("top",)
    )
    write_synthetic_episode(bag, spec, typestore=_typestore())
    (bag / c.BAG_METADATA_NAME).unlink()
    if sidecar == "none":
        (bag / c.SIDECAR_NAME).unlink()
    else:
        c.write_sidecar(bag, c.read_sidecar(bag).replace(outcome=sidecar))
    summary, store = _convert(workdir / "data", workdir)
    if len(store) != 1:
        raise NotSurvived(f"not stored: {summary.skipped.get(str(bag))}")
    entry = store.episodes[0]
    want = (end_outcome, "event") if sidecar == "none" else (sidecar, "sidecar")
    if want[0] == "unknown":
        want = ("unknown", "event")
    got = (entry["outcome"], entry["outcome_from"])
    if got != want or entry["truncated"] or entry["length"] != 30:
        raise NotSurvived(f"outcome {got}, expected {want}; {entry['length']} frames")
    if sidecar == "none" and str(bag) not in summary.outcome_from_event:
        raise NotSurvived("the convert summary does not name the bag whose END gave the outcome")
    return f"no metadata.yaml, sidecar {sidecar}: outcome {got[0]} from the {got[1]}"


# --- (e) a sidecar of another episode ---------------------------------------------------------


def _id_trials(fast: bool) -> list[str]:
    full = ["copied_sidecar", "renamed_folder", "no_start_event", "renamed_without_sidecar"]
    return full[:2] if fast else full


def _inject_id_mismatch(param: object, workdir: Path) -> str:
    case = str(param)
    data = workdir / "data"
    recorded = "ep_recorded"
    folder = data / ("ep_elsewhere" if case.startswith("renamed") else recorded)
    spec = SyntheticSpec(
        recorded, "P" * 20, outcome="failure", image_hw=(12, 16), cameras=("top",)
    )
    if case == "no_start_event":
        with EpisodeBagWriter(folder, typestore=_typestore()) as w:
            for t in range(20):
                _write_tick(w, t)
        meta = c.EpisodeMeta(
            "ep_other",
            "fold",
            "rollout",
            "success",
            1,
            3,
            "arx",
            10.0,
            20,
            0,
            3_000_000_000,
            False,
        )
        c.write_sidecar(folder, meta)
    else:
        write_synthetic_episode(folder, spec, typestore=_typestore())
        if case == "copied_sidecar":
            # Another episode's sidecar (id and outcome) copied beside this recording.
            meta = c.read_sidecar(folder).replace(episode_id="ep_other", outcome="success")
            c.write_sidecar(folder, meta)
        elif case == "renamed_without_sidecar":
            (folder / c.SIDECAR_NAME).unlink()
    summary, store = _convert(data, workdir)
    if case in ("copied_sidecar", "no_start_event"):
        if len(store):
            raise NotSurvived(f"{case}: stored with another episode's sidecar")
        reason = _plain_skip(summary, folder)
        if "ep_other" not in reason or "mismatch" not in reason:
            raise NotSurvived(f"{case}: the skip does not name the mismatch: {reason}")
        return f"{case}: skipped, {_short(reason, 70)}"
    if len(store) != 1:
        raise NotSurvived(f"{case}: not stored: {summary.skipped.get(str(folder))}")
    warnings = " ".join(summary.warnings.get(str(folder), []))
    if recorded not in warnings or folder.name not in warnings:
        raise NotSurvived(f"{case}: no warning naming both ids in the summary: {warnings!r}")
    entry = store.episodes[0]
    if entry["episode_id"] != recorded or entry["outcome"] != "failure":
        raise NotSurvived(f"{case}: stored as {entry['episode_id']!r} / {entry['outcome']!r}")
    return f"{case}: stored as {recorded!r} with a warning"


def _write_tick(w: EpisodeBagWriter, t: int) -> None:
    from habc_trainer.synthetic import expected_action

    now = _tick_ns(t)
    w.write_image("top", np.zeros((12, 16, 3), np.uint8), now)
    for a, arm in enumerate(("left", "right")):
        act = expected_action(t, a)
        w.write_joint_state(arm, np.append(np.zeros(6), act[9]), now)
        w.write_ee_pose(arm, act[:3], [0, 0, 0, 1], now)
    for a, arm in enumerate(("left", "right")):
        act = expected_action(t, a)
        w.write_arm_command(arm, act[:9], act[9], now, authority=0, model_index=3)


def _fault(name: str, *args: Any) -> Fault:
    return Fault(name, "bags", *args)


FAULTS: tuple[Fault, ...] = (
    _fault(
        "bag_cut",
        "an MCAP cut at an offset (data chunks, summary, footer, end magic), with and without "
        "metadata.yaml + sidecar",
        "convert does not crash; the frames stored equal those of every complete chunk; outcome "
        "only when the END survived; the recovery is named in the summary",
        _cut_trials,
        _inject_cut,
    ),
    _fault(
        "bag_bitflip",
        "one bit flipped at an offset of a complete MCAP (header, chunks, indexes, summary, "
        "footer)",
        "convert does not crash; a stored episode is a bit-exact prefix of the true one with its "
        "outcome (unknown if shortened), else a skip with a plain reason",
        _flip_trials,
        _inject_flip,
    ),
    _fault(
        "recorder_sigkill",
        "the recorder core (subprocess) SIGKILLed at a tick, before the close, before the sidecar",
        "every message on disk is recovered into the same frames as a clean bag of them; outcome "
        "unknown without END, from END without sidecar",
        _kill_trials,
        _inject_kill,
    ),
    _fault(
        "bag_no_metadata",
        "a complete MCAP without metadata.yaml (and without sidecar, or a relabelled one)",
        "read whole, not truncated; outcome from the END event (named in the summary) unless a "
        "sidecar gives it",
        _no_metadata_trials,
        _inject_no_metadata,
    ),
    _fault(
        "sidecar_id_mismatch",
        "a sidecar of another episode, a renamed folder, a bag without START beside a foreign "
        "sidecar",
        "a foreign sidecar is skipped with a reason naming both ids; a renamed folder is stored "
        "under the recorded id with a warning naming both",
        _id_trials,
        _inject_id_mismatch,
    ),
)
