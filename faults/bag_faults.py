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

The reference and the judging are faults/bag_reference.py; the SIGKILLed recorder (a
subprocess) is faults/recorder_kill.py; the faults themselves are listed here, in `FAULTS`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from faults.bag_reference import (
    EPISODE_ID,
    OUTCOME,
    convert_store,
    judge_stored,
    kept_by_cut,
    plain_skip,
    prefix_episode,
    reference,
    same_frames,
    short,
    tick_ns,
    typestore,
    where_in_file,
)
from faults.core import Fault, NotSurvived
from faults.recorder_kill import inject_kill, kill_trials
from habc_core import contract as c
from habc_core.bag_writer import EpisodeBagWriter
from habc_trainer.synthetic import SyntheticSpec, write_synthetic_episode

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
    kept = kept_by_cut(offset)
    want = prefix_episode(kept)
    summary, store = convert_store(workdir / "data", workdir)
    where = f"cut at byte {offset} of {ref.size} ({where_in_file(offset)})"
    expected = OUTCOME if kept == len(ref.messages) else "unknown"
    entry = judge_stored(summary, store, bag, want, where, kept_as="complete", outcome=expected)
    if isinstance(entry, str):
        return f"{where}: nothing complete to recover, skipped: {short(entry)}"
    if not entry["truncated"] or str(bag) not in summary.recovered:
        raise NotSurvived(f"{where}: the recovery is not reported in the convert summary")
    if f"recovered {want.length} frames" not in summary.recovered[str(bag)]:
        raise NotSurvived(f"{where}: summary says {summary.recovered[str(bag)]!r}")
    return (
        f"cut {where_in_file(offset)}: {want.length} of {ref.episode.length} frames recovered "
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
    summary, store = convert_store(workdir / "data", workdir)
    where = f"bit {bit} of byte {offset} ({where_in_file(offset)})"
    if not len(store):
        return f"flip {where_in_file(offset)}: skipped: {short(plain_skip(summary, bag))}"
    entry = store.episodes[0]
    n = entry["length"]
    if n > ref.episode.length:
        raise NotSurvived(f"{where}: stored {n} frames, the episode has {ref.episode.length}")
    same_frames(store, 0, ref.episode, n)
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
    return f"flip {where_in_file(offset)}: {kind}, outcome {entry['outcome']}"


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
    write_synthetic_episode(bag, spec, typestore=typestore())
    (bag / c.BAG_METADATA_NAME).unlink()
    if sidecar == "none":
        (bag / c.SIDECAR_NAME).unlink()
    else:
        c.write_sidecar(bag, c.read_sidecar(bag).replace(outcome=sidecar))
    summary, store = convert_store(workdir / "data", workdir)
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
        with EpisodeBagWriter(folder, typestore=typestore()) as w:
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
        write_synthetic_episode(folder, spec, typestore=typestore())
        if case == "copied_sidecar":
            # Another episode's sidecar (id and outcome) copied beside this recording.
            meta = c.read_sidecar(folder).replace(episode_id="ep_other", outcome="success")
            c.write_sidecar(folder, meta)
        elif case == "renamed_without_sidecar":
            (folder / c.SIDECAR_NAME).unlink()
    summary, store = convert_store(data, workdir)
    if case in ("copied_sidecar", "no_start_event"):
        if len(store):
            raise NotSurvived(f"{case}: stored with another episode's sidecar")
        reason = plain_skip(summary, folder)
        if "ep_other" not in reason or "mismatch" not in reason:
            raise NotSurvived(f"{case}: the skip does not name the mismatch: {reason}")
        return f"{case}: skipped, {short(reason, 70)}"
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

    now = tick_ns(t)
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
        kill_trials,
        inject_kill,
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
