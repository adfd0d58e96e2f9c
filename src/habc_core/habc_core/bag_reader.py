"""Read every message of one episode bag, including a bag that was torn or damaged.

`open_bag(bag_dir)` returns a `BagContents`; its `messages()` yields `(topic, msgtype, log_ns,
msg)` with `msg` deserialized by rosbags. Message types come from the definitions stored in the
bag itself (MCAP schemas, sqlite3 message_definitions), so custom types need not be installed.

Two ways in:

* **complete bags** (MCAP or sqlite3 with `metadata.yaml`) go through rosbags' rosbag2 Reader,
  which yields messages in log-time order and checks chunk CRCs when the writer stored them; the
  typestore built from the bag's definitions (hashes checked, as rosbags' AnyReader does; Jazzy's
  standard types beneath them only if they leave a type out) is shared by the bags of a process
  that define their types the same way;
* **everything else that is MCAP** (no `metadata.yaml`, a torn summary / footer / end magic, a
  chunk rosbags cannot read) goes through the streaming reader (mcap_stream.py): it walks the
  file's records from the start, keeps every complete record and every complete chunk whose
  framing, size and CRC check out, and stops cleanly at the first record that is cut or
  malformed. `BagContents.recovery` then says how much was read and what was lost (in bytes
  and plain words). A file that reaches its footer and end magic intact is not `truncated`.

The record-level MCAP format (framing, chunks, the summary check) is mcap_format.py.

Every error is a `BagReadError` whose message names the file and says what is wrong in plain
words (no raw parser exception text).
"""

from __future__ import annotations

import functools
import importlib
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rosbags.interfaces import MessageDefinitionFormat, Msgdef, Nodetype
from rosbags.rosbag2 import Reader as Rosbag2Reader
from rosbags.serde.cdr import generate_deserialize_cdr
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg
from rosbags.typesys.base import normalize_fieldname
from rosbags.typesys.store import Typestore

from habc_core.bag_errors import BagReadError, CompleteReadFailed
from habc_core.contract import BAG_METADATA_NAME, storage_files
from habc_core.mcap_format import summary_disagrees
from habc_core.mcap_stream import Scan, kept_messages, lost_words, scan_mcap

# BagReadError / CompleteReadFailed are part of this module's interface (importers use it).
__all__ = ["BagContents", "BagReadError", "CompleteReadFailed", "Recovery", "open_bag"]


@dataclass(frozen=True)
class Recovery:
    """What a streaming read of a torn or damaged MCAP kept and what it lost.

    `data_complete`: the data section reached its end record, so every message was kept and only
    the summary / index / footer was lost. `good_bytes` is where the kept records end.
    """

    storage_path: Path
    file_size: int
    good_bytes: int
    messages: int
    chunks: int
    lost: str  # plain words: what was cut or corrupt, and where
    data_complete: bool
    cause: str = ""  # why the complete read was not used, when it was tried

    def describe(self) -> str:
        kept = f"{self.messages} messages in {self.chunks} complete chunks"
        return f"{kept}; {self.lost}"


@dataclass
class BagContents:
    """One opened episode bag. `topics` maps topic -> message type.

    `truncated`: the bag was torn or damaged and was recovered (`recovery` says how); `notes`:
    plain remarks on how it was read (e.g. "no metadata.yaml: read the MCAP by itself");
    `read_by`: "rosbags" (through the bag's summary / metadata) or "stream" (record by record).
    """

    bag_dir: Path
    storage_path: Path
    topics: dict[str, str]
    truncated: bool
    recovery: Recovery | None = None
    notes: tuple[str, ...] = ()
    read_by: str = "rosbags"
    _iter: Any = field(repr=False, default=None)
    _close: Any = field(repr=False, default=None)

    def messages(self) -> Iterator[tuple[str, str, int, Any]]:
        """(topic, msgtype, log time ns, deserialized message), per topic in recording order."""
        return self._iter()

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None

    def __enter__(self) -> BagContents:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


# (type name, schema encoding, definition text, digest) per schema of a bag.
Definitions = tuple[tuple[str, str, str, str], ...]
_SCHEMA_ENCODING = {MessageDefinitionFormat.MSG: "ros2msg", MessageDefinitionFormat.IDL: "ros2idl"}
_IDL_SEPARATOR = "=" * 80 + "\n"


