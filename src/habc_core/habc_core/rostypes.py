"""A rosbags typestore that knows the ROS 2 Jazzy standard types plus habc_interfaces.

Our custom .msg files are found without importing ROS: an explicit directory, the
`HABC_INTERFACES_MSG_DIR` environment variable, the ament index (`AMENT_PREFIX_PATH`), or the
source tree next to this package. The writer embeds the full definitions in every bag, so the
reader never needs this lookup for bags (it registers the types found inside the bag).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from habc_core.contract import CUSTOM_TYPES

MSG_DIR_ENV = "HABC_INTERFACES_MSG_DIR"
_PACKAGE = "habc_interfaces"


def candidate_msg_dirs() -> list[Path]:
    """Where the habc_interfaces .msg files may be, most specific first."""
    out: list[Path] = []
    env = os.environ.get(MSG_DIR_ENV)
    if env:
        out.append(Path(env))
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            out.append(Path(prefix) / "share" / _PACKAGE / "msg")
    # Source checkout: src/habc_trainer/habc_core/rostypes.py -> src/habc_interfaces/msg;
    # colcon install: install/habc_trainer/lib/.../habc_trainer -> install/habc_interfaces/share.
    here = Path(__file__).resolve()
    for parent in here.parents:
        out.append(parent / "src" / _PACKAGE / "msg")
        out.append(parent / _PACKAGE / "msg")
        out.append(parent / "install" / _PACKAGE / "share" / _PACKAGE / "msg")
        out.append(parent / _PACKAGE / "share" / _PACKAGE / "msg")
    return out


def find_msg_dir(explicit: Path | str | None = None) -> Path:
    """The first directory holding every habc_interfaces .msg file; FileNotFoundError if none."""
    candidates = [Path(explicit)] if explicit is not None else candidate_msg_dirs()
    names = [t.rsplit("/", 1)[1] + ".msg" for t in CUSTOM_TYPES]
    for cand in candidates:
        if all((cand / n).is_file() for n in names):
            return cand
    shown = "\n  ".join(str(c) for c in candidates[:12])
    raise FileNotFoundError(
        f"habc_interfaces .msg files ({', '.join(names)}) not found; searched:\n  {shown}\n"
        f"set {MSG_DIR_ENV} to the directory holding them (src/habc_interfaces/msg)"
    )


def register_msg_texts(typestore: Typestore, defs: Iterable[tuple[str, str]]) -> None:
    """Register (msgtype, .msg text) pairs; rosbags resolves nested standard types itself."""
    types: dict = {}
    for msgtype, text in defs:
        types.update(get_types_from_msg(text, msgtype))
    typestore.register(types)


def make_typestore(msg_dir: Path | str | None = None) -> Typestore:
    """Jazzy standard types + our custom types, read from their .msg files."""
    typestore = get_typestore(Stores.ROS2_JAZZY)
    directory = find_msg_dir(msg_dir)
    register_msg_texts(
        typestore,
        (
            (t, (directory / (t.rsplit("/", 1)[1] + ".msg")).read_text(encoding="utf-8"))
            for t in CUSTOM_TYPES
        ),
    )
    return typestore
