"""Fault (c) of the bag suite: the recorder core SIGKILLed at a tick, before the close, before
the sidecar (in a subprocess), judged against the same recorder closed cleanly after the
messages that were on disk when it died.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from faults.bag_reference import (
    CFG,
    EPISODE_ID,
    PATTERN,
    REPO,
    cache_dir,
    convert_store,
    judge_stored,
    short,
    tick_ns,
    typestore,
)
from faults.core import NotSurvived
from habc_core import contract as c
from habc_core.bag_writer import EpisodeBagWriter
from habc_trainer.episode import Episode, EpisodeError, extract_episode
from habc_trainer.synthetic import SyntheticSpec


class _Capture(EpisodeBagWriter):
    """The contract's message builders, capturing the CDR bytes instead of writing a bag."""

    def __init__(self) -> None:
        super().__init__(
            Path(tempfile.gettempdir()) / f"habc-never-opened-{os.getpid()}",
            typestore=typestore(),
        )
        self.captured: list[tuple[str, str, bytes, int]] = []

    def write_raw(
        self, topic: str, msgtype: str, data: Any, timestamp_ns: int, **_kw: Any
    ) -> None:
        self.captured.append((topic, msgtype, bytes(data), int(timestamp_ns)))


@functools.cache
def _recorder_steps() -> tuple[tuple[str, str, bytes, int], ...]:
    """The raw messages a recorder gets during the episode, in order (after START)."""
    cap = _Capture()
    spec = SyntheticSpec(EPISODE_ID, PATTERN)
    from habc_trainer.synthetic import expected_action

    for t, letter in enumerate(spec.pattern):
        now = tick_ns(t)
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
    start = EpisodeEventData(c.EVENT_START, tick_ns(0), EPISODE_ID, "fold the towel", "rollout")
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
            human = PATTERN[(stamp - tick_ns(0)) // 100_000_000] != "P"
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
        c.EVENT_END, tick_ns(len(PATTERN)), EPISODE_ID, "fold the towel", "rollout", "failure"
    )
    rec.on_event(end)
    return bag_dir


def _recorder_child() -> None:
    """Entry point of the subprocess the recorder trial kills."""
    _drive(Path(sys.argv[1]), None, sys.argv[2])
    print("done", flush=True)


def kill_trials(fast: bool) -> list[str]:
    if fast:
        return ["tick_37", "before_sidecar"]
    ticks = [1, 2, 9, 10, 11, 25, 37, 60, 99, 119, 120]
    return [f"tick_{t}" for t in ticks] + ["before_close", "before_sidecar"]


def inject_kill(param: object, workdir: Path) -> str:
    point = str(param)
    data_root = workdir / "data"
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    code = "from faults.recorder_kill import _recorder_child; _recorder_child()"
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
    ref_root = cache_dir() / "recorder" / f"kept_{closed}"
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
    summary, store = convert_store(data_root, workdir)
    has_sidecar = (bag / c.SIDECAR_NAME).exists()
    where = f"killed at {point} ({closed} messages on disk)"
    if has_sidecar:
        raise NotSurvived(f"{where}: a sidecar was written for a killed recording")
    expected = "failure" if closed >= steps else "unknown"
    entry = judge_stored(summary, store, bag, want, where, kept_as="on disk", outcome=expected)
    if isinstance(entry, str):
        return f"killed at {point}: nothing complete, skipped: {short(entry)}"
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
