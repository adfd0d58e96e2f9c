"""The episode store <-> LeRobotDataset v3 (runs in the LeRobot venv: `make lerobot-env`).

    LR=".venv-lerobot/bin/python -m habc_trainer.lerobot_dataset"
    $LR export --store data/store --out exports/sim --repo-id habc/sim
    $LR import --dataset ~/demos --store data/store --cameras top

Export writes every stored episode with LeRobot's own writer (`LeRobotDataset.create`,
`add_frame`, `save_episode`; cameras as AV1 video): `observation.state` (proprio), `action`,
`observation.images.<camera>`, `observation.environment_state` (sim stores), `next.reward`
(1 on the last frame of a success), `next.done`, and per frame in `complementary_info.*`:
`is_intervention` (any arm under HUMAN: HIL-SERL's convention), `is_intervention_arm` (one flag
per arm), `episode_success`, `source` (0 demo, 1 rollout, 2 eval), `round`, `model_index`.
`--weights-from <checkpoint>` adds `complementary_info.habc_weight`: the HABC actor weight the
checkpoint's critic gives each frame, and the same numbers keyed by the dataset's `index` in
`meta/habc_weights.json` (LeRobot's preprocessors drop unknown columns; the index survives).

Import turns a LeRobotDataset of demonstrations into D_SFT episodes of a store (source demo,
outcome success, round 0, no human flags), images resized to the store's training resolution.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from habc_core import features as F
from habc_core.cli import ArgumentParser, UserError, positive_int, user_errors
from habc_core.contract import MODE_BY_SPACE, SOURCES
from habc_core.features import ARM_NAMES, CAMERA_NAMES

PROG = "habc-lerobot-dataset"
STATE = "observation.state"
ENV_STATE = "observation.environment_state"
IMAGE_PREFIX = "observation.images."
# SVT-AV1 (LeRobot's default codec) kills the process with SIGFPE on frames under 64 px.
AV1_MIN_SIDE = 64
INFO = "complementary_info."
WEIGHTS_FILE = "habc_weights.json"  # in the dataset's meta/
SOURCE_CODES = {name: i for i, name in enumerate(SOURCES)}


def _lerobot() -> Any:
    try:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset
    except ModuleNotFoundError as exc:
        raise UserError(
            f"LeRobot is not installed in this Python ({sys.executable}): run "
            "`make lerobot-env` and use .venv-lerobot/bin/habc-lerobot-dataset"
        ) from exc
    return LeRobotDataset


# --- export ---
def export_features(store: Any, weights: bool) -> dict[str, dict[str, Any]]:
    """LeRobot's feature table for a store (shapes from the store's manifest)."""
    keys = store.keys
    arms = int(keys[F.HUMAN]["shape"][0])
    feats: dict[str, dict[str, Any]] = {
        STATE: {"dtype": "float32", "shape": (store.dim(F.PROPRIO),), "names": None},
        "action": {"dtype": "float32", "shape": (store.dim(F.ACTION),), "names": None},
        "next.reward": {"dtype": "float32", "shape": (1,), "names": None},
        "next.done": {"dtype": "bool", "shape": (1,), "names": None},
        INFO + "is_intervention": {"dtype": "float32", "shape": (1,), "names": None},
        INFO + "is_intervention_arm": {
            "dtype": "float32",
            "shape": (arms,),
            "names": list(ARM_NAMES[:arms]),
        },
        INFO + "episode_success": {"dtype": "float32", "shape": (1,), "names": None},
        INFO + "source": {"dtype": "int64", "shape": (1,), "names": list(SOURCES)},
        INFO + "round": {"dtype": "int64", "shape": (1,), "names": None},
        INFO + "model_index": {"dtype": "int64", "shape": (1,), "names": None},
    }
    if F.ENV_STATE in keys:
        feats[ENV_STATE] = {"dtype": "float32", "shape": (store.dim(F.ENV_STATE),), "names": None}
    for cam in stored_cameras(store):
        h, w, c = keys[F.image_key(cam)]["shape"]
        feats[IMAGE_PREFIX + cam] = {
            "dtype": "video",
            "shape": (h, w, c),
            "names": ["height", "width", "channels"],
        }
    if weights:
        feats[INFO + "habc_weight"] = {"dtype": "float32", "shape": (1,), "names": None}
    return feats


def stored_cameras(store: Any) -> list[str]:
    return [c for c in CAMERA_NAMES if F.image_key(c) in store.keys]


def episode_frames(store: Any, i: int, weights: np.ndarray | None) -> list[dict[str, Any]]:
    """One stored episode as LeRobot frames (task included)."""
    e = store.episodes[i]
    proprio = np.asarray(store.array(F.PROPRIO, i), np.float32)
    action = np.asarray(store.array(F.ACTION, i), np.float32)
    human = np.asarray(store.array(F.HUMAN, i), bool)
    model_index = np.asarray(store.array(F.MODEL_INDEX, i), np.int64)
    env = (
        np.asarray(store.array(F.ENV_STATE, i), np.float32) if F.ENV_STATE in store.keys else None
    )
    images = {c: store.array(F.image_key(c), i) for c in stored_cameras(store)}
    t_len = len(action)
    success = e["outcome"] == "success"
    frames = []
    for t in range(t_len):
        last = t == t_len - 1
        frame: dict[str, Any] = {
            "task": e["task"],
            STATE: proprio[t],
            "action": action[t],
            "next.reward": np.array([float(success and last)], np.float32),
            "next.done": np.array([last]),
            INFO + "is_intervention": np.array([float(human[t].any())], np.float32),
            INFO + "is_intervention_arm": human[t].astype(np.float32),
            INFO + "episode_success": np.array([float(success)], np.float32),
            INFO + "source": np.array([SOURCE_CODES[e["source"]]], np.int64),
            INFO + "round": np.array([int(e["round"])], np.int64),
            INFO + "model_index": np.array([int(model_index[t])], np.int64),
        }
        if env is not None:
            frame[ENV_STATE] = env[t]
        for cam, frames_of_cam in images.items():
            frame[IMAGE_PREFIX + cam] = np.asarray(frames_of_cam[t])
        if weights is not None:
            frame[INFO + "habc_weight"] = np.array([weights[t]], np.float32)
        frames.append(frame)
    return frames


def export_store(
    store_root: Path,
    out: Path,
    repo_id: str,
    *,
    weights_from: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the store as a LeRobotDataset under `out`; returns a summary."""
    from habc_trainer.store import EpisodeStore

    if out.exists():
        raise UserError(f"--out {str(out)!r}: exists; LeRobot writes a new dataset directory")
    store = EpisodeStore(store_root)
    if len(store) == 0:
        raise UserError(f"--store {str(store_root)!r}: holds no episodes")
    frame_weights = None
    if weights_from is not None:
        from habc_trainer.frame_weights import store_frame_weights  # torch: only when asked

        frame_weights = store_frame_weights(store, weights_from)
    fps = {int(round(float(e["control_hz"]))) for e in store.episodes}
    if len(fps) != 1:
        raise UserError(f"--store: episodes at several control rates {sorted(fps)} Hz")
    LeRobotDataset = _lerobot()
    from lerobot.configs.video import RGBEncoderConfig

    sides = [min(store.keys[F.image_key(c)]["shape"][:2]) for c in stored_cameras(store)]
    small = bool(sides) and min(sides) < AV1_MIN_SIDE
    ds = LeRobotDataset.create(
        repo_id=repo_id,
        fps=fps.pop(),
        features=export_features(store, frame_weights is not None),
        root=out,
        robot_type=str(store.episodes[0]["robot"]),
        use_videos=True,
        rgb_encoder=RGBEncoderConfig(vcodec="h264") if small else None,
    )
    keyed: dict[int, float] = {}
    index = 0
    episodes = range(len(store))
    if progress:
        from tqdm import tqdm

        episodes = tqdm(episodes, desc="export", unit="episode")
    for i in episodes:
        w = None if frame_weights is None else frame_weights[i]
        for frame in episode_frames(store, i, w):
            ds.add_frame(frame)
            if w is not None:
                keyed[index] = float(frame[INFO + "habc_weight"][0])
            index += 1
        ds.save_episode()
    ds.finalize()
    if frame_weights is not None:
        (out / "meta" / WEIGHTS_FILE).write_text(
            json.dumps({"checkpoint": str(weights_from), "by_index": keyed})
        )
    return {"episodes": len(store), "frames": index, "out": str(out)}


