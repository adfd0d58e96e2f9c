"""The pouch task: randomised layout, milestones, success and unrecoverable-failure checks.

Modelled on the paper's Pencil Pouch: the left arm slides a spring-loaded lid open and holds it,
the right arm picks up a marker lying on the table and drops it into the pouch, then the lid is
closed. Milestones give partial progress; a slipped grasp or a lid that snaps shut can be retried;
a marker knocked off the table cannot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from habc_sim.config import TaskConfig
from habc_sim.rig import SimRig

MILESTONES: tuple[str, ...] = (
    "lid_opened",
    "marker_grasped",
    "marker_lifted",
    "marker_in_pouch",
    "lid_closed_on_marker",
)


@dataclass(frozen=True)
class Layout:
    """One episode's randomised initial object poses (world frame)."""

    marker_pos: np.ndarray  # (2,) xy on the table
    marker_yaw: float  # marker axis direction in the table plane
    pouch_pos: np.ndarray  # (3,) floor centre
    pouch_yaw: float  # long-axis direction; the lid opens along it


@dataclass(frozen=True)
class TaskState:
    lid_opening: float
    lid_open: bool
    lid_closed: bool
    marker_held: bool  # both right-hand pads on the marker
    marker_lifted: bool
    marker_in_pouch: bool
    knob_held: bool  # a left-hand pad on the knob with the gripper closed on it
    marker_on_table: bool  # resting on the table top (outside the pouch)
    off_table: bool  # unrecoverable
    success: bool


def sample_layout(cfg: TaskConfig, rng: np.random.Generator) -> Layout:
    u = rng.uniform
    return Layout(
        marker_pos=np.array([u(*cfg.marker_x), u(*cfg.marker_y)]),
        marker_yaw=float(u(*cfg.marker_yaw)),
        pouch_pos=np.array([u(*cfg.pouch_x), u(*cfg.pouch_y), 0.0]),
        pouch_yaw=float(np.pi / 2 + u(-cfg.pouch_yaw_jitter, cfg.pouch_yaw_jitter)),
    )


class PouchTask:
    def __init__(self, cfg: TaskConfig) -> None:
        self.cfg = cfg

    def evaluate(self, rig: SimRig) -> TaskState:
        sc = rig.cfg
        lid = rig.lid_opening()
        mpos = rig.marker_pos()
        ppos, prot = rig.pouch_pose()
        local = prot.T @ (mpos - ppos)
        axis_local = prot.T @ rig.marker_axis()
        half_l = sc.pouch_inner_length / 2
        # Both marker ends inside the tray and the marker below the rim.
        ends_x = abs(local[0]) + abs(axis_local[0]) * sc.marker_half_length
        ends_y = abs(local[1]) + abs(axis_local[1]) * sc.marker_half_length
        in_pouch = (
            ends_x <= half_l + 0.004
            and ends_y <= sc.pouch_inner_width / 2 + 0.004
            and local[2] < 0.005 + sc.pouch_wall_height
        )
        pairs = rig.contact_pairs()
        ha, hb = rig.touching("right", rig.marker_geom, pairs)
        held = ha and hb
        ka, kb = rig.touching("left", rig.knob_geom, pairs)
        knob_held = (ka or kb) and rig.gripper_target("left") < 0.02
        lifted = held and mpos[2] > sc.marker_radius + 0.02
        closed = lid < self.cfg.lid_closed_tol
        return TaskState(
            lid_opening=lid,
            lid_open=lid >= self.cfg.lid_open_min,
            lid_closed=closed,
            marker_held=held,
            marker_lifted=lifted,
            marker_in_pouch=bool(in_pouch),
            knob_held=bool(knob_held),
            marker_on_table=bool(abs(mpos[2] - sc.marker_radius) < 0.004 and not in_pouch),
            off_table=bool(mpos[2] < self.cfg.off_table_z),
            success=bool(in_pouch and closed and not held),
        )


class TaskMonitor:
    """Per-episode bookkeeping: milestones reached (monotone progress) and recoverable slips."""

    def __init__(self) -> None:
        self.reached: dict[str, int] = {}
        self.slips = 0
        self.lid_snaps = 0
        self._was_lifted = False
        self._was_open_held = False
        self._success_run = 0
        self.last_progress_tick = 0

    @property
    def progress(self) -> int:
        return len(self.reached)

    def update(self, tick: int, s: TaskState) -> None:
        before = self.progress
        flags = {
            "lid_opened": s.lid_open,
            "marker_grasped": s.marker_held,
            "marker_lifted": s.marker_lifted,
            "marker_in_pouch": s.marker_in_pouch and not s.marker_held,
            "lid_closed_on_marker": s.success,
        }
        for name, hit in flags.items():
            if hit and name not in self.reached:
                self.reached[name] = tick
        if self._was_lifted and not s.marker_held and not s.marker_in_pouch and s.marker_on_table:
            self.slips += 1
        if self._was_open_held and not s.knob_held and not s.marker_in_pouch and not s.lid_open:
            self.lid_snaps += 1
        self._was_lifted = s.marker_lifted or (self._was_lifted and not s.marker_on_table)
        self._was_open_held = s.knob_held and s.lid_open
        self._success_run = self._success_run + 1 if s.success else 0
        if self.progress > before:
            self.last_progress_tick = tick

    def succeeded(self, settle_ticks: int) -> bool:
        return self._success_run >= settle_ticks
