"""Incremental, versioned on-disk episode store: append-only shards of flat arrays.

Layout::

    <store>/store.json                      # manifest (atomic, durable rewrite), see below
    <store>/shards/shard_<NNNNNN>/<key>.bin # one raw C-order array per feature key,
                                            # frames of consecutive episodes concatenated

`store.json`: `format`, `format_version`, `schema_version` (episode contract), `revision` (bumped
by every convert run that changed something), `extract` (the settings that shaped the arrays:
cameras, image size, proprio mode), `keys` (dtype and per-frame shape of every array), `shards`
(name -> frame count), `episodes` (one entry per live episode: its bag, the bag's fingerprint,
shard, offset, length, the episode facts, and `optional_keys`: which of features.OPTIONAL_KEYS it
holds), `skipped` (bag -> fingerprint and reason).

Optional keys (`requested_action`: only bags with the command-request topics have it): `keys`
lists one once any episode has it; in a shard holding it, an episode without it occupies its
frames with fill (NaN / 0) so every file keeps the frame offsets; `has(key, i)` says whether
episode i has real data and `array` refuses the others. Every other key is in every episode.

Why raw memory-mappable shards (not zarr / LeRobotDataset v3): a training window reads H
consecutive actions and two single frames per camera at random places. A memmap turns that into a
few page reads with no decompression and no extra dependency; bench/bench_convert.py measures the
sampler at ~1.5-2.5k windows/s (three 96x96 cameras, H = 50) on one loaded core. The price is disk:
images are stored uncompressed at the training resolution (96x96x3 = 27 KiB per camera-frame), fine
for the paper-scale data (~10^5 frames, ~8 GB for three cameras). zarr would add chunk
decompression on every random read; LeRobot v3 stores images as MP4, where random frame access
means video decoding.

Incremental: a bag whose fingerprint (name, size, mtime of every file in its directory) matches
its entry is not read again; a changed bag (new sidecar after a relabel, a re-recorded bag) gets
a new entry and its old frames become dead space in their shard (`dead_frames`). Memory while
writing is one episode: arrays are appended to open files and the manifest is written when a
shard is sealed. While episodes are added, a thread syncs the open shard's files to disk
(`_Writeback`), so sealing waits for the last episode's pages, not for the whole shard's.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from habc_core.contract import SCHEMA_VERSION
from habc_core.features import OPTIONAL_KEYS
from habc_core.fsio import atomic_write_text, fsync_dir
from habc_trainer.episode import Episode

STORE_FORMAT = "habc-episode-store"
STORE_FORMAT_VERSION = 1
MANIFEST_NAME = "store.json"
LOCK_NAME = ".convert.lock"
SHARDS_DIR = "shards"


class StoreError(RuntimeError):
    """The store on disk is missing, from another format version, or built differently."""


def bag_fingerprint(bag_dir: Path | str) -> list[list[Any]]:
    """(name, size, mtime_ns) of every regular file in a bag directory, sorted by name."""
    out = []
    for entry in sorted(os.scandir(bag_dir), key=lambda e: e.name):
        if entry.is_file() and not entry.name.startswith("."):
            st = entry.stat()
            out.append([entry.name, st.st_size, st.st_mtime_ns])
    return out


def _empty_manifest(extract: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": STORE_FORMAT,
        "format_version": STORE_FORMAT_VERSION,
        "schema_version": SCHEMA_VERSION,
        "revision": 0,
        "extract": extract,
        "keys": {},
        "shards": {},
        "episodes": [],
        "skipped": {},
        "next_uid": 0,
    }


def load_manifest(root: Path | str) -> dict[str, Any]:
    path = Path(root) / MANIFEST_NAME
    if not path.is_file():
        raise StoreError(f"{root}: no episode store here (missing {MANIFEST_NAME}); run convert")
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != STORE_FORMAT:
        raise StoreError(f"{path}: not an episode store (format {data.get('format')!r})")
    if data.get("format_version") != STORE_FORMAT_VERSION:
        raise StoreError(
            f"{path}: store format version {data.get('format_version')} but this trainer "
            f"reads {STORE_FORMAT_VERSION}; rebuild the store with habc-convert --rebuild"
        )
    return data


class _Writeback:
    """fdatasync of files on one thread while the writer goes on adding episodes.

    Sealing a shard fsyncs its files before the manifest names it (nothing lost on a crash);
    done all at once that is a wait for every byte of the shard (0.24 s for 190 MB of a 16-episode
    conversion on the development machine, after the last episode was extracted). Syncing after
    each episode, off the writing thread, moves that wait under the extraction of the next ones.
    At most one sync is in flight: a disk slower than the extraction is never queued for."""

    def __init__(self) -> None:
        self._threads: ThreadPoolExecutor | None = None
        self._pending: Future | None = None

    def start(self, files: list[Any]) -> None:
        """Sync `files` (already flushed) unless the previous sync is still running."""
        if self._pending is not None and not self._pending.done():
            return
        self.wait()  # an error of the previous sync is raised here, not lost
        if self._threads is None:
            self._threads = ThreadPoolExecutor(1, thread_name_prefix="store-writeback")
        fds = [fh.fileno() for fh in files]
        self._pending = self._threads.submit(lambda: [os.fdatasync(fd) for fd in fds])

    def wait(self) -> None:
        """Until the sync in flight is done (before the files are closed: their fds must stay
        theirs while it runs); its OSError is raised."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self._threads is not None:
                self._threads.shutdown()
                self._threads = None


