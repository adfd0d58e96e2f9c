"""Rounds: resumable training (2 steps + resume to 4 == straight 4), round chaining, CLI."""

import shutil

import pytest
import torch

from habc_trainer import train_round as tr
from habc_trainer.checkpoint import load_checkpoint
from habc_trainer.config import TrainConfig
from habc_trainer.models.example import SyntheticStreams
from habc_trainer.round_cli import round_argv

torch.set_num_threads(1)


def _cfg(method="habc", **kw):
    base = dict(
        method=method,
        model_preset="tiny",
        batch_size=16,
        steps_per_round=4,
        warmup_steps=1,
        lr_warmup_steps=2,
        checkpoint_every=2,
        recap_epsilon_every=2,
        recap_heldout_batch=32,
        log_every=1,
    )
    base.update(kw)
    return TrainConfig(**base)


def _streams(cfg, **kw):
    mc = cfg.model_config().with_dims(proprio_dim=6, action_dim=4, env_state_dim=3)
    return SyntheticStreams(mc, per_stream=24, **kw)


def _model(path):
    return load_checkpoint(path).model


@pytest.mark.parametrize("method", ["habc", "imit_recap"])
def test_two_steps_then_resume_to_four_matches_a_straight_four_step_run(tmp_path, method):
    cfg = _cfg(method)
    straight = tr.run_round(cfg, _streams(cfg), tmp_path / "a", 0, progress=False)
    assert (
        tr.run_round(cfg, _streams(cfg), tmp_path / "b", 0, max_steps=2, progress=False) is None
    )  # "killed" after 2 steps
    part = tr.partial_dir(tr.round_dir(tmp_path / "b", method, 0))
    assert load_checkpoint(part).trainer["step_in_round"] == 2
    resumed = tr.run_round(cfg, _streams(cfg), tmp_path / "b", 0, progress=False)
    assert not part.exists()
    a, b = _model(straight), _model(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert load_checkpoint(resumed).model_index == 4
    again = tr.run_round(cfg, _streams(cfg), tmp_path / "b", 0, progress=False)
    assert again == resumed and load_checkpoint(again).model_index == 4  # not trained twice


def test_resume_with_a_changed_config_is_refused(tmp_path):
    cfg = _cfg("habc")
    tr.run_round(cfg, _streams(cfg), tmp_path, 0, max_steps=2, progress=False)
    changed = _cfg("habc", lr_actor=1e-3, log_every=3)
    with pytest.raises(ValueError, match="lr_actor: 0.0003 -> 0.001"):
        tr.run_round(changed, _streams(cfg), tmp_path, 0, progress=False)
    ok = _cfg("habc", log_every=3)  # logging cadence may change
    assert tr.run_round(ok, _streams(cfg), tmp_path, 0, progress=False) is not None


def test_round_n_starts_from_round_n_minus_1_and_counts_model_index_on(tmp_path):
    sft = _cfg("sft", steps_per_round=2)
    r0 = tr.run_round(sft, _streams(sft), tmp_path, 0, progress=False)
    assert tr.default_init(tmp_path, "habc", 1) == r0
    cfg = _cfg("habc_ir", steps_per_round=3)
    r1 = tr.run_round(
        cfg, _streams(cfg), tmp_path, 1, init_from=r0, progress=False, log_dir=tmp_path / "tb"
    )
    ck = load_checkpoint(r1)
    assert ck.model_index == 5
    assert ck.manifest["round"] == 1 and ck.manifest["method"] == "habc_ir"
    assert sum(ck.manifest["batch_counts"]) == 16
    assert list((tmp_path / "tb" / "habc_ir" / "round_001").iterdir())  # TensorBoard events
    assert tr.default_init(tmp_path, "habc_ir", 2) == r1
    with pytest.raises(FileNotFoundError, match="round_002"):
        tr.default_init(tmp_path, "habc_ir", 3)


def test_batch_counts_follow_the_mix_and_skip_empty_streams():
    assert tr.batch_counts((0.25, 0.25, 0.5), (10, 10, 10), 256) == [64, 64, 128]
    assert tr.batch_counts((0.25, 0.25, 0.5), (10, 0, 10), 256) == [85, 0, 171]
    assert sum(tr.batch_counts((1 / 3, 1 / 3, 1 / 3), (1, 1, 1), 10)) == 10
    with pytest.raises(ValueError, match="no data"):
        tr.batch_counts((0.0, 1.0, 0.0), (5, 0, 5), 8)


def test_dagger_never_draws_rollouts(tmp_path):
    cfg = _cfg("imit_dagger", steps_per_round=1)
    path = tr.run_round(cfg, _streams(cfg), tmp_path, 0, progress=False)
    assert load_checkpoint(path).manifest["batch_counts"] == [8, 8, 0]


def _one_line_error(capsys, argv):
    """train_round's stderr for ``argv``, which must be a user error: exit 2, one line."""
    with pytest.raises(SystemExit) as exit_info:
        tr.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("train_round: error: "), err
    return err


def test_cli_names_a_bad_config_key(tmp_path, capsys):
    cfg_file = tmp_path / "t.yaml"
    cfg_file.write_text("method: habc\nstep_per_round: 3\n")
    err = _one_line_error(capsys, round_argv(cfg_file, tmp_path, tmp_path / "ck", 0))
    assert "unknown config key 'step_per_round'" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--round", "-1"], "argument --round: must be >= 0, got -1"),
        (["--round", "one"], "argument --round: expected an integer, got 'one'"),
        (["--round", "0", "--set", "oops"], "--set: expected key=value, got 'oops'"),
        (["--round", "0", "--set", "batch_size=0"], "batch_size"),
        (["--round", "0", "--set", "method=nope"], "method: unknown method 'nope'"),
        (["--round", "0", "--config", "missing.yaml"], "missing.yaml"),
        ([], "the following arguments are required: --round"),
    ],
)
def test_cli_user_errors_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    err = _one_line_error(
        capsys, ["--data-root", str(tmp_path), "--ckpt-root", str(tmp_path / "ck"), *args]
    )
    assert message in err


