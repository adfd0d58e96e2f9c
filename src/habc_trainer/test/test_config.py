"""Training config: presets, strict keys, errors that name the bad field."""

from pathlib import Path

import pytest

from habc_trainer.config import TrainConfig
from habc_trainer.methods import METHODS, method_preset


def test_unknown_key_is_named(tmp_path):
    p = tmp_path / "train.yaml"
    p.write_text("method: habc\nsteps_per_round: 10\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match="unknown config key 'learning_rate'"):
        TrainConfig.from_yaml(p)


@pytest.mark.parametrize("field,value", [("batch_size", 0), ("gamma", 1.5), ("t_max", -1),
                                         ("recap_pass_rate", 0.0), ("warmup_steps", -1)])
def test_bad_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_unknown_method_and_preset_list_the_valid_ones():
    with pytest.raises(ValueError, match="habc_ir"):
        TrainConfig(method="habc2")
    with pytest.raises(ValueError, match="tiny"):
        TrainConfig(model_preset="giant")
    with pytest.raises(ValueError, match="model_overrides"):
        TrainConfig(model_overrides={"d_modle": 3})


def test_method_table_matches_the_spec():
    assert set(METHODS) == {"sft", "imit_dagger", "imit_recap", "habc_v", "habc", "habc_ir",
                            "habc_naive", "filtered_bc"}  # filtered_bc: the diagnostic's arm
    assert method_preset("sft").batch_mix == (1.0, 0.0, 0.0)
    assert method_preset("imit_dagger").batch_mix == (0.5, 0.5, 0.0)
    assert method_preset("imit_recap").credit_assignment == "naive"
    assert method_preset("habc_naive").credit_assignment == "naive"
    assert method_preset("habc_ir").intervention_reweighting
    assert not method_preset("habc").intervention_reweighting


def test_spec_constants_are_the_defaults():
    c = TrainConfig()
    assert (c.failure_penalty, c.warmup_steps, c.huber_delta, c.gamma, c.batch_size,
            c.stale_cutoff) == (100.0, 500, 1.0, 0.99, 256, 10000)


def test_batch_mix_override_is_validated():
    assert TrainConfig(batch_mix=[0.5, 0.0, 0.5]).method_config().batch_mix == (0.5, 0.0, 0.5)
    with pytest.raises(ValueError, match="batch_mix"):
        TrainConfig(batch_mix=(0.0, 0.0, 0.0))


CONFIG_DIR = Path(__file__).resolve().parents[3] / "config"


@pytest.mark.parametrize("name", ["train_tiny.yaml", "train_sim.yaml", "train_base.yaml"])
def test_shipped_training_configs_load(name):
    cfg = TrainConfig.from_yaml(CONFIG_DIR / name)
    assert cfg.model_config().horizon % cfg.model_config().action_patch == 0


def test_credit_assignment_key_turns_habc_into_the_naive_ablation():
    cfg = TrainConfig(method="habc", credit_assignment="naive")
    assert cfg.method_config().credit_assignment == "naive"
    assert cfg.method_config().gate == "habc"
    with pytest.raises(ValueError, match="credit_assignment"):
        TrainConfig(credit_assignment="oracle")


def test_numbers_written_as_yaml_strings_are_accepted_and_bad_ones_named(tmp_path):
    # `--set lr_actor=1e-3` and `lr_actor: 1e-3` reach the config as the string "1e-3".
    path = tmp_path / "train.yaml"
    path.write_text("lr_actor: 1e-3\nsteps_per_round: '40'\n")
    cfg = TrainConfig.from_yaml(path)
    assert cfg.lr_actor == pytest.approx(1e-3) and isinstance(cfg.lr_actor, float)
    assert cfg.steps_per_round == 40
    with pytest.raises(ValueError, match="lr_critic: expected float, got 'fast'"):
        TrainConfig.from_yaml(path, lr_critic="fast")