class StoreWriter:
    """Adds episodes to a store (created if absent); use as a context manager."""

    def __init__(
        self, root: Path | str, extract: dict[str, Any], *, shard_frames: int = 100_000
    ) -> None:
        if shard_frames < 1:
            raise ValueError(f"shard_frames: must be >= 1, got {shard_frames}")
        self.root = Path(root)
        self.shard_frames = shard_frames
        (self.root / SHARDS_DIR).mkdir(parents=True, exist_ok=True)
        # One writer at a time (e.g. several train_round runs converting the same data root):
        # the second waits here until the first has published its manifest.
        self._lock = open(self.root / LOCK_NAME, "a")  # held until close()
        fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX)
        try:
            self.manifest = self._load_or_create(extract)
        except BaseException:
            self._unlock()
            raise
        # Shards left half-written by a killed convert never reached the manifest: drop them.
        for leftover in (self.root / SHARDS_DIR).glob(".tmp_*"):
            shutil.rmtree(leftover, ignore_errors=True)
        self._by_bag = {e["bag_dir"]: e for e in self.manifest["episodes"]}
        self._shard_dir: Path | None = None
        self._files: dict[str, Any] = {}
        self._shard_len = 0
        self._pending: list[dict[str, Any]] = []
        self._writeback = _Writeback()
        self.changed = False

    def _load_or_create(self, extract: dict[str, Any]) -> dict[str, Any]:
        if not (self.root / MANIFEST_NAME).is_file():
            return _empty_manifest(extract)
        manifest = load_manifest(self.root)
        if manifest["extract"] != extract:
            raise StoreError(
                f"{self.root}: store was built with {manifest['extract']}, not {extract}; "
                "use another store directory or habc-convert --rebuild"
            )
        return manifest

    # --- what needs doing ---
    def is_current(self, bag_dir: Path | str) -> bool:
        """True when the bag was converted (or skipped) at its current fingerprint."""
        key = str(Path(bag_dir).resolve())
        fp = bag_fingerprint(bag_dir)
        entry = self._by_bag.get(key)
        if entry is not None and entry["fingerprint"] == fp:
            return True
        skipped = self.manifest["skipped"].get(key)
        return skipped is not None and skipped["fingerprint"] == fp

    def known_skip_reason(self, bag_dir: Path | str) -> str | None:
        skipped = self.manifest["skipped"].get(str(Path(bag_dir).resolve()))
        return None if skipped is None else skipped["reason"]

    def forget_skips(self) -> None:
        self.manifest["skipped"] = {}

    # --- writing ---
    def _check_keys(self, episode: Episode) -> None:
        spec = {
            k: {"dtype": str(v.dtype), "shape": list(v.shape[1:])}
            for k, v in episode.arrays.items()
        }
        keys = self.manifest["keys"]
        if not keys:
            self.manifest["keys"] = spec
            self.manifest["action_arm_dims"] = episode.action_arm_dims
            self.manifest["action_mode"] = episode.action_mode
            return

        def required(d: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in d.items() if k not in OPTIONAL_KEYS}

        bad = [k for k in OPTIONAL_KEYS if k in spec and k in keys and spec[k] != keys[k]]
        if required(spec) != required(keys) or bad:
            raise StoreError(
                f"{episode.info.bag_dir}: arrays {spec} do not match the store's {keys}"
            )
        for key in OPTIONAL_KEYS:
            if key in spec and key not in keys:
                keys[key] = spec[key]
                if self._shard_dir is not None:
                    self._open_key(key, backfill=self._shard_len)

    def _open_shard(self) -> None:
        index = 0
        while True:
            name = f"shard_r{self.manifest['revision'] + 1:04d}_{index:03d}"
            if (
                name not in self.manifest["shards"]
                and not (self.root / SHARDS_DIR / name).exists()
            ):
                break
            index += 1
        self._shard_dir = self.root / SHARDS_DIR / f".tmp_{name}"
        self._shard_dir.mkdir(parents=True)
        self._shard_name = name
        self._files = {}
        self._shard_len = 0
        for key in self.manifest["keys"]:
            self._open_key(key, backfill=0)

    def _open_key(self, key: str, *, backfill: int) -> None:
        """Open `key`'s file in the open shard, with fill for the `backfill` frames before."""
        if self._shard_dir is None:
            raise StoreError(f"{self.root}: no open shard to add {key!r} to")
        fh = open(self._shard_dir / f"{key}.bin", "wb")
        if backfill:
            fh.write(self._fill(key, backfill).tobytes())
        self._files[key] = fh

    def _fill(self, key: str, frames: int) -> np.ndarray:
        # NaN where a float can say "not recorded", 0 otherwise; never read through `array`.
        spec = self.manifest["keys"][key]
        dtype = np.dtype(spec["dtype"])
        value = np.nan if dtype.kind == "f" else 0
        return np.full((frames, *spec["shape"]), value, dtype=dtype)

    def add(self, episode: Episode, fingerprint: list[list[Any]]) -> None:
        """Append one episode's arrays; it becomes visible when its shard is sealed."""
        self._check_keys(episode)
        if self._shard_dir is None:
            self._open_shard()
        length = episode.length
        # Every length is checked before anything is written: a refused episode must leave the
        # open shard's files aligned for the episodes after it.
        for key in self._files:
            if key in episode.arrays and len(episode.arrays[key]) != length:
                raise StoreError(
                    f"{episode.info.bag_dir}: {key} has {len(episode.arrays[key])} frames, "
                    f"action has {length}"
                )
        for key, fh in self._files.items():
            if key not in episode.arrays:  # an optional key this episode lacks
                fh.write(self._fill(key, length).tobytes())
                continue
            fh.write(np.ascontiguousarray(episode.arrays[key]))  # its buffer: no copy
        entry = asdict(episode.info)
        entry.update(
            bag_dir=str(Path(episode.info.bag_dir).resolve()),
            fingerprint=fingerprint,
            shard=self._shard_name,
            start=self._shard_len,
            length=length,
            uid=self.manifest["next_uid"],
            revision=self.manifest["revision"] + 1,
            optional_keys=sorted(k for k in OPTIONAL_KEYS if k in episode.arrays),
        )
        self.manifest["next_uid"] += 1
        self._pending.append(entry)
        self._shard_len += length
        if self._shard_len >= self.shard_frames:
            self.seal()
        else:
            for fh in self._files.values():
                fh.flush()
            self._writeback.start(list(self._files.values()))

    def skip(self, bag_dir: Path | str, fingerprint: list[list[Any]], reason: str) -> None:
        key = str(Path(bag_dir).resolve())
        self.manifest["skipped"][key] = {"fingerprint": fingerprint, "reason": reason}
        self.changed = True

    def seal(self) -> None:
        """Finish the open shard and publish its episodes in the manifest (atomically)."""
        if self._shard_dir is not None:
            self._writeback.wait()
            for fh in self._files.values():
                fh.flush()
                os.fsync(fh.fileno())
                fh.close()
            self._files = {}
            final = self.root / SHARDS_DIR / self._shard_name
            os.replace(self._shard_dir, final)
            fsync_dir(final.parent)  # the manifest below names it: the rename must last
            self.manifest["shards"][self._shard_name] = self._shard_len
            self._shard_dir = None
        for entry in self._pending:
            old = self._by_bag.get(entry["bag_dir"])
            if old is not None:
                self.manifest["episodes"].remove(old)
                self.manifest["dead_frames"] = self.manifest.get("dead_frames", 0) + old["length"]
            self.manifest["episodes"].append(entry)
            self._by_bag[entry["bag_dir"]] = entry
            self.manifest["skipped"].pop(entry["bag_dir"], None)
            self.changed = True
        self._pending = []
        self._write_manifest()

    def _write_manifest(self) -> None:
        atomic_write_text(self.root / MANIFEST_NAME, json.dumps(self.manifest, indent=1))

    def close(self) -> None:
        try:
            self.seal()
        finally:
            self._writeback.close()  # an error of the sync was raised by seal, not again here
        if self.changed:
            self.manifest["revision"] += 1
            self._write_manifest()
        self._unlock()

    def _unlock(self) -> None:
        if not self._lock.closed:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()

    def abort(self) -> None:
        """Drop the open shard (its episodes were never published)."""
        try:
            self._writeback.close()
        except OSError:
            pass  # the shard is dropped: whether its pages reached the disk does not matter
        for fh in self._files.values():
            fh.close()
        self._files = {}
        if self._shard_dir is not None:
            shutil.rmtree(self._shard_dir, ignore_errors=True)
            self._shard_dir = None
        self._pending = []

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
            # Episodes of sealed shards stay published; record progress so far.
            self._write_manifest()
            self._unlock()