def test_a_yaml_syntax_error_is_one_line(tmp_path, capsys):
    cfg_file = tmp_path / "t.yaml"
    cfg_file.write_text("method: [habc\n")
    err = _one_line_error(capsys, round_argv(cfg_file, tmp_path, tmp_path / "ck", 0))
    assert "Traceback" not in err


def test_resume_on_other_data_is_refused_and_restart_round_trains_it_over(tmp_path):
    cfg = _cfg("habc")
    tr.run_round(cfg, _streams(cfg), tmp_path, 0, max_steps=2, progress=False)
    grown = SyntheticStreams(_streams(cfg).cfg, per_stream=36)  # more windows arrived
    with pytest.raises(
        tr.ResumeRefused,
        match=r"\(step 2\) was trained on other data .*"
        r"sizes .* -> .*pass --restart-round",
    ):
        tr.run_round(cfg, grown, tmp_path, 0, progress=False)
    final = tr.run_round(cfg, grown, tmp_path, 0, progress=False, restart_round=True)
    straight = tr.run_round(cfg, grown, tmp_path / "s", 0, progress=False)
    a, b = load_checkpoint(final), load_checkpoint(straight)
    assert a.manifest["data"] == grown.manifest() == b.manifest["data"]
    for k in b.model:
        assert torch.equal(a.model[k], b.model[k]), k
    assert [p.name for p in (tmp_path / "habc").iterdir()] == ["round_000"]


