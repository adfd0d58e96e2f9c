"""Every console script's user errors: one line `<prog>: error: ...`, exit status 2, no traceback.

One table, (script, argv) -> a substring of the message. Most rows call the script's `main`
in-process (no DDS, no episode: each is refused before any work starts); a few run the real
console script in a subprocess to pin the exit status and the absence of a traceback end to end.
Placeholders in argv: TINY (a tiny-preset checkpoint, horizon 10), CK50 (a tiny checkpoint with
horizon 50: a state-mode model), PIX50 (the same with a
camera), NOTCK (a directory that is no checkpoint), TMP (a scratch
directory), GOOD / BAD (results.json files), FILE (a file that exists).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PROGS = {
    "collect": ("habc_control.collect", "habc-collect"),
    "evaluate": ("habc_benchmark.evaluate", "habc-evaluate"),
    "habc-rollout": ("habc_control.runner", "habc-rollout"),
    "habc-benchmark": ("habc_benchmark.cli", "habc-benchmark"),
    "habc-benchmark-compare": ("habc_benchmark.compare", "habc-benchmark-compare"),
    "smoothness": ("habc_trainer.smoothness", "python -m habc_trainer.smoothness"),
    "train_round": ("habc_trainer.train_round", "train_round"),
    "convert": ("habc_trainer.convert", "habc-convert"),
    "habc-policy-server": ("habc_trainer.serve", "habc-policy-server"),
}

TR = ["--data-root", "TMP/data", "--ckpt-root", "TMP/ckpt"]  # train_round's required flags

CASES: list[tuple[str, list[str], str]] = [
    # --- collect ---
    ("collect", ["--demos", "-3"], "argument --demos: must be >= 0, got -3"),
    ("collect", ["--demos", "x"], "argument --demos: expected an integer, got 'x'"),
    ("collect", ["--demos", "1", "--seed", "1.5"], "--seed: expected an integer, got '1.5'"),
    ("collect", ["--demos", "1", "--rollouts", "1"], "not allowed with argument"),
    ("collect", ["--demos", "2", "--policy", "expert"], "--policy: not with --demos"),
    ("collect", ["--demos", "1", "--model-index", "3"], "--model-index: not with --demos"),
    ("collect", ["--eval", "1", "--schedule", "left:1:2"], "--schedule: only with --rollouts"),
    ("collect", ["--rollouts", "1", "--schedule", "middle:1:2"], "unknown arm 'middle'"),
    ("collect", ["--rollouts", "1", "--schedule", "left:x"], "'left:x' is not 'arm:start_s"),
    (
        "collect",
        ["--eval", "1", "--policy", "NOTCK", "--model-index", "2"],
        "--model-index: not with --policy",
    ),
    ("collect", ["--demos", "1", "--dry-run", "--out", "TMP"], "--out: not with --dry-run"),
    (
        "collect",
        ["--demos", "1", "--compressed", "--obs", "state"],
        "--compressed: only with pixel observations",
    ),
    ("collect", ["--demos", "1", "--config", "TMP/nope.yaml"], "--config: no such file"),
    ("collect", ["--demos", "1", "--graph-config", "TMP/nope.yaml"], "no such file"),
    (
        "collect",
        ["--demos", "1", "--graph-config", "TMP/horizon57.yaml"],
        "policy.horizon: expected an integer, got 5.7",
    ),
    ("collect", ["--eval", "1", "--policy", "nonsense"], "'nonsense' is not one of expert"),
    ("collect", ["--eval", "1", "--policy", "nosuchmod:f"], "no module 'nosuchmod'"),
    ("collect", ["--eval", "1", "--policy", "TMP/nope"], "is not one of expert"),
    ("collect", ["--eval", "1", "--policy", "NOTCK"], "not a habc_trainer checkpoint"),
    (
        "collect",
        ["--eval", "1", "--policy", "TINY"],
        "checkpoint horizon 10 < execute_steps 25 (policy.execute_steps of",
    ),
    (
        "collect",
        ["--eval", "1", "--obs", "state", "--policy", "PIX50"],
        "checkpoint needs camera images ['top']; this run provides none",
    ),
    # --- evaluate ---
    ("evaluate", ["expert", "--trials", "0"], "argument --trials: must be >= 1, got 0"),
    ("evaluate", ["expert", "--seed", "-1"], "argument --seed: must be >= 0, got -1"),
    ("evaluate", ["expert", "--threads", "0"], "argument --threads: must be >= 1, got 0"),
    ("evaluate", ["expert", "--trials", "2", "--seed", "100"], "held-out range"),
    ("evaluate", ["nonsense"], "policy: 'nonsense' is not one of"),
    ("evaluate", ["expert", "--json", "TMP/r", "--md", "TMP/r"], "--json, --md: both"),
    ("evaluate", ["expert", "--json", "TMP"], "--json: "),
    ("evaluate", ["expert", "--config", "TMP/nope.yaml"], "--config: no such file"),
    ("evaluate", ["NOTCK"], "not a habc_trainer checkpoint"),
    ("evaluate", ["TINY", "--trials", "1"], "checkpoint horizon 10 < execute_steps 25"),
    # --- habc-rollout (overrides, flags, the checkpoint; all before any node starts) ---
    ("habc-rollout", ["backend=foo"], "arm_driver.backend: 'foo' is not one of"),
    ("habc-rollout", ["input=joystick"], "teleop.input: 'joystick' is not one of"),
    ("habc-rollout", ["teleop.human_source=hands"], "teleop.human_source: 'hands'"),
    (
        "habc-rollout",
        ["teleop.debounce_s=abc"],
        "override 'teleop.debounce_s': expected a number like 0.03, got 'abc'",
    ),
    (
        "habc-rollout",
        ["policy.horizon=5.5"],
        "override 'policy.horizon': expected an integer like 50, got 5.5",
    ),
    ("habc-rollout", ["arm_driver.publish_expert=1"], "expected true or false, got 1"),
    ("habc-rollout", ["cameras.enabled=maybe"], "expected true or false, got 'maybe'"),
    ("habc-rollout", ["cameras.serials=[123, 456, 789]"], "quote them"),
    ("habc-rollout", ["teleop.sim_schedule=[left"], "is not valid YAML"),
    ("habc-rollout", ["teleop.sim_schedule=5"], "expected a list of strings"),
    ("habc-rollout", ["teleop.x={a: 1}"], "expected a value or a list"),
    ("habc-rollout", ["oops"], "override: expected key=value, got 'oops'"),
    ("habc-rollout", ["speed=1"], "override 'speed': use one of"),
    ("habc-rollout", ["nosuch.x=1"], "override 'nosuch.x': no node 'nosuch'"),
    ("habc-rollout", ["backend=sim", "backend=arx5"], "override 'backend': given twice"),
    ("habc-rollout", ["--config", "nope"], "config 'nope': unknown profile"),
    ("habc-rollout", ["--episodes", "0"], "argument --episodes: must be >= 1, got 0"),
    ("habc-rollout", ["--round", "-1"], "argument --round: must be >= 0"),
    ("habc-rollout", ["--seed", "3"], "--seed: only with --episode"),
    ("habc-rollout", ["--duration", "5"], "--duration: only with --episode"),
    ("habc-rollout", ["--episode", " "], "--episode: empty task prompt"),
    ("habc-rollout", ["--episode", "t", "--outcome", "great"], "--outcome: 'great' is not"),
    ("habc-rollout", ["--episode", "t", "--outcome", "sim"], "--outcome sim: needs --seed"),
    ("habc-rollout", ["--episode", "t", "--source", "dream"], "--source: 'dream' is not"),
    ("habc-rollout", ["--episode", "t", "--duration", "inf"], "must be a finite number > 0"),
    ("habc-rollout", ["--episode", "t", "--duration", "0"], "must be a finite number > 0"),
    (
        "habc-rollout",
        ["--episode", "t", "--seed", "3", "backend=kinematic"],
        "--seed: needs arm_driver.backend sim",
    ),
    (
        "habc-rollout",
        ["checkpoint=TINY"],
        "policy.checkpoint TINY: checkpoint horizon 10 < execute_steps 25",
    ),
    ("habc-rollout", ["checkpoint=TMP/nope"], "no such checkpoint directory"),
    ("habc-rollout", ["checkpoint=NOTCK"], "not a habc_trainer checkpoint"),
    ("habc-rollout", ["checkpoint=CK50", "backend=kinematic"], "a state-mode model"),
    # --- habc-benchmark ---
    ("habc-benchmark", ["--workers", "0"], "argument --workers: must be >= 1, got 0"),
    ("habc-benchmark", ["--seeds", "0,x"], "--seeds: expected comma-separated protocol seeds"),
    ("habc-benchmark", ["--seeds", "0,0"], "seeds: duplicates in [0, 0]"),
    ("habc-benchmark", ["--preset", "nope"], "preset: unknown preset 'nope'"),
    ("habc-benchmark", ["--report-only", "--no-report"], "--no-report: not with --report-only"),
    ("habc-benchmark", ["--report-only", "--workers", "2"], "--workers: not with --report-only"),
    ("habc-benchmark", ["--report-only", "--diagnose"], "--diagnose: not with --report-only"),
    ("habc-benchmark", ["--no-report", "--docs", "TMP"], "--docs: not with --no-report"),
    ("habc-benchmark", ["--tracks", "state,bogus"], "--tracks: ['bogus'] not in"),
    ("habc-benchmark", ["--tracks", "state,state"], "--tracks: a track twice"),
    ("habc-benchmark", ["--out", "FILE", "--no-report"], "is a file; give a directory"),
    # --- habc-benchmark-compare ---
    ("habc-benchmark-compare", ["GOOD", "GOOD", "--out", "GOOD"], "is the before results.json"),
    ("habc-benchmark-compare", ["GOOD", "BAD"], "no per_seed successes / n counts"),
    ("habc-benchmark-compare", ["GOOD", "TMP/nope.json"], "not a readable results.json"),
    ("habc-benchmark-compare", ["GOOD", "GOOD", "--tracks", "pixel"], "--tracks: 'pixel'"),
    ("habc-benchmark-compare", ["GOOD", "GOOD", "--out", "TMP"], "is a directory"),
    ("habc-benchmark-compare", ["GOOD"], "the following arguments are required: after"),
    # --- python -m habc_trainer.smoothness ---
    ("smoothness", ["TMP/nope"], "TMP/nope: no such store directory"),
    ("smoothness", ["TMP"], "missing store.json"),
    ("smoothness", ["TMP", "TMP"], "one given twice"),
    # --- train_round / convert (their owners apply the convention; rows that pass today) ---
    ("train_round", [*TR, "--round", "-1"], "argument --round: must be >= 0, got -1"),
    ("train_round", [*TR, "--round", "x"], "argument --round: expected an integer, got 'x'"),
    (
        "train_round",
        [*TR, "--round", "0", "--config", "TMP/steps57.yaml"],
        "steps_per_round: expected an integer, got 5.7",
    ),
    (
        "train_round",
        [*TR, "--round", "0", "--config", "TMP/steps_true.yaml"],
        "steps_per_round: expected an integer, got True",
    ),
    ("train_round", [*TR, "--round", "0", "--set", "oops"], "--set: expected key=value"),
    (
        "train_round",
        [*TR, "--round", "0", "--set", "batch_size=5.7"],
        "batch_size: expected an integer, got 5.7",
    ),
    ("train_round", [*TR, "--round", "0", "--method", "nope"], "unknown method 'nope'"),
    ("convert", ["--data-root", "TMP/nope", "--store", "TMP/s"], "does not exist"),
    # --- habc-policy-server ---
    ("habc-policy-server", [], "the following arguments are required: --checkpoint"),
    ("habc-policy-server", ["--checkpoint", "TMP/none"], "neither a checkpoint directory"),
    ("habc-policy-server", ["--checkpoint", "NOTCK"], "NOTCK"),
    ("habc-policy-server", ["--checkpoint", "TINY", "--port", "70000"], "expected 0..65535"),
    ("habc-policy-server", ["--checkpoint", "TINY", "--device", "tpu"], "invalid choice: 'tpu'"),
    ("habc-policy-server", ["--checkpoint", "no_such_mod:fn"], "names no callable"),
    (
        "convert",
        ["--data-root", "TMP", "--store", "TMP/s", "--image-size", "0"],
        "argument --image-size: must be >= 1, got 0",
    ),
]

# The real console scripts: exit status and stderr end to end (~1-3 s each).
SUBPROCESS_CASES: list[tuple[list[str], str]] = [
    (
        ["habc-collect", "--demos", "-3"],
        "habc-collect: error: argument --demos: must be >= 0, got -3",
    ),
    (["habc-collect", "--eval", "1", "--policy", "TINY"], "checkpoint horizon 10 < execute_steps"),
    (["habc-rollout", "backend=foo"], "habc-rollout: error: arm_driver.backend: 'foo'"),
    (["habc-rollout", "teleop.debounce_s=abc"], "override 'teleop.debounce_s'"),
    (
        ["train_round", *TR, "--round", "0", "--config", "TMP/steps57.yaml"],
        "train_round: error: steps_per_round: expected an integer, got 5.7",
    ),
    ([sys.executable, "-m", "habc_trainer.smoothness", "TMP/nope"], "no such store directory"),
]


def _tiny_checkpoint(path: Path, **model_overrides) -> Path:
    from habc_trainer.checkpoint import TrainerState, save_checkpoint
    from habc_trainer.config import TrainConfig
    from habc_trainer.models.example import SyntheticStreams
    from habc_trainer.update import build_learner

    cfg = TrainConfig(method="sft", model_preset="tiny", model_overrides=model_overrides)
    mc = cfg.model_config().with_dims(proprio_dim=20, action_dim=20, env_state_dim=13)
    learner = build_learner(cfg, mc, SyntheticStreams(mc, per_stream=4).norm_stats())
    return save_checkpoint(path, learner, cfg, TrainerState())


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("cli_errors")
    (tmp / "notck").mkdir()
    (tmp / "file.txt").write_text("x")
    (tmp / "steps57.yaml").write_text("method: sft\nsteps_per_round: 5.7\n")
    (tmp / "steps_true.yaml").write_text("method: sft\nsteps_per_round: true\n")
    (tmp / "horizon57.yaml").write_text(
        "rollout_graph: {ros__parameters: {base: sim}}\n"
        "policy: {ros__parameters: {horizon: 5.7}}\n"
    )
    cell = {"per_seed": {"0": {"successes": 1, "n": 2}}}
    (tmp / "good.json").write_text(json.dumps({"tracks": {"state": {"cells": {"sft": cell}}}}))
    (tmp / "bad.json").write_text(
        json.dumps({"tracks": {"state": {"cells": {"sft": {"per_seed": {"0": {}}}}}}})
    )
    return {
        "PIX50": str(
            _tiny_checkpoint(
                tmp / "pix50", cameras=["top"], horizon=50, execute_steps=25, action_patch=10
            )
        ),
        "TINY": str(_tiny_checkpoint(tmp / "tiny")),
        "CK50": str(_tiny_checkpoint(tmp / "ck50", horizon=50, execute_steps=25, action_patch=10)),
        "NOTCK": str(tmp / "notck"),
        "GOOD": str(tmp / "good.json"),
        "BAD": str(tmp / "bad.json"),
        "FILE": str(tmp / "file.txt"),
        "TMP": str(tmp),
    }


def _fill(items: list[str], places: dict[str, str]) -> list[str]:
    out = []
    for item in items:
        for key in sorted(places, key=len, reverse=True):
            item = item.replace(key, places[key])
        out.append(item)
    return out


@pytest.mark.parametrize(
    ("script", "argv", "message"),
    CASES,
    ids=[f"{s}:{' '.join(a)}" for s, a, _ in CASES],
)
def test_user_error_is_one_line_and_exit_2(script, argv, message, places, capsys, monkeypatch):
    import importlib

    module_name, prog = PROGS[script]
    main = importlib.import_module(module_name).main
    argv = _fill(argv, places)
    if script == "habc-rollout":
        argv = [prog, *argv]  # its main takes sys.argv-style args (ROS args removed from it)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: "), err
    assert _fill([message], places)[0] in lines[0]


@pytest.mark.parametrize(
    ("argv", "message"), SUBPROCESS_CASES, ids=[" ".join(a[:3]) for a, _ in SUBPROCESS_CASES]
)
def test_console_script_prints_one_line_and_exits_2(argv, message, places):
    env = {**os.environ, "ROS_DOMAIN_ID": str(100 + (os.getpid() + 71) % 100)}
    res = subprocess.run(_fill(argv, places), capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert _fill([message], places)[0] in lines[0]


@pytest.mark.ros
def test_a_parameter_no_node_declares_is_refused_once_the_graph_is_built(places):
    """rclpy ignores an override no node declares: `teleop.debounce=0.1` (for debounce_s)
    would silently run the default. Only the built nodes know their parameters; the graph
    stops them and says which parameter is unknown (a node's shutdown log may come before)."""
    env = {**os.environ, "ROS_DOMAIN_ID": str(100 + (os.getpid() + 73) % 100)}
    res = subprocess.run(
        ["habc-rollout", "backend=kinematic", "teleop.debounce=0.1"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("habc-rollout: error: teleop: no parameter debounce; "), last
    assert "debounce_s" in last


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"workers": True}, "workers: expected an integer, got True"),
        ({"seeds": [0, 1.5]}, "seeds[1]: expected an integer, got 1.5"),
        ({"steps_per_round": 5.7}, "steps_per_round: expected an integer, got 5.7"),
        ({"demos": True}, "demos: expected an integer, got True"),
        ({"diagnose": 1}, "diagnose: expected true or false, got 1"),
        ({"methods": "habc"}, "methods: expected a list, got 'habc'"),
        ({"train_overrides": {"batch_size": 5.7}}, "train_overrides.batch_size: expected an"),
        ({"train_overrides": {"lr_actor": True}}, "train_overrides.lr_actor: expected a number"),
        ({"train_overrides": {"batchsize": 8}}, "unknown training-config keys ['batchsize']"),
        (
            {"ablations": {"a": {"method": "habc", "train_overrides": {"gamma": False}}}},
            "ablations.a.train_overrides.gamma: expected a number, got False",
        ),
        ({"pixel": {"sft_steps": 2.5}}, "sft_steps: expected an integer, got 2.5"),
    ],
)
def test_experiment_config_refuses_wrong_types_by_key(entry, message):
    from habc_benchmark.config import from_dict

    with pytest.raises(ValueError, match=re.escape(message)):
        from_dict(entry)