# --- import ---
@dataclass(frozen=True)
class ImportConfig:
    """How a LeRobotDataset's features become store arrays."""

    cameras: tuple[str, ...] = ()  # our camera names, in the store
    camera_keys: tuple[str, ...] = ()  # the dataset's image features, one per camera
    image_size: int = 96
    arms: int = 2
    action_space: str = "ee"
    task: str | None = None  # None: the dataset's own task of each frame

    def __post_init__(self) -> None:
        if len(self.camera_keys) != len(self.cameras):
            raise ValueError(
                f"--camera-map: one dataset image key per camera {list(self.cameras)}, "
                f"got {list(self.camera_keys)}"
            )
        unknown = [c for c in self.cameras if c not in CAMERA_NAMES]
        if unknown:
            raise ValueError(f"--cameras: unknown {unknown}; valid: {list(CAMERA_NAMES)}")
        if self.action_space not in MODE_BY_SPACE:
            raise ValueError(f"--action-space: {self.action_space!r} not in {list(MODE_BY_SPACE)}")
        if not 1 <= self.arms <= len(ARM_NAMES):
            raise ValueError(f"--arms: expected 1..{len(ARM_NAMES)}, got {self.arms}")


def _image_hwc(value: Any, size: int) -> np.ndarray:
    """A LeRobot frame (C, H, W) float in [0, 1] -> (size, size, 3) uint8, area-resized."""
    a = np.asarray(value)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = np.moveaxis(a, 0, -1)
    if a.dtype != np.uint8:
        a = np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    if a.shape[:2] != (size, size):
        a = cv2.resize(a, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(a)


def dataset_episodes(ds: Any, cfg: ImportConfig) -> list[tuple[int, list[dict[str, Any]]]]:
    """(episode index, frames) for every episode of a LeRobotDataset, frames in order."""
    by_episode: dict[int, list[dict[str, Any]]] = {}
    for k in range(len(ds)):
        item = ds[k]
        by_episode.setdefault(int(item["episode_index"]), []).append(item)
    for frames in by_episode.values():
        frames.sort(key=lambda f: int(f["frame_index"]))
    return sorted(by_episode.items())


def to_store_episode(
    root: Path,
    episode_index: int,
    frames: Sequence[Mapping[str, Any]],
    cfg: ImportConfig,
    fps: int,
) -> Any:
    """One dataset episode as a store Episode of demonstrations (D_SFT)."""
    from habc_trainer.episode_types import Episode, EpisodeInfo

    t_len = len(frames)
    action = np.stack([np.asarray(f["action"], np.float32) for f in frames])
    if action.shape[1] % cfg.arms:
        raise UserError(f"--arms {cfg.arms}: action has {action.shape[1]} dims, not a multiple")
    arrays = {
        F.PROPRIO: np.stack([np.asarray(f[STATE], np.float32) for f in frames]),
        F.ACTION: action,
        F.HUMAN: np.zeros((t_len, cfg.arms), bool),
        F.SAFETY: np.zeros((t_len, cfg.arms), np.uint8),
        F.MODEL_INDEX: np.full(t_len, -1, np.int64),
        F.TIMESTAMP_NS: np.array(
            [int(round(float(f["timestamp"]) * 1e9)) for f in frames], np.int64
        ),
    }
    for cam, key in zip(cfg.cameras, cfg.camera_keys, strict=True):
        arrays[F.image_key(cam)] = np.stack([_image_hwc(f[key], cfg.image_size) for f in frames])
    task = cfg.task or str(frames[0]["task"])
    info = EpisodeInfo(
        episode_id=f"lerobot_{episode_index:06d}",
        task=task,
        source="demo",
        outcome="success",
        outcome_from="default",
        round=0,
        model_index=-1,
        robot="lerobot_import",
        control_hz=float(fps),
        t_max_steps=t_len,
        intervened=False,
        truncated=False,
        dropped_leading_frames=0,
        bag_dir=str(root / f"episode_{episode_index:06d}"),
        provenance=[f"imported from the LeRobotDataset at {root}, episode {episode_index}"],
    )
    mode = MODE_BY_SPACE[cfg.action_space]
    return Episode(info, arrays, action_arm_dims=action.shape[1] // cfg.arms, action_mode=mode)


def import_dataset(dataset_root: Path, store_root: Path, cfg: ImportConfig) -> dict[str, Any]:
    """Append every episode of a LeRobotDataset to a store as demonstrations."""
    from habc_trainer.episode import ExtractConfig
    from habc_trainer.store import StoreWriter

    LeRobotDataset = _lerobot()
    if not (dataset_root / "meta" / "info.json").is_file():
        raise UserError(
            f"--dataset {str(dataset_root)!r}: no meta/info.json (not a LeRobotDataset)"
        )
    ds = LeRobotDataset(repo_id=dataset_root.name, root=dataset_root)
    missing = [k for k in (STATE, "action", *cfg.camera_keys) if k not in ds.features]
    if missing:
        raise UserError(f"--dataset: no feature {missing}; it has {sorted(ds.features)}")
    extract = ExtractConfig(cameras=cfg.cameras, image_size=cfg.image_size).fingerprint()
    frames_total = 0
    with StoreWriter(store_root, extract) as writer:
        for k, frames in dataset_episodes(ds, cfg):
            episode = to_store_episode(dataset_root, k, frames, cfg, int(ds.fps))
            writer.add(episode, [[str(dataset_root.resolve()), k, len(frames)]])
            frames_total += len(frames)
    return {"episodes": len(ds.meta.episodes), "frames": frames_total, "store": str(store_root)}


# --- command line ---
def _parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description="episode store <-> LeRobotDataset v3")
    sub = p.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="write a store as a LeRobotDataset")
    ex.add_argument("--store", type=Path, required=True)
    ex.add_argument("--out", type=Path, required=True, help="new dataset directory")
    ex.add_argument("--repo-id", default="habc/episodes", help="the dataset's repo id")
    ex.add_argument("--weights-from", type=Path, help="checkpoint whose critic weights frames")
    ex.add_argument("--no-progress", action="store_true")
    im = sub.add_parser("import", help="append a LeRobotDataset's demos to a store")
    im.add_argument("--dataset", type=Path, required=True)
    im.add_argument("--store", type=Path, required=True)
    im.add_argument("--cameras", default="", help="our camera names, comma-separated")
    im.add_argument(
        "--camera-map",
        default="",
        help="the dataset's image keys for --cameras, comma-separated "
        "(default: observation.images.<camera>)",
    )
    im.add_argument("--image-size", type=positive_int, default=96)
    im.add_argument("--arms", type=positive_int, default=2)
    im.add_argument("--action-space", default="ee")
    im.add_argument("--task", default=None, help="prompt for every episode (default: dataset's)")
    for sp in (ex, im):
        sp.error = p.error  # one-line errors from the sub-commands too
    return p


def main(argv: Sequence[str] | None = None) -> int:
    with user_errors(PROG):
        args = _parser().parse_args(argv)
        if args.command == "export":
            summary = export_store(
                args.store,
                args.out,
                args.repo_id,
                weights_from=args.weights_from,
                progress=not args.no_progress,
            )
        else:
            cameras = tuple(c for c in args.cameras.split(",") if c)
            keys = tuple(k for k in args.camera_map.split(",") if k) or tuple(
                IMAGE_PREFIX + c for c in cameras
            )
            cfg = ImportConfig(
                cameras=cameras,
                camera_keys=keys,
                image_size=args.image_size,
                arms=args.arms,
                action_space=args.action_space,
                task=args.task,
            )
            summary = import_dataset(args.dataset, args.store, cfg)
    print(f"{PROG} {args.command}: {json.dumps(summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