def open_bag(bag_dir: Path | str, *, stream: bool = False, cause: str = "") -> BagContents:
    """Open a bag directory (close it, or use it as a context manager).

    `stream=True` skips rosbags and reads the MCAP with the streaming reader (used after
    rosbags failed mid-read: `cause` says how). A torn or damaged MCAP is recovered; anything
    else unreadable raises BagReadError.
    """
    bag_dir = Path(bag_dir)
    if not bag_dir.is_dir():
        raise BagReadError(f"{bag_dir}: not a bag directory")
    files = storage_files(bag_dir)
    if not files:
        raise BagReadError(f"{bag_dir}: no storage file (*.mcap / *.db3)")
    mcaps = sorted((f for f in files if f.suffix == ".mcap"), key=_natural_key)
    has_metadata = (bag_dir / BAG_METADATA_NAME).is_file()
    if has_metadata and not stream:
        try:
            return _open_complete(bag_dir, files[0])
        except BagReadError as exc:
            cause = str(exc).partition(": ")[2]
        except Exception as exc:  # noqa: BLE001 - any rosbags failure falls back to streaming
            cause = _plain_rosbags_error(exc)
    if not mcaps:
        why = cause or f"no {BAG_METADATA_NAME}"
        raise BagReadError(
            f"{files[0]}: sqlite3 bag unreadable ({why}); only MCAP bags can be recovered"
        )
    if len(mcaps) != len(files):
        raise BagReadError(f"{bag_dir}: both MCAP and sqlite3 files; one bag has one storage")
    return _open_streaming(bag_dir, mcaps, cause, has_metadata)


def _natural_key(path: Path) -> tuple[Any, ...]:
    # ros2 bag record splits into <name>_0.mcap, <name>_1.mcap, ... <name>_10.mcap.
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path.name))


def _plain_rosbags_error(exc: BaseException) -> str:
    text = " ".join(str(exc).split()).rstrip(".")
    if "magic" in text.lower():
        return "the file does not end with an intact MCAP footer"
    if isinstance(exc, FileNotFoundError):
        return f"{BAG_METADATA_NAME} names a storage file that is not there"
    if type(exc).__module__.startswith("rosbags") and text:
        return f"rosbags: {text}"
    return f"rosbags failed ({type(exc).__name__})"


def _open_complete(bag_dir: Path, storage_path: Path) -> BagContents:
    # rosbags finds the chunks through the summary, which no CRC protects: a flipped byte in
    # its chunk index makes it skip or misorder a chunk silently. Checking the index against
    # the chunks' own headers costs one small read per chunk.
    for path in storage_files(bag_dir):
        if path.suffix == ".mcap":
            problem = summary_disagrees(path)
            if problem:
                raise BagReadError(f"{path}: {problem}")
    # Opened here so a broken bag fails now (and falls back), not mid-iteration. rosbags'
    # AnyReader would parse every definition and generate its decoders again for each bag; the
    # bags of one rig share their definitions, so one typestore serves them all (in a process).
    reader = Rosbag2Reader(bag_dir)
    reader.open()
    try:
        definitions = tuple(
            (c.msgtype, _SCHEMA_ENCODING.get(c.msgdef.format, ""), c.msgdef.data, c.digest)
            for c in reader.connections
        )
        typestore = _typestore_from_schemas(definitions, storage_path)
    except BaseException:
        reader.close()
        raise
    topics = {c.topic: c.msgtype for c in reader.connections}

    def iterate() -> Iterator[tuple[str, str, int, Any]]:
        messages = reader.messages()
        while True:
            try:
                conn, log_ns, raw = next(messages)
            except StopIteration:
                return
            except Exception as exc:  # noqa: BLE001 - a chunk rosbags cannot read
                raise CompleteReadFailed(
                    f"{storage_path}: a chunk cannot be read ({_plain_rosbags_error(exc)})"
                ) from exc
            try:
                msg = _decode(
                    typestore.deserialize_cdr, raw, conn.topic, conn.msgtype, log_ns, storage_path
                )
            except BagReadError as exc:
                # The definition comes from the unprotected summary; the chunks hold their own.
                raise CompleteReadFailed(str(exc)) from exc
            yield conn.topic, conn.msgtype, log_ns, msg

    return BagContents(
        bag_dir, storage_path, topics, truncated=False, _iter=iterate, _close=reader.close
    )


def _decode(
    deserialize: Callable[[Any, str], Any],
    raw: Any,
    topic: str,
    msgtype: str,
    log_ns: int,
    path: Path,
) -> Any:
    try:
        return deserialize(raw, msgtype)
    except Exception as exc:  # noqa: BLE001 - corrupt CDR bytes raise anything
        raise BagReadError(
            f"{path}: {topic} (log time {log_ns} ns): a message cannot be decoded as "
            f"{msgtype}; its bytes are corrupt ({type(exc).__name__})"
        ) from exc


