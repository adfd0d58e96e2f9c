"""Torn and damaged bags: what is recovered, what the outcome is, how convert reports it.

Pins episode-format.md "Crash safety and recovery", "Outcome" and "Skip reasons": a torn MCAP
keeps every complete chunk; an outcome is kept only when the recording's end survived; a sidecar
of another episode is refused; every skip names the bag in plain words.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from habc_core import contract as c
from habc_core import rostypes
from habc_core.bag_reader import BagReadError, open_bag
from habc_core.bag_writer import EpisodeBagWriter
from habc_core.features import ACTION, image_key
from habc_trainer.convert import convert, main
from habc_trainer.episode import EpisodeError, ExtractConfig, extract_episode
from habc_trainer.store import EpisodeStore
from habc_trainer.synthetic import SyntheticSpec, expected_action, write_synthetic_episode

CFG = ExtractConfig(cameras=("top",), image_size=16)
TICKS = 40  # at 10 Hz: the writer closes a chunk every second -> 4 data chunks
RAW_TEXT = re.compile(r"\b\w+(Error|Exception): |ord\(\)|unpack requires|internal error")


@pytest.fixture(scope="module")
def typestore():
    return rostypes.make_typestore()


@pytest.fixture(scope="module")
def complete(tmp_path_factory, typestore) -> Path:
    """A complete episode: MCAP + metadata.yaml + sidecar (outcome failure)."""
    bag = tmp_path_factory.mktemp("ref") / "ep_ref"
    spec = SyntheticSpec("ep_ref", "P" * TICKS, outcome="failure", image_hw=(12, 16))
    write_synthetic_episode(bag, spec, typestore=typestore)
    return bag


def mcap_of(bag: Path) -> Path:
    return c.storage_files(bag)[0]


def records(path: Path) -> list[tuple[int, int, int]]:
    """(offset, opcode, length) of every top-level record of a complete MCAP."""
    data, out, pos = path.read_bytes(), [], 8
    while pos < len(data) - 8:
        op, length = struct.unpack_from("<BQ", data, pos)
        out.append((pos, op, length))
        pos += 9 + length
    return out


def copy_cut(src: Path, dst: Path, offset: int, *, side_files: bool) -> Path:
    shutil.copytree(src, dst)
    if not side_files:
        (dst / c.SIDECAR_NAME).unlink()
        (dst / c.BAG_METADATA_NAME).unlink()
    path = mcap_of(dst)
    path.write_bytes(path.read_bytes()[:offset])
    return dst


def summary_offsets(bag: Path) -> dict[str, int]:
    recs = records(mcap_of(bag))
    data_end = next(o for o, op, _n in recs if op == 0x0F)
    footer = next(o for o, op, _n in recs if op == 0x02)
    chunk = [o for o, op, _n in recs if op == 0x06]
    size = mcap_of(bag).stat().st_size
    return {
        "after_data_end": data_end + 13,
        "mid_summary": (data_end + footer) // 2,
        "in_footer": footer + 11,
        "in_end_magic": size - 3,
        "mid_last_chunk": chunk[-1] + 500,
    }


# --- recovery of torn MCAPs -------------------------------------------------------------------


@pytest.mark.parametrize("where", ["after_data_end", "mid_summary", "in_footer", "in_end_magic"])
def test_a_bag_torn_in_its_summary_keeps_every_frame(tmp_path, complete, where):
    """Power lost during the close: every data chunk is complete, so every frame survives."""
    offset = summary_offsets(complete)[where]
    bag = copy_cut(complete, tmp_path / "ep_ref", offset, side_files=False)
    ep = extract_episode(bag, CFG)
    full = extract_episode(complete, CFG)
    assert ep.info.truncated and ep.length == full.length == TICKS
    np.testing.assert_array_equal(ep.arrays[ACTION], full.arrays[ACTION])
    np.testing.assert_array_equal(ep.arrays[image_key("top")], full.arrays[image_key("top")])
    assert f"recovered {TICKS} frames" in ep.info.recovery
    assert "every data chunk is complete" in ep.info.recovery
    # No sidecar, but the END event survived with the data: its outcome stands.
    assert (ep.info.outcome, ep.info.outcome_from) == ("failure", "event")


def test_a_bag_torn_mid_chunk_keeps_the_complete_chunks_and_no_outcome(tmp_path, complete):
    offset = summary_offsets(complete)["mid_last_chunk"]
    bag = copy_cut(complete, tmp_path / "ep_ref", offset, side_files=True)
    ep = extract_episode(bag, CFG)
    assert ep.info.truncated and ep.length == 30  # 3 of 4 one-second chunks
    full = extract_episode(complete, CFG)
    np.testing.assert_array_equal(ep.arrays[ACTION], full.arrays[ACTION][:30])
    assert re.search(
        rf"torn at byte {offset - 500} of {offset}: the chunk record", ep.info.recovery
    )
    # The sidecar says failure, but the end of the recording is lost: the label would make the
    # last recovered frame a false terminal.
    assert (ep.info.outcome, ep.info.outcome_from) == ("unknown", "truncated")
    assert any("the sidecar says failure, not applied" in w for w in ep.info.warnings)


def test_convert_names_recovered_and_skipped_bags(tmp_path, complete):
    data = tmp_path / "data"
    offsets = summary_offsets(complete)
    copy_cut(complete, data / "torn_close", offsets["mid_summary"], side_files=False)
    copy_cut(complete, data / "torn_mid", offsets["mid_last_chunk"], side_files=True)
    copy_cut(complete, data / "torn_start", 30, side_files=True)
    summary = convert([data], tmp_path / "store", CFG)
    assert summary.converted == 2 and summary.truncated == 2
    assert summary.recovered[str(data / "torn_close")].startswith(f"recovered {TICKS} frames")
    assert summary.recovered[str(data / "torn_mid")].startswith("recovered 30 frames")
    reason = summary.skipped[str(data / "torn_start")]
    assert "no complete message to recover" in reason and not RAW_TEXT.search(reason)
    text = summary.format()
    assert f"recovered torn bag {data / 'torn_close'}: recovered {TICKS} frames" in text
    assert f"recovered torn bag {data / 'torn_mid'}: recovered 30 frames" in text
    assert f"skipped {data / 'torn_start'}: " in text
    assert f"outcome from the END event (no sidecar) for 1 bag(s): {data / 'torn_close'}" in text
    assert "the sidecar says failure, not applied" in text
    outcomes = {e["bag_dir"]: e["outcome"] for e in EpisodeStore(tmp_path / "store").episodes}
    assert outcomes[str((data / "torn_close").resolve())] == "failure"
    assert outcomes[str((data / "torn_mid").resolve())] == "unknown"


def test_a_complete_mcap_without_metadata_yaml_takes_the_end_events_outcome(tmp_path, complete):
    bag = tmp_path / "ep_ref"
    shutil.copytree(complete, bag)
    (bag / c.BAG_METADATA_NAME).unlink()
    (bag / c.SIDECAR_NAME).unlink()
    ep = extract_episode(bag, CFG)
    assert not ep.info.truncated and ep.length == TICKS and ep.info.recovery == ""
    assert (ep.info.outcome, ep.info.outcome_from) == ("failure", "event")
    assert "no metadata.yaml: read the MCAP file by itself" in ep.info.provenance
    assert "outcome failure from the END event (no sidecar)" in ep.info.provenance


def test_the_writer_stores_chunk_crcs_and_a_flipped_byte_keeps_the_chunks_before(
    tmp_path, complete
):
    chunks = [(o, n) for o, op, n in records(mcap_of(complete)) if op == 0x06]
    data = mcap_of(complete).read_bytes()
    assert all(struct.unpack_from("<I", data, o + 33)[0] != 0 for o, _n in chunks)
    bag = tmp_path / "ep_ref"
    shutil.copytree(complete, bag)
    flipped = bytearray(data)
    flipped[chunks[2][0] + 300] ^= 0x04  # inside the third chunk's records
    mcap_of(bag).write_bytes(bytes(flipped))
    ep = extract_episode(bag, CFG)  # rosbags refuses the chunk; the stream keeps the two before
    assert ep.info.truncated and ep.length == 20
    assert f"the chunk at byte {chunks[2][0]} fails its CRC check" in ep.info.recovery
    assert ep.info.outcome == "unknown"


def test_a_damaged_chunk_index_is_not_trusted(tmp_path, complete):
    """rosbags finds chunks through the summary: a flipped start time there drops a tick."""
    index = [o for o, op, _n in records(mcap_of(complete)) if op == 0x08]
    bag = tmp_path / "ep_ref"
    shutil.copytree(complete, bag)
    flipped = bytearray(mcap_of(complete).read_bytes())
    flipped[index[2] + 10] ^= 0x20  # the third chunk index's message start time
    mcap_of(bag).write_bytes(bytes(flipped))
    ep = extract_episode(bag, CFG)
    assert ep.length == TICKS and not ep.info.truncated
    np.testing.assert_array_equal(ep.arrays[ACTION], extract_episode(complete, CFG).arrays[ACTION])
    assert any("disagrees with the chunk itself" in p for p in ep.info.provenance)


def test_a_corrupt_chunk_without_crc_is_named_in_plain_words(tmp_path, complete):
    """Bags of older writers carry no chunk CRC: a broken record inside a chunk made rosbags
    fail with `TypeError: ord()`; now the chunks before it are kept and the damage is named."""
    chunks = [o for o, op, _n in records(mcap_of(complete)) if op == 0x06]
    data = bytearray(mcap_of(complete).read_bytes())
    for o in chunks:
        data[o + 33 : o + 37] = b"\0\0\0\0"  # "CRC not computed", as rosbags writes it
    # The length of the first record inside the second chunk: the chunk no longer parses.
    name_len = struct.unpack_from("<I", data, chunks[1] + 37)[0]
    first_record = chunks[1] + 37 + 4 + name_len + 8
    data[first_record + 1 + 6] ^= 0x10
    bag = tmp_path / "ep_ref"
    shutil.copytree(complete, bag)
    mcap_of(bag).write_bytes(bytes(data))
    ep = extract_episode(bag, CFG)
    assert ep.length == 10
    assert f"the chunk at byte {chunks[1]} holds malformed records" in ep.info.recovery


def test_a_split_bag_is_recovered_file_by_file_in_numeric_order(tmp_path, typestore):
    bag = tmp_path / "split"
    bag.mkdir()
    for part, ticks in ((0, range(0, 10)), (2, range(10, 20))):
        tmp = tmp_path / f"part{part}"
        with EpisodeBagWriter(tmp, typestore=typestore) as w:
            if part == 0:
                w.write_event(c.EVENT_START, 0, episode_id="split", task="t", source="demo")
            for t in ticks:
                write_tick(w, t)
        (tmp / f"part{part}.mcap").rename(bag / f"split_{part}.mcap")
    torn = bag / "split_2.mcap"
    torn.write_bytes(torn.read_bytes()[:-200])  # its summary torn
    # Name order would read the (empty) split_10 before split_2; numeric order reads it last,
    # and the torn split_2 ends the episode.
    (bag / "split_10.mcap").write_bytes(b"")
    with open_bag(bag) as contents:
        assert contents.truncated
        assert contents.recovery.storage_path == torn
        assert "the later files ['split_10.mcap'] were not read" in contents.recovery.lost
    ep = extract_episode(bag, cfg_no_cams())
    assert ep.length == 20 and ep.info.source == "demo"


def write_tick(w: EpisodeBagWriter, t: int, *, log_shift_ns: int = 0) -> None:
    now = 1_000_000_000 + t * 100_000_000
    for a, arm in enumerate(("left", "right")):
        act = expected_action(t, a)
        msg_ns = now + (log_shift_ns if arm == "left" else 0)
        js = w.typestore.types[c.JOINT_STATE_TYPE](
            header=w._header(now, c.base_frame(arm)),
            name=c.joint_names(arm),
            position=np.append(np.zeros(6), act[9]),
            velocity=np.zeros(0),
            effort=np.zeros(0),
        )
        w.write(c.joint_states_topic(arm), js, msg_ns)
        w.write_ee_pose(arm, act[:3], [0, 0, 0, 1], now)
    for a, arm in enumerate(("left", "right")):
        act = expected_action(t, a)
        w.write_arm_command(arm, act[:9], act[9], now, authority=0)


def cfg_no_cams() -> ExtractConfig:
    return ExtractConfig(cameras=())


# --- skip reasons ----------------------------------------------------------------------------


def test_a_log_time_fault_is_named_as_one(tmp_path, typestore):
    """One joint state logged 1.5 s late: rosbags sorts by log time, so its header stamp looks
    out of order, but the fault is the log time, and the message says so."""
    bag = tmp_path / "late"
    with EpisodeBagWriter(bag, typestore=typestore) as w:
        w.write_event(c.EVENT_START, 0, episode_id="late", task="t", source="rollout")
        for t in range(40):
            write_tick(w, t, log_shift_ns=1_500_000_000 if t == 12 else 0)
    with pytest.raises(EpisodeError) as err:
        extract_episode(bag, cfg_no_cams())
    text = str(err.value)
    assert "/left_arm/joint_states @ t=3.700s" in text and "log-time fault" in text
    assert "+1.500s from its header stamp" in text
    # Read in file order (no metadata.yaml) the same fault shows as log times going backwards.
    (bag / c.BAG_METADATA_NAME).unlink()
    with pytest.raises(EpisodeError, match=r"joint_states @ t=2\.300s .*log-time fault: log"):
        extract_episode(bag, cfg_no_cams())


def test_a_header_stamp_fault_is_not_called_a_log_time_fault(tmp_path, typestore):
    bag = tmp_path / "stamp"
    with EpisodeBagWriter(bag, typestore=typestore) as w:
        w.write_event(c.EVENT_START, 0, episode_id="stamp", task="t", source="rollout")
        for t in range(40):
            write_tick(w, t)
            if t == 12:  # a second joint state whose stamp jumped 0.5 s back
                js = w.typestore.types[c.JOINT_STATE_TYPE](
                    header=w._header(1_000_000_000 + t * 100_000_000 - 500_000_000, "x"),
                    name=c.joint_names("right"),
                    position=np.append(np.zeros(6), 0.04),
                    velocity=np.zeros(0),
                    effort=np.zeros(0),
                )
                w.write(c.joint_states_topic("right"), js, 1_000_000_000 + t * 100_000_000 + 1)
    with pytest.raises(EpisodeError, match="non-monotonic header stamps") as err:
        extract_episode(bag, cfg_no_cams())
    assert "log-time fault" not in str(err.value)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "its writer died before its first flush"),
        (b"not an mcap file at all", "does not start with the MCAP magic"),
        (b"\x89MCAP0\r\n" + b"\x55" * 40, "holds no MCAP record"),
    ],
)
def test_unreadable_files_are_skipped_in_plain_words(tmp_path, content, words):
    bag = tmp_path / "data" / "junk"
    bag.mkdir(parents=True)
    (bag / "junk.mcap").write_bytes(content)
    summary = convert([tmp_path / "data"], tmp_path / "store", CFG)
    reason = summary.skipped[str(bag)]
    assert str(bag) in reason and words in reason and not RAW_TEXT.search(reason)


def test_an_internal_error_gets_a_plain_prefix_and_its_type(tmp_path, complete, monkeypatch):
    from habc_trainer import convert_pool

    def broken(*_a, **_k):
        raise TypeError("ord() expected a character, but string of length 0 found")

    shutil.copytree(complete, tmp_path / "data" / "ep")
    monkeypatch.setattr(convert_pool, "extract_episode", broken)  # in-process: workers=1
    summary = convert([tmp_path / "data"], tmp_path / "store", CFG)
    reason = summary.skipped[str(tmp_path / "data" / "ep")]
    assert reason.startswith(f"{tmp_path / 'data' / 'ep'}: internal error while converting")
    assert "TypeError" in reason


# --- episode ids ------------------------------------------------------------------------------


def test_a_sidecar_of_another_episode_is_refused(tmp_path, complete):
    bag = tmp_path / "ep_ref"
    shutil.copytree(complete, bag)
    c.write_sidecar(bag, c.read_sidecar(bag).replace(episode_id="ep_other", outcome="success"))
    with pytest.raises(
        EpisodeError,
        match=r"episode_id mismatch: the sidecar says 'ep_other', "
        r"the bag's events say 'ep_ref'",
    ):
        extract_episode(bag, CFG)


def test_a_sidecar_not_matching_a_bag_without_start_event_is_refused(tmp_path, typestore):
    bag = tmp_path / "ep_here"
    with EpisodeBagWriter(bag, typestore=typestore) as w:
        for t in range(5):
            write_tick(w, t)
    meta = c.EpisodeMeta(
        "ep_there", "fold", "rollout", "success", 1, 3, "arx", 10.0, 5, 0, 2_000_000_000, False
    )
    c.write_sidecar(bag, meta)
    with pytest.raises(
        EpisodeError, match=r"the sidecar says 'ep_there', its folder is 'ep_here'"
    ):
        extract_episode(bag, cfg_no_cams())
    c.write_sidecar(bag, meta.replace(episode_id="ep_here"))
    assert extract_episode(bag, cfg_no_cams()).info.outcome == "success"


@pytest.mark.parametrize("with_sidecar", [True, False])
def test_a_renamed_folder_is_accepted_with_a_warning(tmp_path, complete, with_sidecar):
    data = tmp_path / "data"
    shutil.copytree(complete, data / "renamed")
    if not with_sidecar:
        (data / "renamed" / c.SIDECAR_NAME).unlink()
    summary = convert([data], tmp_path / "store", CFG)
    (entry,) = EpisodeStore(tmp_path / "store").episodes
    assert entry["episode_id"] == "ep_ref" and entry["outcome"] == "failure"
    (warning,) = summary.warnings[str(data / "renamed")]
    assert "'renamed'" in warning and "'ep_ref'" in warning
    assert f"warning {data / 'renamed'}: folder 'renamed'" in summary.format()


# --- the convert CLI ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image-size", "big"], "argument --image-size: expected an integer, got 'big'"),
        (["--image-size", "4"], "--image-size: image_size: must be in [8, 1024], got 4"),
        (["--cameras", "top,nose"], "--cameras: cameras: unknown camera 'nose'"),
        (["--max-staleness", "-1"], "argument --max-staleness: must be > 0, got -1"),
        (["--max-command-gap", "soon"], "argument --max-command-gap: expected a number"),
        (["--proprio", "elbow"], "argument --proprio: invalid choice: 'elbow'"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_cli_user_errors_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    (tmp_path / "data").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main(["--data-root", str(tmp_path / "data"), "--store", str(tmp_path / "s"), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("habc-convert: error: ") and err.count("\n") == 1 and message in err


def test_cli_refuses_a_store_that_is_a_file_and_a_missing_json_dir(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "file").write_text("x")
    base = ["--data-root", str(tmp_path / "data")]
    for extra, message in (
        (["--store", str(tmp_path / "file")], "--store"),
        (
            ["--store", str(tmp_path / "s"), "--summary-json", str(tmp_path / "no/s.json")],
            "--summary-json",
        ),
    ):
        with pytest.raises(SystemExit):
            main([*base, *extra])
        err = capsys.readouterr().err
        assert err.startswith(f"habc-convert: error: {message} ") and err.count("\n") == 1


# --- the recorder SIGKILLed ------------------------------------------------------------------

_RECORDER = textwrap.dedent(
    """
    import signal, sys
    import numpy as np
    from habc_control.authority import Authority
    from habc_control.recorder import EpisodeEventData, EpisodeRecorder, RecorderConfig
    from habc_core import contract as c
    from habc_core.bag_writer import EpisodeBagWriter
    from habc_trainer.synthetic import expected_action

    class Capture(EpisodeBagWriter):  # the contract's builders, bytes for the recorder
        def write_raw(self, topic, msgtype, data, timestamp_ns, **_kw):
            self.out = (topic, msgtype, bytes(data), timestamp_ns)

    cap = Capture(sys.argv[1] + "/unused")
    rec = EpisodeRecorder(RecorderConfig(data_root=sys.argv[1], control_hz=10.0))
    rec.on_event(EpisodeEventData(c.EVENT_START, 10**9, "ep_kill", "fold", "rollout"))
    cap.write_authority([0, 0], 10**9)
    rec.on_authority({"left": Authority.POLICY, "right": Authority.POLICY}, cap.out[2], 10**9)
    for t in range(int(sys.argv[2])):
        now = 10**9 + t * 10**8
        for a, arm in enumerate(("left", "right")):
            act = expected_action(t, a)
            cap.write_joint_state(arm, np.append(np.zeros(6), act[9]), now)
            rec.on_message(*cap.out)
            cap.write_ee_pose(arm, act[:3], [0, 0, 0, 1], now)
            rec.on_message(*cap.out)
        cap.write_image("top", np.zeros((12, 16, 3), np.uint8), now)
        rec.on_message(*cap.out)
        for a, arm in enumerate(("left", "right")):
            act = expected_action(t, a)
            cap.write_arm_command(arm, act[:9], act[9], now, authority=0)
            rec.on_message(*cap.out)
    print("ready", flush=True)
    signal.pause()
    """
)


def test_a_recorder_killed_mid_episode_is_recovered(tmp_path):
    """kill -9 of the recorder core 3.5 s into an episode: the 3 flushed seconds convert."""
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-c", _RECORDER, str(data), "35"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    (bag,) = [p.parent for p in data.rglob("*.mcap")]
    assert not (bag / c.SIDECAR_NAME).exists() and not (bag / c.BAG_METADATA_NAME).exists()
    summary = convert([data], tmp_path / "store", CFG)
    (entry,) = EpisodeStore(tmp_path / "store").episodes
    assert entry["truncated"] and entry["outcome"] == "unknown" and entry["source"] == "rollout"
    assert entry["length"] == 30  # ticks of the chunks flushed at 1, 2 and 3 s of bag time
    assert summary.recovered[str(bag)].startswith("recovered 30 frames")


def test_reading_a_missing_bag_is_a_bag_read_error(tmp_path):
    with pytest.raises(BagReadError, match="not a bag directory"):
        open_bag(tmp_path / "nope")
