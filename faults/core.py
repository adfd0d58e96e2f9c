"""What a fault is, and how one trial of it is judged."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


class NotSurvived(Exception):  # noqa: N818 - reads as the verdict it carries
    """Raised by a trial whose fault was not survived; the message says what was lost."""


@dataclass(frozen=True)
class Fault:
    """One kind of fault.

    ``trials(fast)`` gives the parameter of each injection (an offset, a kill point, a seed):
    a handful when ``fast`` (the default test suite), the full sweep otherwise. ``inject(param,
    workdir)`` injects it once in a fresh directory and checks the system's reaction; it raises
    :class:`NotSurvived` (or AssertionError) when something was lost, crashed or went unsafe, and
    may return a short note (e.g. "412 of 412 frames recovered") for the report.
    """

    name: str
    area: str
    injected: str
    survived_when: str
    trials: Callable[[bool], Sequence[object]]
    inject: Callable[[object, Path], str | None]

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"fault name {self.name!r}: use letters, digits, '-' and '_'")
