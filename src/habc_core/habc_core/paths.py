"""Where the workspace's config/*.yaml files are found: one lookup for every package.

The graph profiles (habc_control.graph) and the sim config's default (habc_sim.config) both
live in the repository's `config/`; colcon installs them to share/habc_control/config.
"""

from __future__ import annotations

import os
from pathlib import Path

CONFIG_DIR = "config"
# The package whose install carries config/*.yaml (habc_control's setup.py data_files).
CONFIG_PACKAGE = "habc_control"


def _installed(name: str) -> Path | None:
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        p = Path(prefix) / "share" / CONFIG_PACKAGE / CONFIG_DIR / name
        if prefix and p.is_file():
            return p
    return None


def find_config(
    name: str, *, cwd: bool = False, installed: bool = True, start: Path | None = None
) -> Path | None:
    """config/<name>: in `start` or a directory above it, under the current directory (with
    `cwd`), then the installed share directory (with `installed`), then the nearest `config/`
    above this source file (the source tree); None where none has it."""
    if start is not None:
        here = Path(start).resolve()
        for parent in [here, *here.parents]:
            p = parent / CONFIG_DIR / name
            if p.is_file():
                return p
    if cwd:
        p = Path.cwd() / CONFIG_DIR / name
        if p.is_file():
            return p
    if installed:
        found = _installed(name)
        if found is not None:
            return found
    for parent in Path(__file__).resolve().parents:
        p = parent / CONFIG_DIR / name
        if p.is_file():
            return p
    return None


def config_file(name: str) -> Path:
    """The installed share/habc_control/config/<name>, else the source tree's."""
    found = find_config(name)
    if found is None:
        here = Path(__file__).resolve()
        raise FileNotFoundError(f"{name}: not installed and not found above {here}")
    return found