def _typestore_from_schemas(definitions: Definitions, path: Path) -> Typestore:
    """A typestore holding every type the bag defines: (name, encoding, text, digest) per
    schema; a digest (RIHS01, where the bag has one) must match the definition's."""
    try:
        return _TYPESTORES.get(definitions)
    except _BadDefinitions as exc:
        raise BagReadError(f"{path}: {exc}") from exc.__cause__


class _BadDefinitions(Exception):
    pass


class _Typestores:
    """The typestores of this process, each shared by every bag whose definitions agree with
    it (a bag that defines a type differently gets another).

    Sharing matters because rosbags generates a type's decoders once per typestore (about
    100 ms for a rig's types), and the bags of one rig differ in which topics they hold (a
    rollout with an intervention has types a demo lacks): a bag's new types join a store whose
    types they do not contradict. Jazzy's standard types sit under a store only for
    definitions that leave a type out (building them costs 90 ms more; the schemas ros2 bag and
    our recorder write carry every type they use)."""

    def __init__(self, limit: int = 16) -> None:
        self._limit = limit
        self._by_definitions: dict[Definitions, Typestore] = {}
        self._stores: list[tuple[bool, Typestore]] = []  # (on Jazzy's types, store)
        # The converter reads bags on several threads (convert_pool): a store gains types and
        # rosbags registers them through one scratch module, so one thread at a time in here.
        self._lock = threading.Lock()

    def get(self, definitions: Definitions) -> Typestore:
        with self._lock:
            return self._get(definitions)

    def _get(self, definitions: Definitions) -> Typestore:
        store = self._by_definitions.get(definitions)
        if store is not None:
            return store
        types = _parsed(definitions)
        on_jazzy = not (all(name in types for name, *_r in definitions) and _closed(types))
        store = self._joined(types, on_jazzy)
        for name, _encoding, _text, digest in definitions:
            if digest.startswith("RIHS01_") and name in types:
                have = store.hash_rihs01(name)
                if have != digest:
                    raise _BadDefinitions(f"{name}: definition hash {have} != the bag's {digest}")
        if len(self._by_definitions) >= self._limit:
            del self._by_definitions[next(iter(self._by_definitions))]
        self._by_definitions[definitions] = store
        return store

    def _joined(self, types: dict, on_jazzy: bool) -> Typestore:
        for jazzy, store in self._stores:
            if jazzy == on_jazzy and _agree(store, types):
                store.register({k: v for k, v in types.items() if k not in store.fielddefs})
                return store
        base = Stores.ROS2_JAZZY if on_jazzy else Stores.EMPTY
        # rosbags' get_typestore(base), with our class.
        store = _DecodingTypestore(importlib.import_module(f"rosbags.typesys.stores.{base.value}"))
        # Definitions in the bag win: they describe exactly the bytes that were written.
        try:
            store.register(types)
        except Exception as exc:  # noqa: BLE001
            raise _BadDefinitions(
                f"the bag's message definitions clash ({type(exc).__name__}: {exc})"
            ) from exc
        self._stores = [*self._stores[-(self._limit - 1) :], (on_jazzy, store)]
        return store


class _DecodingTypestore(Typestore):
    """A typestore that only decodes CDR. When rosbags first meets a type it generates thirteen
    functions for it (encoders, sizers, ROS 1 converters); reading a bag needs the two decoders,
    and the others cost about 80 ms per process for a rig's types (measured). Here they are not
    generated: calling one raises."""

    def get_msgdef(self, typename: str) -> Msgdef[object]:
        msgdef = self.cache.get(typename)
        if msgdef is None:
            entries = [
                (normalize_fieldname(name), desc) for name, desc in self.fielddefs[typename][1]
            ]
            unbuilt = functools.partial(_not_built, typename)
            msgdef = Msgdef(
                name=typename,
                fields=entries,
                cls=self.types[typename],
                size_cdr=0,
                getsize_cdr=unbuilt,
                serialize_cdr_le=unbuilt,
                serialize_cdr_be=unbuilt,
                deserialize_cdr_le=generate_deserialize_cdr(entries, self, "le"),
                deserialize_cdr_be=generate_deserialize_cdr(entries, self, "be"),
                size_ros1=0,
                getsize_ros1=unbuilt,
                serialize_ros1=unbuilt,
                deserialize_ros1=unbuilt,
                getsize_ros1_to_cdr=unbuilt,
                ros1_to_cdr=unbuilt,
                getsize_cdr_to_ros1=unbuilt,
                cdr_to_ros1=unbuilt,
            )
            self.cache[typename] = msgdef
        return msgdef


