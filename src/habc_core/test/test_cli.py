"""The shared CLI conventions: one line and exit 2 for a user's mistake."""

import argparse
import re

import pytest

from habc_core.cli import (
    ArgumentParser,
    coerce_field,
    non_negative_int,
    parse_overrides,
    positive_int,
    split_overrides,
    user_errors,
)


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


def test_argparse_errors_are_one_line(capsys):
    p = ArgumentParser(prog="tool")
    p.add_argument("--n", type=positive_int, required=True)
    with pytest.raises(SystemExit) as exit_info:
        p.parse_args(["--n", "0"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "tool: error: argument --n: must be >= 1, got 0\n"


def test_split_overrides_keeps_raw_strings_and_refuses_repeats():
    assert split_overrides(["a=1", "b=[x]", "c="]) == {"a": "1", "b": "[x]", "c": ""}
    with pytest.raises(ValueError, match="override 'a': given twice \\('1' and '2'\\)"):
        split_overrides(["a=1", "a=2"])
    with pytest.raises(ValueError, match="expected key=value, got '=1'"):
        split_overrides(["=1"])


@pytest.mark.parametrize(
    ("annotation", "value", "expected"),
    [
        ("int", 3, 3),
        ("int", 6000.0, 6000),
        ("int", "40", 40),
        ("int", "1e3", 1000),
        ("float", 1, 1.0),
        ("float", "1e-3", 1e-3),
        ("float | None", None, None),
        ("tuple[float, float, float] | None", [1, 0.5, 0], (1.0, 0.5, 0.0)),
        ("tuple[int, ...]", [8, 16.0], (8, 16)),
        ("tuple[str, ...]", ["top"], ("top",)),
        ("bool", False, False),
        ("dict", {"a": 1}, {"a": 1}),  # not a scalar: passed through
    ],
)
def test_fields_take_values_of_their_type(annotation, value, expected):
    out = coerce_field("k", annotation, value)
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize(
    ("annotation", "value", "message"),
    [
        ("int", True, "k: expected an integer, got True"),
        ("int", 5.7, "k: expected an integer, got 5.7"),
        ("int", "5.7", "k: expected an integer, got '5.7'"),
        ("int", float("nan"), "k: expected an integer, got nan"),
        ("int", None, "k: expected an integer, got None"),
        ("float", False, "k: expected a number, got False"),
        ("float", "fast", "k: expected a number, got 'fast'"),
        ("float", [1.0], "k: expected a number, got [1.0]"),
        ("bool", 1, "k: expected true or false, got 1"),
        ("str", 3, "k: expected a string, got 3"),
        ("tuple[int, ...]", 8, "k: expected a list, got 8"),
        ("tuple[int, ...]", [8, True], "k[1]: expected an integer, got True"),
        ("tuple[float, float, float] | None", [1.0], "k: expected 3 items, got 1"),
    ],
)
def test_fields_refuse_other_types_naming_the_key(annotation, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        coerce_field("k", annotation, value)
