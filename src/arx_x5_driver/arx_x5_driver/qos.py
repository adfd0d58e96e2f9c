"""The QoS of every stream of the rig, one profile per kind (the table in docs/nodes.md).

Lives in arx_x5_driver, the lowest package with nodes, so the driver and the habc_control nodes
cannot disagree: a RELIABLE subscription never matches a BEST_EFFORT publisher, and a
TRANSIENT_LOCAL subscription never matches a VOLATILE one.
"""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy


def _profile(depth: int, reliable: bool = True, latched: bool = False) -> QoSProfile:
    return QoSProfile(
        depth=depth,
        history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


# /control_authority: latched, so a late subscriber (recorder, mux, policy, driver) gets the
# current state at once.
AUTHORITY_QOS = _profile(1, latched=True)
# Arm commands (requests, mux inputs, the executed command) for a node that acts on them: only
# the newest matters; a backlog of older targets would be executed late.
COMMAND_QOS = _profile(1)
# The policy node's row per tick into the mux: each row is used once and in order, and one may
# land just before or just after the mux's tick: as deep as the mux's FIFO of rows (3).
POLICY_ROW_QOS = _profile(3)
# Joint states and EE poses: the graph's clock; a short queue so a busy tick loses none.
STATE_QOS = _profile(10)
# Image publishers: reliable for subscribers that ask for it, depth 1 (the newest frame).
IMAGE_PUB_QOS = _profile(1)
# Image subscriptions: best effort (sensor data), which matches a RELIABLE publisher and the
# BEST_EFFORT one camera drivers (realsense2_camera) commonly offer. The policy wants the newest
# frame; the recorder keeps a few so that a slow write does not drop one.
IMAGE_SUB_QOS = _profile(1, reliable=False)
RECORD_IMAGE_QOS = _profile(10, reliable=False)
# Everything the recorder writes besides images: every message, in order.
RECORD_QOS = _profile(50)
# Action chunks: the newest chunk replaces any older one.
CHUNK_QOS = _profile(1)
# /episode/events: every START / END / RELABEL must arrive (not latched: a late recorder must
# not start an episode that began before it).
EVENTS_QOS = _profile(20)
