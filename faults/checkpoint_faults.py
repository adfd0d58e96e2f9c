"""Checkpoint faults: the trainer killed mid-round and mid-write, damaged files, a pickle in
place of the weights, new bags between a kill and the resume.

Each trial works in its own directory on the ``tiny`` preset (seconds). What must hold: a resumed
round ends with exactly the weights and optimiser state of an uninterrupted one and leaves no temp
dir; a damaged checkpoint is refused naming the file (the policy node never deploys it); nothing
in a checkpoint is ever unpickled; a resume on changed data is refused naming ``--restart-round``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faults.core import Fault, NotSurvived

REPO = Path(__file__).resolve().parents[1]
TINY_YAML = REPO / "config" / "train_tiny.yaml"
TASK = "put the pencil in the pouch"
STEPS, EVERY = 8, 2  # saves: partials after steps 2, 4, 6; the final after 8
SAVES = STEPS // EVERY
# Where a write can be cut short: after each file, once all are written, after the old copy
# was moved aside, once the new one is in place; and the partial's removal at the round's end.
WRITE_POINTS = (
    "wrote model.safetensors",
    "wrote optim.safetensors",
    "wrote rng.safetensors",
    "wrote trainer.json",
    "wrote config.yaml",
    "wrote manifest.json",
    "files_written",
    "old_moved_aside",
    "new_in_place",
)
KILLED = -signal.SIGKILL

# The child: one tiny round that SIGKILLs itself at the chosen point (no cleanup runs, as in a
# real kill), or runs until the parent kills it from outside.
_CHILD = r"""
import os, signal, sys
import torch
torch.set_num_threads(1)
from habc_trainer import checkpoint, train_round
from faults.checkpoint_faults import tiny_round
kind, where, nth, root = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
hits = [0]
def hit():
    hits[0] += 1
    if hits[0] == nth:
        os.kill(os.getpid(), signal.SIGKILL)
if kind == "write":
    def crash_point(point):
        if point == where:
            hit()
    checkpoint._crash_point = crash_point
elif kind == "step":
    real = train_round.update
    def update(*args, **kwargs):
        out = real(*args, **kwargs)
        hit()
        return out
    train_round.update = update
