"""What every console script shares: a user's mistake is one line naming the input, exit 2.

A traceback is for a bug in habc-rig, never for a bad flag, path or config value. Each ``main``
parses and validates its inputs inside :func:`user_errors`; an error raised there prints as
``<prog>: error: <message>`` and the process exits with status 2 (argparse's own convention).
Errors raised later, by the work itself, keep their traceback: they are ours to fix.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import numbers
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

import yaml

USAGE_EXIT = 2

# What validation of user input raises: configs and validators raise ValueError naming the
# field; paths raise the OSError subclasses; a YAML that does not parse raises YAMLError.
USER_INPUT_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
    yaml.YAMLError,
)


class UserError(ValueError):
    """A mistake in what the user asked for (flags, paths, config values)."""


def one_line(exc: BaseException | str) -> str:
    """The exception's (or text's) message on one line (a YAML error spans several)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


@contextmanager
def user_errors(prog: str) -> Iterator[None]:
    """Turn a user-input error raised inside the block into one line on stderr and exit 2."""
    try:
        yield
    except USER_INPUT_ERRORS as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        raise SystemExit(USAGE_EXIT) from None


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the convention's one-line errors: ``<prog>: error: <message>``, exit 2.

    argparse's own error prints the whole usage first (5-10 lines for these scripts); the line
    that says what was wrong is the one a user needs, ``--help`` has the rest.
    """

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {one_line(message)}", file=sys.stderr)
        raise SystemExit(USAGE_EXIT)


def parse_overrides(items: Sequence[str], flag: str = "--set") -> dict[str, Any]:
    """``key=value`` items into a dict, values read as YAML (so ``3``, ``0.5``, ``[a, b]``)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{flag}: expected key=value, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value) if value != "" else ""
        except yaml.YAMLError:
            raise UserError(f"{flag} {key}: value {value!r} is not valid YAML") from None
    return out


def _int_at_least(minimum: int, text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (``--round``, ``--demos``, ``--seed``)."""
    return _int_at_least(0, text)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (``--episodes``, ``--workers``)."""
    return _int_at_least(1, text)


def split_overrides(items: Sequence[str], flag: str = "override") -> dict[str, str]:
    """``key=value`` items into a dict of raw strings (the caller parses each by its type).

    A key given twice is refused: on a command line the later one silently winning hides a typo.
    """
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"{flag}: expected key=value, got {item!r}")
        if key in out:
            raise UserError(f"{flag} {key!r}: given twice ({out[key]!r} and {value!r})")
        out[key] = value
    return out


# --- typed config fields -------------------------------------------------------------------
# Configs are frozen dataclasses filled from YAML, where `true` is a bool (an int subclass in
# Python), `5.7` a float and `1e-3` (YAML 1.1, no dot) a string. `coerce_field` checks a value
# against its field's annotation so a wrong type is refused where it enters, naming the key.

_SCALARS = ("int", "float", "bool", "str")


def _kind(annotation: Any) -> str:
    if isinstance(annotation, str):
        return annotation.replace(" ", "")
    return getattr(annotation, "__name__", str(annotation)).replace(" ", "")


def _as_int(name: str, value: Any) -> int:
    bad = UserError(f"{name}: expected an integer, got {value!r}")
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        raise bad
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text, 10)
        except ValueError:
            try:
                value = float(text)  # "1e3": YAML 1.1 leaves it a string
            except ValueError:
                raise bad from None
    if isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
        return int(value)  # 6000.0 is 6000; 5.7 is not an integer
    raise bad


def _as_float(name: str, value: Any) -> float:
    bad = UserError(f"{name}: expected a number, got {value!r}")
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        raise bad
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise bad from None
    raise bad


def _as_scalar(name: str, kind: str, value: Any) -> Any:
    if kind == "int":
        return _as_int(name, value)
    if kind == "float":
        return _as_float(name, value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise UserError(f"{name}: expected true or false, got {value!r}")
    if isinstance(value, str):
        return value
    raise UserError(f"{name}: expected a string, got {value!r}")


def coerce_field(name: str, annotation: Any, value: Any) -> Any:
    """`value` as a dataclass field `name` annotated `annotation` takes it; else UserError.

    ``int``: an int (never a bool), an integral float (``6000.0``) or a string of one
    (``"40"``); ``float``: an int or float (never a bool) or a numeric string (``"1e-3"``);
    ``bool``: a bool only; ``str``: a string only. ``X | None`` also takes None; ``tuple[X, ...]``
    and ``tuple[X, X, X]`` (X one of those) take a list or tuple and check every item. Any other
    annotation (nested configs, dicts, literals) passes the value through unchecked.
    """
    parts = _kind(annotation).split("|")
    optional = "None" in parts
    rest = [p for p in parts if p != "None"]
    if len(rest) != 1:
        return value
    kind = rest[0]
    if value is None and optional:
        return None
    if kind in _SCALARS:
        return _as_scalar(name, kind, value)
    if kind.startswith("tuple[") and kind.endswith("]"):
        items = kind[len("tuple[") : -1].split(",")
        if items[-1] == "...":
            items = items[:1]
            length = None
        else:
            length = len(items)
        if len(set(items)) != 1 or items[0] not in _SCALARS:
            return value
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{name}: expected a list, got {value!r}")
        if length is not None and len(value) != length:
            raise UserError(f"{name}: expected {length} items, got {len(value)} in {value!r}")
        return tuple(_as_scalar(f"{name}[{i}]", items[0], v) for i, v in enumerate(value))
    return value


def coerce_fields(instance: Any) -> None:
    """Check (and convert, e.g. ``"1e-3"`` -> 0.001) every field of a dataclass instance in
    place; call first in ``__post_init__``, so the value checks after it see the right types."""
    for f in dataclasses.fields(instance):
        old = getattr(instance, f.name)
        new = coerce_field(f.name, f.type, old)
        if new is not old:
            object.__setattr__(instance, f.name, new)  # frozen dataclasses included
