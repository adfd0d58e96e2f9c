"""Episode-level facts of one bag: its id, task, source and outcome, and where each came from.

episode-format.md "Outcome" and "Episode ids": the sidecar's facts when it belongs to this
recording, else the bag's START / END / RELABEL events, else the convert defaults; an outcome
only for a recording that reaches its end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from habc_core.bag_reader import BagContents
from habc_core.contract import (
    EPISODE_EVENTS_TOPIC,
    EVENT_END,
    EVENT_RELABEL,
    EVENT_START,
    OUTCOMES,
    SIDECAR_NAME,
    SOURCES,
    EpisodeMeta,
)
from habc_trainer.episode_types import EpisodeError, EpisodeInfo, ExtractConfig, Where


def episode_info(
    bag_dir: Path,
    bag: BagContents,
    sidecar: EpisodeMeta | None,
    events: list[tuple[int, Any]],
    last_ns: int | None,
    cfg: ExtractConfig,
    where: Where,
) -> EpisodeInfo:
    provenance = list(bag.notes)
    warnings: list[str] = []
    start = next((m for _t, m in events if m.event == EVENT_START), None)
    bag_id = start.episode_id if start is not None and start.episode_id else None
    closing = [m for _t, m in events if m.event in (EVENT_END, EVENT_RELABEL)]
    # One bag is one episode: an END of another episode says nothing about this one.
    foreign = [m for m in closing if bag_id and m.episode_id and m.episode_id != bag_id]
    if foreign:
        warnings.append(
            f"{len(foreign)} END/RELABEL event(s) of episode {foreign[0].episode_id!r} in the "
            f"bag of {bag_id!r} were ignored"
        )
    closing = [m for m in closing if not (bag_id and m.episode_id and m.episode_id != bag_id)]
    ends = [m for m in closing if m.outcome]
    # Without a START event, an END / RELABEL event still names the recording.
    recorded_id = bag_id or next((m.episode_id for m in closing if m.episode_id), None)
    episode_id = _checked_episode_id(bag_dir, sidecar, recorded_id, warnings)
    has_end = any(m.event == EVENT_END for m in closing)
    reaches_end = _reaches_end(bag, sidecar, has_end, last_ns)

    if sidecar is not None:
        info = EpisodeInfo(
            episode_id=episode_id,
            task=sidecar.task,
            source=sidecar.source,
            outcome=sidecar.outcome,
            outcome_from="sidecar",
            round=sidecar.round,
            model_index=sidecar.model_index,
            robot=sidecar.robot,
            control_hz=float(sidecar.control_hz),
            t_max_steps=sidecar.t_max_steps,
            intervened=sidecar.intervened,
            truncated=bag.truncated,
            dropped_leading_frames=0,
            bag_dir=str(bag_dir),
        )
        if reaches_end:
            provenance.append(f"outcome {sidecar.outcome} from the sidecar")
        else:
            info.outcome, info.outcome_from = "unknown", "truncated"
            lost = (sidecar.end_ns - last_ns) / 1e9 if last_ns is not None else float("nan")
            warnings.append(
                f"the sidecar says {sidecar.outcome}, not applied: the recovered recording stops "
                f"{lost:.3f}s before the sidecar's end_ns and holds no END event, so the "
                "outcome would label frames that are lost; stored as unknown"
            )
        info.provenance, info.warnings = provenance, warnings
        return info

    src_msg = start or (ends[-1] if ends else None)
    source = src_msg.source if src_msg is not None and src_msg.source else cfg.default_source
    task = src_msg.task if src_msg is not None and src_msg.task else cfg.default_task
    if source not in SOURCES:
        raise where(
            EPISODE_EVENTS_TOPIC,
            None,
            f"no sidecar and no usable START event (source {source!r}); pass a default source",
        )
    if not task:
        raise where(
            EPISODE_EVENTS_TOPIC, None, "no sidecar and no task in the events; pass a default task"
        )
    outcome, outcome_from = "unknown", "default"
    if not reaches_end:
        # The recording lost its end: an outcome describes frames that are gone.
        outcome_from = "truncated"
        provenance.append("no sidecar and no END event in the recovered data: outcome unknown")
    elif ends:
        outcome, outcome_from = ends[-1].outcome, "event"
        kind = "END" if ends[-1].event == EVENT_END else "RELABEL"
        provenance.append(f"outcome {outcome} from the {kind} event (no sidecar)")
    else:
        provenance.append("no sidecar and no END event with an outcome: outcome unknown")
    if outcome not in OUTCOMES:
        raise where(EPISODE_EVENTS_TOPIC, None, f"invalid outcome {outcome!r}")
    return EpisodeInfo(
        episode_id=episode_id,
        task=task,
        source=source,
        outcome=outcome,
        outcome_from=outcome_from,
        round=int(src_msg.round) if src_msg is not None else 0,
        model_index=int(src_msg.model_index) if src_msg is not None else -1,
        robot="unknown",
        control_hz=0.0,  # estimated from the command ticks below
        t_max_steps=0,
        intervened=False,
        truncated=bag.truncated,
        dropped_leading_frames=0,
        bag_dir=str(bag_dir),
        provenance=provenance,
        warnings=warnings,
    )


def _checked_episode_id(
    bag_dir: Path, sidecar: EpisodeMeta | None, bag_id: str | None, warnings: list[str]
) -> str:
    """The episode's id, after checking that the sidecar belongs to this bag.

    `bag_id` is the id the recording's own events carry (START, else END / RELABEL). The sidecar
    carries the outcome, so a sidecar of another episode (copied, or a bag moved under another
    episode's folder) would mislabel this one: it is an error when its id disagrees with the
    bag's events, or, without events, with the folder name. A folder renamed after recording
    (sidecar and events agree) is accepted with a warning.
    """
    folder = bag_dir.name
    sidecar_file = bag_dir / SIDECAR_NAME
    if sidecar is not None:
        if bag_id is not None and sidecar.episode_id != bag_id:
            raise EpisodeError(
                f"{sidecar_file}: episode_id mismatch: the sidecar says "
                f"{sidecar.episode_id!r}, the bag's events say {bag_id!r} (folder "
                f"{folder!r}); the sidecar's outcome would label another episode's recording. "
                "Put this episode's own episode.yaml here, or remove it to use the bag's events"
            )
        if bag_id is None and sidecar.episode_id != folder:
            raise EpisodeError(
                f"{sidecar_file}: episode_id mismatch: the sidecar says "
                f"{sidecar.episode_id!r}, its folder is {folder!r}, and the bag has no START / "
                "END event to tell which is right; a sidecar copied from another episode would "
                "mislabel this one. Fix episode_id in episode.yaml or rename the folder"
            )
        if sidecar.episode_id != folder:
            warnings.append(
                f"folder {folder!r} is not the episode_id {sidecar.episode_id!r} its sidecar and "
                "events agree on (a renamed folder?); stored under the sidecar's id"
            )
        return sidecar.episode_id
    if bag_id is not None and bag_id != folder:
        warnings.append(
            f"folder {folder!r} holds the recording of episode {bag_id!r} (its events); stored "
            "under the events' id"
        )
    return bag_id or folder


def _reaches_end(
    bag: BagContents, sidecar: EpisodeMeta | None, has_end: bool, last_ns: int | None
) -> bool:
    """Whether the data read holds the episode's end (so an outcome may describe it)."""
    if not bag.truncated or has_end:
        return True
    if bag.recovery is not None and bag.recovery.data_complete:
        return True  # only the summary / index after the data was lost
    if sidecar is None or last_ns is None:
        return False
    # A bag without events: its data reaches the sidecar's end (within one and a half periods).
    return last_ns >= sidecar.end_ns - 1.5e9 / float(sidecar.control_hz)
