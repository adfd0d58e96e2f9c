"""The shared CLI conventions: one line and exit 2 for a user's mistake."""

import argparse

import pytest

from habc_trainer.cli import non_negative_int, parse_overrides, positive_int, user_errors


def test_user_error_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info, user_errors("tool"):
        raise ValueError("steps_per_round: expected int,\n  got 5.7")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "tool: error: steps_per_round: expected int, got 5.7\n"


def test_a_bug_keeps_its_traceback():
    with pytest.raises(KeyError), user_errors("tool"):
        raise KeyError("internal")


def test_overrides_are_yaml_and_malformed_ones_are_named():
    assert parse_overrides(["a=3", "b=0.5", "c=[x, y]", "d="]) == {
        "a": 3,
        "b": 0.5,
        "c": ["x", "y"],
        "d": "",
    }
    with pytest.raises(ValueError, match="expected key=value, got 'oops'"):
        parse_overrides(["oops"])
    with pytest.raises(ValueError, match="--set a: value '\\[1' is not valid YAML"):
        parse_overrides(["a=[1"])


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (non_negative_int, "-1", "must be >= 0, got -1"),
        (positive_int, "0", "must be >= 1, got 0"),
        (non_negative_int, "1.5", "expected an integer, got '1.5'"),
        (non_negative_int, "true", "expected an integer, got 'true'"),
    ],
)
def test_integer_flags_refuse_bad_values(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        parse(text)
    assert non_negative_int("0") == 0 and positive_int("3") == 3