def _not_built(typename: str, *_args: Any) -> Any:
    raise NotImplementedError(f"{typename}: the bag reader's typestore only decodes CDR")


_TYPESTORES = _Typestores()


def _parsed(definitions: Definitions) -> dict:
    types: dict = {}
    for name, encoding, text, _digest in definitions:
        try:
            if encoding == "ros2msg":
                types.update(get_types_from_msg(text, name))
            elif encoding == "ros2idl":
                # ros2 bag's IDL schemas may hold several definitions behind separator lines.
                parts = text.split(_IDL_SEPARATOR)[1:] if text.startswith(_IDL_SEPARATOR) else []
                for idl in [p.split("\n", 1)[1] for p in parts] or [text]:
                    types.update(get_types_from_idl(idl))
        except Exception as exc:  # noqa: BLE001 - a damaged definition raises anything
            raise _BadDefinitions(
                f"the bag's definition of {name} does not parse ({type(exc).__name__})"
            ) from exc
    return types


def _agree(store: Typestore, types: dict) -> bool:
    """Whether every type of `types` that `store` has is defined the same way there: its
    constants, and its fields as rosbags compares them (names case-blind)."""

    def same(definition: Any) -> tuple[Any, list[tuple[str, Any]]]:
        consts, fields = definition[0], definition[1]
        return list(consts), [(name.lower(), desc) for name, desc in fields]

    return all(
        same(store.fielddefs[name]) == same(definition)
        for name, definition in types.items()
        if name in store.fielddefs
    )


def _closed(types: dict) -> bool:
    """Whether every message type that `types` (name -> (constants, fields)) uses is in it."""

    def defined(node: tuple[Any, Any]) -> bool:
        kind, args = node
        if kind == Nodetype.NAME:
            return args in types
        if kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):
            return defined(args[0])
        return True

    return all(defined(ftype) for _consts, fields in types.values() for _n, ftype in fields)


# --- the streaming MCAP reader ---------------------------------------------------------------


def _open_streaming(
    bag_dir: Path, paths: list[Path], cause: str, has_metadata: bool
) -> BagContents:
    scans: list[Scan] = []
    for path in paths:
        try:
            scan = scan_mcap(path)
        except OSError as exc:
            raise BagReadError(
                f"{path}: cannot be read ({exc.strerror or type(exc).__name__})"
            ) from exc
        scans.append(scan)
        if not scan.complete:
            # A later split file would follow a hole: the episode ends where this one breaks.
            break
    last = scans[-1]
    topics: dict[str, str] = {}
    schema_defs: dict[str, tuple[str, str]] = {}
    for scan in scans:
        for topic, sid in scan.channels.values():
            name, encoding, text = scan.schemas[sid]
            topics[topic] = name
            schema_defs[name] = (encoding, text)
    messages = sum(s.messages for s in scans)
    if not messages:
        what = lost_words(last) if last.damage else "it holds no message"
        raise BagReadError(f"{last.path}: no complete message to recover ({what})")
    truncated = not last.complete
    recovery = None
    notes: list[str] = []
    if truncated:
        recovery = Recovery(
            storage_path=last.path,
            file_size=last.size,
            good_bytes=last.good_end,
            messages=messages,
            chunks=sum(s.chunks for s in scans),
            lost=lost_words(last)
            + (
                f"; the later files {[p.name for p in paths[len(scans) :]]} were not read"
                if len(scans) < len(paths)
                else ""
            ),
            data_complete=last.data_end_at is not None,
            cause=cause,
        )
    elif has_metadata:
        notes.append(f"rosbags could not read it ({cause}); read the MCAP file by itself")
    else:
        notes.append(f"no {BAG_METADATA_NAME}: read the MCAP file by itself")
    typestore = _typestore_from_schemas(
        tuple((name, enc, text, "") for name, (enc, text) in schema_defs.items()), last.path
    )

    def iterate() -> Iterator[tuple[str, str, int, Any]]:
        for scan in scans:
            for cid, log_ns, data in kept_messages(scan):
                topic, sid = scan.channels[cid]
                name = scan.schemas[sid][0]
                yield (
                    topic,
                    name,
                    log_ns,
                    _decode(typestore.deserialize_cdr, data, topic, name, log_ns, scan.path),
                )

    return BagContents(
        bag_dir,
        scans[0].path,
        topics,
        truncated=truncated,
        recovery=recovery,
        notes=tuple(notes),
        read_by="stream",
        _iter=iterate,
    )
