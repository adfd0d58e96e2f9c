"""What every console script shares: a user's mistake is one line naming the input, exit 2.

A traceback is for a bug in habc-rig, never for a bad flag, path or config value. Each ``main``
parses and validates its inputs inside :func:`user_errors`; an error raised there prints as
``<prog>: error: <message>`` and the process exits with status 2 (argparse's own convention).
Errors raised later, by the work itself, keep their traceback: they are ours to fix.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

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


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (a YAML error spans several)."""
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