cfg, streams = tiny_round()
train_round.run_round(cfg, streams, root, 0, progress=False)
"""


def tiny_round() -> tuple[Any, Any]:
    """The round every kill trial trains: habc on synthetic windows, critic pre-training on."""
    from habc_trainer.config import TrainConfig
    from habc_trainer.models.example import SyntheticStreams

    cfg = TrainConfig(
        method="habc",
        model_preset="tiny",
        batch_size=16,
        steps_per_round=STEPS,
        warmup_steps=1,
        lr_warmup_steps=2,
        checkpoint_every=EVERY,
        log_every=100,
        critic_pretrain_steps=2,
        recap_heldout_batch=32,
        num_threads=1,
    )
    mc = cfg.model_config().with_dims(proprio_dim=6, action_dim=4, env_state_dim=3)
    return cfg, SyntheticStreams(mc, per_stream=24)


def _child(kind: str, where: str, nth: int, root: Path, kill_after_s: float | None = None) -> int:
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, kind, where, str(nth), str(root)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if kill_after_s is not None:
        try:
            proc.wait(timeout=kill_after_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    if proc.returncode not in (0, KILLED):
        raise NotSurvived(f"the child trainer failed (rc {proc.returncode}): {err[-400:]}")
    return proc.returncode


def _progress(root: Path) -> int:
    """Steps a resume would start from: the newest valid final or partial checkpoint."""
    import warnings

    from habc_trainer import train_round as tr
    from habc_trainer.checkpoint import CheckpointError, CheckpointWarning, load_checkpoint

    final = tr.round_dir(root, "habc", 0)
    for path in (final, tr.partial_dir(final)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CheckpointWarning)
                return int(load_checkpoint(path).trainer["step_in_round"])
        except CheckpointError:
            continue
    return 0


def _compare(want: Any, got: Any) -> str:
    """How many model and optimiser tensors of ``got`` equal ``want``'s; NotSurvived unless
    all."""
    import torch

    counts = []
    for label, x, y in (("model", want.model, got.model), ("optimiser", want.optim, got.optim)):
        if x.keys() != y.keys():
            raise NotSurvived(f"{label} tensor names differ: {sorted(set(x) ^ set(y))[:3]}")
        same = sum(torch.equal(x[k], y[k]) for k in x)
        if same != len(x):
            raise NotSurvived(
                f"{len(x) - same} of {len(x)} {label} tensors differ from the reference run"
            )
        counts.append(f"{label} {same}/{len(x)}")
    return " + ".join(counts) + " tensors identical"


def _left_over(method_dir: Path, keep: Sequence[str] = ("round_000",)) -> list[str]:
    return sorted(p.name for p in method_dir.iterdir() if p.name not in keep)


def _kill_trials(fast: bool) -> list[tuple[str, str, float]]:
    if fast:
        return [
            ("step", "update", 3),
            ("write", "wrote model.safetensors", 2),
            ("write", "old_moved_aside", 1),
        ]
    trials: list[tuple[str, str, float]] = [("step", "update", k) for k in range(1, STEPS + 1)]
    for point in WRITE_POINTS:
        # "old_moved_aside": only partials replacing a partial (not the first, not the final)
        hits = SAVES - 2 if point == "old_moved_aside" else SAVES
        trials += [("write", point, n) for n in range(1, hits + 1)]
    trials += [("write", "discarded", 1)]
    trials += [("external", "timer", s) for s in (2.5, 3.0, 3.5, 4.0, 4.5, 5.0)]
    return trials


def _kill_and_resume(param: object, workdir: Path) -> str:
    from habc_trainer import train_round as tr
    from habc_trainer.checkpoint import load_checkpoint

    kind, where, n = param  # type: ignore[misc]
    root = workdir / "killed"
    if kind == "external":
        rc = _child("none", "-", 0, root, kill_after_s=float(n))
    else:
        rc = _child(kind, where, int(n), root)
        if rc != KILLED:
            raise NotSurvived(f"the kill point {where} #{n} was never reached")
    # The last save completed before the kill; a valid copy of it must survive any kill.
    if kind == "step":
        floor = EVERY * ((int(n) - 1) // EVERY)
    elif kind == "write" and where == "discarded":
        floor = STEPS
    elif kind == "write":
        floor = EVERY * (int(n) - 1 + (where == "old_moved_aside"))
    else:
        floor = 0
    found = _progress(root)
    if found < floor:
        raise NotSurvived(
            f"after the kill the newest valid checkpoint has step {found}, "
            f"the last completed save had {floor}"
        )
    cfg, streams = tiny_round()
    said = io.StringIO()
    with contextlib.redirect_stderr(said):
        resumed = load_checkpoint(tr.run_round(cfg, streams, root, 0, progress=False))
    ref = load_checkpoint(tr.run_round(cfg, streams, workdir / "ref", 0, progress=False))
    identical = _compare(ref, resumed)
    left = _left_over(root / "habc")
    if left:
        raise NotSurvived(f"left behind in {root / 'habc'}: {left}")
    how = "finished before the kill" if rc == 0 else f"resumed from step {found}"
    if "recovered" in said.getvalue():
        how += " (an interrupted write's copy put in place)"
    return f"{how}; {identical}, no temp dir left"


# --- damaged files ---


def _tiny_checkpoint(workdir: Path) -> Path:
    """A checkpoint after one update (so optim.safetensors holds AdamW moments)."""
    import numpy as np
    import torch

    from habc_trainer import train_round as tr
    from habc_trainer.checkpoint import TrainerState, save_checkpoint
    from habc_trainer.update import StepContext, build_learner, update

    cfg, streams = tiny_round()
    torch.manual_seed(0)
    learner = build_learner(cfg, streams.cfg, streams.norm_stats())
    counts = tr.batch_counts((0.25, 0.25, 0.5), [24, 24, 24], cfg.batch_size)
    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
    update(learner, tr.draw_batch(streams, counts, rng), cfg, StepContext(0, 0), gen)
    state = TrainerState(
        step_in_round=1,
        model_index=learner.model_index,
        np_rng_states=[rng.bit_generator.state],
        torch_rng_states=[gen.get_state()],
    )
    return save_checkpoint(workdir / "ck", learner, cfg, state, {"data": {"episodes": 1}})


def _expect_refused(path: Path, name: str) -> str:
    from habc_trainer.checkpoint import CheckpointError, load_checkpoint, load_policy

    for load in (load_checkpoint, load_policy):
        try:
            load(path)
        except CheckpointError as exc:
            if f"{path / name}" not in str(exc):
                raise NotSurvived(
                    f"{load.__name__} refused it but named another file: {exc}"
                ) from None
            message = str(exc)
            continue
        raise NotSurvived(f"{load.__name__} loaded a checkpoint with a damaged {name}")
    return message


def _flip_trials(fast: bool) -> list[tuple[str, float]]:
    if fast:
        return [
            ("model.safetensors", 0.0),
            ("model.safetensors", 0.5),
            ("model.safetensors", 1.0),
            ("checksums.json", 0.5),
            ("trainer.json", 0.3),
            ("model.safetensors", -200),
        ]
    from habc_trainer.checkpoint_files import ALL_FILES  # torch: only when the sweep runs

    fractions = (0.0, 0.05, 0.2, 0.4, 0.6, 0.8, 1.0)
    out = [(name, f) for name in ALL_FILES for f in fractions]
    return out + [("model.safetensors", -200), ("optim.safetensors", -200)]


def _flip(param: object, workdir: Path) -> str:
    import numpy as np

    name, where = param  # type: ignore[misc]
    path = _tiny_checkpoint(workdir)
    target = path / name
    blob = bytearray(target.read_bytes())
    if where < 0:  # that many random bytes of the file (the QA pass flipped 200)
        offsets = np.random.default_rng(len(blob)).choice(len(blob), int(-where), replace=False)
    else:
        offsets = [min(int(where * len(blob)), len(blob) - 1)]
    for offset in offsets:
        blob[int(offset)] ^= 0xFF
    target.write_bytes(bytes(blob))
    _expect_refused(path, name)
    return f"refused naming {name}"


# --- a pickle or a truncated file named model.safetensors ---


def _pickle(marker: Path) -> bytes:
    # Protocol-0 pickle of os.system("touch <marker>"): it runs the command if unpickled.
    return f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()


def _bad_model_trials(fast: bool) -> list[tuple[str, int]]:
    if fast:
        return [("malicious_pickle", 1), ("truncated_half", 2), ("malicious_pickle", 2)]
    kinds = (
        "malicious_pickle",
        "plain_pickle",
        "truncated_half",
        "truncated_last_byte",
        "header_only",
        "empty",
        "zeros",
    )
    return [(k, v) for k in kinds for v in (1, 2)]


def _bad_model(param: object, workdir: Path) -> str:
    kind, version = param  # type: ignore[misc]
    path = _tiny_checkpoint(workdir)
    if version == 1:  # a checkpoint from before checksums.json: only the parser guards it
        (path / "checksums.json").unlink()
        trainer = json.loads((path / "trainer.json").read_text())
        (path / "trainer.json").write_text(json.dumps({**trainer, "version": 1}))
    model = path / "model.safetensors"
    good = model.read_bytes()
    marker = workdir / "pwned"
    header = 8 + int.from_bytes(good[:8], "little")
    model.write_bytes(
        {
            "malicious_pickle": _pickle(marker),
            "plain_pickle": b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s.",
            "truncated_half": good[: len(good) // 2],
            "truncated_last_byte": good[:-1],
            "header_only": good[:header],
            "empty": b"",
            "zeros": bytes(len(good)),
        }[kind]
    )
    import warnings

    from habc_trainer.checkpoint import CheckpointWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CheckpointWarning)
        message = _expect_refused(path, "model.safetensors")
    if marker.exists():
        raise NotSurvived("the pickle ran: its command created the marker file")
    how = "checksum" if "damaged or replaced" in message else "safetensors parser"
    return f"version {version}: refused by the {how}, nothing executed"


# --- new bags between a kill and the resume ---


def _write_bag(root: Path, episode_id: str, round_index: int, ticks: int) -> None:
    from habc_core.contract import episode_dir
    from habc_trainer.synthetic import SyntheticSpec, write_synthetic_episode

    spec = SyntheticSpec(
        episode_id, "P" * ticks, source="demo", round=round_index, cameras=(), with_env_state=True
    )
    write_synthetic_episode(episode_dir(root, TASK, round_index, episode_id), spec)


def _cli(bags: Path, ckpt: Path, *extra: str) -> tuple[int, str]:
    from habc_trainer import train_round as tr
    from habc_trainer.round_cli import round_argv

    err = io.StringIO()
    overrides = {"steps_per_round": STEPS // 2, "checkpoint_every": EVERY, "t_max": 100}
    argv = round_argv(TINY_YAML, bags, ckpt, 0, "sft", overrides, extra)
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = tr.main(argv)
        except SystemExit as exc:
            rc = int(exc.code or 0)
    return rc, err.getvalue()


def _data_trials(fast: bool) -> list[tuple[str, int]]:
    if fast:
        return [("same_round", 1), ("later_round", 1)]
    return [
        ("same_round", 1),
        ("same_round", 3),
        ("relabeled", 1),
        ("later_round", 1),
        ("later_round", 2),
    ]


def _data_change(param: object, workdir: Path) -> str:
    from habc_trainer import train_round as tr
    from habc_trainer.checkpoint import load_checkpoint
    from habc_trainer.store import EpisodeStore

    change, count = param  # type: ignore[misc]
    bags = workdir / "bags"
    for i in range(2):
        _write_bag(bags, f"demo{i}", 0, 30 + 5 * i)
    rc, err = _cli(bags, workdir / "ref")  # the uninterrupted round on the data before
    if rc != 0:
        raise NotSurvived(f"the reference round failed: {err[-300:]}")
    cfg = tr.TrainConfig.from_yaml(
        TINY_YAML, method="sft", steps_per_round=STEPS // 2, checkpoint_every=EVERY, t_max=100
    )
    store = bags / "store"
    tr.run_round(
        cfg, tr.open_store(store, 0, cfg), workdir / "ck", 0, max_steps=EVERY, progress=False
    )  # killed after the first partial
    if change == "relabeled":  # a sidecar rewritten: the bag is converted again
        sidecar = next((bags / "put_the_pencil_in_the_pouch").rglob("episode.yaml"))
        later = time.time_ns() + 10**9
        os.utime(sidecar, ns=(later, later))
    else:
        for i in range(count):
            _write_bag(bags, f"late{i}", 0 if change == "same_round" else 1, 33)
    rc, err = _cli(bags, workdir / "ck")
    final = workdir / "ck" / "sft" / "round_000"
    if change == "later_round":  # not in round 0's replay buffer: the resume goes on
        if rc != 0:
            raise NotSurvived(f"resume refused though round 0's data did not change: {err}")
        want = load_checkpoint(workdir / "ref" / "sft" / "round_000")
        note = "resumed (round 0's episodes unchanged)"
    else:
        last = err.strip().splitlines()[-1] if err.strip() else ""
        if rc != 2 or "--restart-round" not in last or "episodes" not in last:
            raise NotSurvived(
                f"resume on changed data not refused as expected (rc {rc}): {last or err[-300:]}"
            )
        rc, err = _cli(bags, workdir / "ck", "--restart-round")
        if rc != 0:
            raise NotSurvived(f"--restart-round failed (rc {rc}): {err[-300:]}")
        rc, err = _cli(bags, workdir / "fresh", "--no-convert")
        want = load_checkpoint(workdir / "fresh" / "sft" / "round_000")
        note = "refused naming --restart-round; the restarted round equals a fresh one"
    got = load_checkpoint(final)
    identical = _compare(want, got)
    revision = EpisodeStore(store).revision
    recorded = got.manifest["data"]["store_revision"]
    if got.manifest["data"] != want.manifest["data"]:
        raise NotSurvived(
            f"the round's manifest records store revision {recorded} and "
            f"{got.manifest['data']['episodes']} episodes, the data trained on "
            f"had {want.manifest['data']['store_revision']} and "
            f"{want.manifest['data']['episodes']}"
        )
    left = _left_over(workdir / "ck" / "sft")
    if left:
        raise NotSurvived(f"left behind: {left}")
    return f"{note}; manifest records store revision {recorded} (store at {revision}); {identical}"


FAULTS: tuple[Fault, ...] = (
    Fault(
        name="trainer_killed_mid_round",
        area="trainer",
        injected="SIGKILL of a tiny 8-step round after a step, inside a checkpoint write (after "
        "each file, before / during the swap), during the partial's removal, or at a random "
        "time",
        survived_when="a valid checkpoint of the last completed save exists right after the "
        "kill; the rerun ends with model and optimiser tensors identical to an uninterrupted "
        "run; no temp dir left",
        trials=_kill_trials,
        inject=_kill_and_resume,
    ),
    Fault(
        name="checkpoint_byte_flip",
        area="trainer",
        injected="one byte flipped at offsets through every checkpoint file; 200 random bytes "
        "of model / optim.safetensors",
        survived_when="load_checkpoint and load_policy refuse it, naming the damaged file",
        trials=_flip_trials,
        inject=_flip,
    ),
    Fault(
        name="checkpoint_bad_model_file",
        area="trainer",
        injected="model.safetensors replaced by a pickle (one that runs a command), a "
        "truncated copy, its header only, zeros or nothing; in version-2 and version-1 "
        "(no checksums) checkpoints",
        survived_when="refused naming model.safetensors; nothing unpickled or executed",
        trials=_bad_model_trials,
        inject=_bad_model,
    ),
    Fault(
        name="store_changed_before_resume",
        area="trainer",
        injected="a round killed after its first partial; then new bags of the same round, a "
        "re-converted (relabeled) bag, or bags of a later round; then the same command again",
        survived_when="same-round changes: refused in one line naming --restart-round, which "
        "then trains a round equal to a fresh one; later-round bags: resumed, identical to "
        "the uninterrupted round; the manifest records the data trained on",
        trials=_data_trials,
        inject=_data_change,
    ),
)
