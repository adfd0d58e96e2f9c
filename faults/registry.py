"""Every fault module the suite runs; a new module adds itself here."""

from __future__ import annotations

import importlib

from faults.core import Fault

MODULES: tuple[str, ...] = (
    "faults.runtime_faults",
    "faults.checkpoint_faults",
    "faults.bag_faults",
)


def all_faults() -> tuple[Fault, ...]:
    faults: list[Fault] = []
    for module in MODULES:
        faults.extend(importlib.import_module(module).FAULTS)
    names = [f.name for f in faults]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"fault names used twice: {duplicated}")
    return tuple(faults)