class EpisodeStore:
    """Read access: memory-mapped arrays per shard, episodes in manifest order.

    `episodes` is the list of live episode entries; episode i's frames are
    `array(key, i)` (a memmap slice, nothing loaded until indexed).
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.manifest = load_manifest(self.root)
        self.episodes: list[dict[str, Any]] = list(self.manifest["episodes"])
        self.keys: dict[str, dict[str, Any]] = self.manifest["keys"]
        self._maps: dict[tuple[str, str], np.memmap] = {}

    @property
    def revision(self) -> int:
        return int(self.manifest["revision"])

    @property
    def extract(self) -> dict[str, Any]:
        return self.manifest["extract"]

    @property
    def num_frames(self) -> int:
        return sum(e["length"] for e in self.episodes)

    def __len__(self) -> int:
        return len(self.episodes)

    def dim(self, key: str) -> int:
        """Per-frame width of a flat key (proprio, action, env_state); 0 when absent."""
        spec = self.keys.get(key)
        if spec is None:
            return 0
        return int(np.prod(spec["shape"])) if spec["shape"] else 1

    def shard_array(self, shard: str, key: str) -> np.memmap:
        """(frames, ...) memmap of `key` over one whole shard (episodes at their `start`)."""
        return self._map(shard, key)

    def _map(self, shard: str, key: str) -> np.memmap:
        cache_key = (shard, key)
        mm = self._maps.get(cache_key)
        if mm is None:
            if key not in self.keys:
                raise KeyError(f"store has no array {key!r}; have {sorted(self.keys)}")
            spec = self.keys[key]
            frames = int(self.manifest["shards"][shard])
            path = self.root / SHARDS_DIR / shard / f"{key}.bin"
            mm = np.memmap(
                path, dtype=np.dtype(spec["dtype"]), mode="r", shape=(frames, *spec["shape"])
            )
            self._maps[cache_key] = mm
        return mm

    def has(self, key: str, episode: int) -> bool:
        """Whether episode `episode` holds `key` (optional keys are in some episodes only)."""
        if key not in self.keys:
            return False
        return key not in OPTIONAL_KEYS or key in self.episodes[episode].get("optional_keys", ())

    def array(self, key: str, episode: int) -> np.ndarray:
        """(T, ...) memmap view of one episode's array; KeyError when it lacks the key."""
        e = self.episodes[episode]
        if key in self.keys and not self.has(key, episode):
            raise KeyError(
                f"episode {episode} ({e['episode_id']}, {e['bag_dir']}) has no {key!r}: its "
                "bag was recorded without it; check has(key, episode)"
            )
        return self._map(e["shard"], key)[e["start"] : e["start"] + e["length"]]

    def iter_arrays(self, key: str) -> Iterator[np.ndarray]:
        for i in range(len(self.episodes)):
            yield self.array(key, i)

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers re-open their own memmaps.
        state = dict(self.__dict__)
        state["_maps"] = {}
        return state