def test_a_resumed_round_records_the_data_it_started_on(tmp_path):
    cfg = _cfg("sft")
    tr.run_round(cfg, _streams(cfg), tmp_path, 0, max_steps=2, progress=False)
    part = tr.partial_dir(tr.round_dir(tmp_path, "sft", 0))
    assert load_checkpoint(part).manifest["data"] == _streams(cfg).manifest()
    final = tr.run_round(cfg, _streams(cfg), tmp_path, 0, progress=False)
    assert load_checkpoint(final).manifest["data"] == _streams(cfg).manifest()


def test_a_damaged_partial_is_refused_naming_the_file_and_the_flag(tmp_path):
    cfg = _cfg("sft")
    tr.run_round(cfg, _streams(cfg), tmp_path, 0, max_steps=2, progress=False)
    part = tr.partial_dir(tr.round_dir(tmp_path, "sft", 0))
    (part / "optim.safetensors").write_bytes(b"\0" * 64)
    with pytest.raises(tr.ResumeRefused, match="optim.safetensors: damaged.*--restart-round"):
        tr.run_round(cfg, _streams(cfg), tmp_path, 0, progress=False)
    assert (
        tr.run_round(cfg, _streams(cfg), tmp_path, 0, progress=False, restart_round=True)
        is not None
    )


def test_a_kill_after_the_final_checkpoint_leaves_the_round_done(tmp_path):
    # Killed between writing round N and removing its partial: the rerun keeps round N as it
    # is (no second training) and removes the partial.
    cfg = _cfg("sft")
    tr.run_round(cfg, _streams(cfg), tmp_path / "killed", 0, max_steps=2, progress=False)
    final = tr.run_round(cfg, _streams(cfg), tmp_path, 0, progress=False)
    shutil.copytree(
        tr.partial_dir(tr.round_dir(tmp_path / "killed", "sft", 0)), tr.partial_dir(final)
    )
    before = (final / "checksums.json").read_bytes()
    assert tr.run_round(cfg, _streams(cfg), tmp_path, 0, progress=False) == final
    assert [p.name for p in final.parent.iterdir()] == ["round_000"]
    assert (final / "checksums.json").read_bytes() == before


def test_critic_pretraining_calibrates_before_the_actor_moves(tmp_path):
    cfg = _cfg("habc", critic_pretrain_steps=6)
    final = tr.run_round(cfg, _streams(cfg), tmp_path, 0, progress=False)
    ckpt = load_checkpoint(final)
    assert ckpt.model_index == 4  # pre-training takes no actor step
    cal = ckpt.manifest["critic_calibration"]
    assert set(cal) == {"start", "after_pretrain", "end"}
    for entry in cal.values():
        assert entry["samples"] > 0 and 0.0 <= entry["ece"] <= 1.0 and entry["bce"] > 0
    # The critic-only steps moved the critic and left the actor where a run without them starts.
    plain = load_checkpoint(
        tr.run_round(_cfg("habc"), _streams(cfg), tmp_path / "plain", 0, progress=False)
    )
    assert "after_pretrain" not in plain.manifest["critic_calibration"]
    assert cal["start"] == plain.manifest["critic_calibration"]["start"]


def test_critic_pretraining_is_kept_across_a_resume(tmp_path):
    cfg = _cfg("habc", critic_pretrain_steps=3)
    tr.run_round(cfg, _streams(cfg), tmp_path, 0, max_steps=2, progress=False)
    resumed = load_checkpoint(tr.run_round(cfg, _streams(cfg), tmp_path, 0, progress=False))
    straight = load_checkpoint(tr.run_round(cfg, _streams(cfg), tmp_path / "s", 0, progress=False))
    assert resumed.manifest["critic_calibration"] == straight.manifest["critic_calibration"]
    for k in straight.model:
        assert torch.equal(straight.model[k], resumed.model[k]), k


def test_ungated_methods_skip_critic_pretraining(tmp_path):
    cfg = _cfg("imit_dagger", critic_pretrain_steps=5)
    ckpt = load_checkpoint(tr.run_round(cfg, _streams(cfg), tmp_path, 0, progress=False))
    assert ckpt.manifest["critic_calibration"] == {}
