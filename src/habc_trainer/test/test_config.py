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


@pytest.mark.parametrize(
    "field,value",
    [
        ("batch_size", 0),
        ("gamma", 1.5),
        ("t_max", -1),
        ("recap_pass_rate", 0.0),
        ("warmup_steps", -1),
        ("convert_workers", -2),
    ],
)
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
    assert set(METHODS) == {
        "sft",
        "imit_dagger",
        "imit_recap",
        "habc_v",
        "habc",
        "habc_ir",
        "habc_naive",
        "filtered_bc",
    }  # filtered_bc: the diagnostic's arm
    assert method_preset("sft").batch_mix == (1.0, 0.0, 0.0)
    assert method_preset("imit_dagger").batch_mix == (0.5, 0.5, 0.0)
    assert method_preset("imit_recap").credit_assignment == "naive"
    assert method_preset("habc_naive").credit_assignment == "naive"
    assert method_preset("habc_ir").intervention_reweighting
    assert not method_preset("habc").intervention_reweighting


def test_spec_constants_are_the_defaults():
    c = TrainConfig()
    assert (
        c.failure_penalty,
        c.warmup_steps,
        c.huber_delta,
        c.gamma,
        c.batch_size,
        c.stale_cutoff,
    ) == (100.0, 500, 1.0, 0.99, 256, 10000)


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
    with pytest.raises(ValueError, match="lr_critic: expected a number, got 'fast'"):
        TrainConfig.from_yaml(path, lr_critic="fast")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps_per_round: 5.7", "steps_per_round: expected an integer, got 5.7"),
        ("steps_per_round: true", "steps_per_round: expected an integer, got True"),
        ("batch_size: '12x'", "batch_size: expected an integer, got '12x'"),
        ("lr_actor: true", "lr_actor: expected a number, got True"),
        ("value_min: false", "value_min: expected a number, got False"),
        ("batch_mix: [0.5, true, 0.5]", r"batch_mix\[1\]: expected a number, got True"),
        ("model_overrides: {horizon: 5.7}", "model_overrides: horizon: expected an integer"),
        ("model_overrides: {d_model: true}", "model_overrides: d_model: expected an integer"),
    ],
)
def test_wrong_types_are_refused_by_key(tmp_path, text, message):
    # bool is an int subclass: without a type check `true` would train with batch_size 1.
    path = tmp_path / "train.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_yaml(path)


def test_integral_floats_and_numeric_strings_convert_to_the_field_type():
    cfg = TrainConfig.from_dict({"steps_per_round": 6000.0, "t_max": 600, "log_every": "1e1"})
    assert (cfg.steps_per_round, cfg.log_every) == (6000, 10)
    assert isinstance(cfg.steps_per_round, int) and isinstance(cfg.t_max, float)


def test_model_config_refuses_bools_and_fractional_sizes():
    from habc_trainer.models.config import ModelConfig

    with pytest.raises(ValueError, match="horizon: expected an integer, got True"):
        ModelConfig(horizon=True)
    with pytest.raises(ValueError, match=r"conv_channels\[0\]: expected an integer, got 8.5"):
        ModelConfig(conv_channels=(8.5,))
    with pytest.raises(ValueError, match="time_alpha: expected a number, got False"):
        ModelConfig(time_alpha=False)
    assert ModelConfig(cameras=["top"]).cameras == ("top",)
