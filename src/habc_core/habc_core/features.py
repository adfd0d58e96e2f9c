"""Feature keys shared by the episode store, the sample streams and the models.

One place for every key string (no bare keys elsewhere). Shapes use: T frames in an episode,
H chunk horizon, D action dims, P proprio dims, S env-state dims, A arms, C cameras.
"""

from __future__ import annotations

ARM_NAMES: tuple[str, ...] = ("left", "right")
CAMERA_NAMES: tuple[str, ...] = ("top", "left_wrist", "right_wrist")

# --- per-frame arrays in the episode store (length T along axis 0) ---
PROPRIO = "proprio"  # (T, P) float32: EE pose (xyz + 6-D rot) + gripper per arm, or joints
ACTION = "action"  # (T, D) float32: executed command at t, in the policy's action space
HUMAN = "human"  # (T, A) bool: arm under HUMAN authority at t
ENV_STATE = "env_state"  # (T, S) float32: privileged sim state (state-mode experiments only)
MODEL_INDEX = "model_index"  # (T,) int64: actor gradient step that produced the action (-1 human)
TIMESTAMP_NS = "timestamp_ns"  # (T,) int64: control tick time
SAFETY = "safety"  # (T, A) uint8: contract SAFETY_* bits of each arm's executed command at t
# (T, D) float32: per arm the mux's newest request at or before that arm's executed command
# (layout of `action`); NaN rows before the arm's first request.
REQUESTED_ACTION = "requested_action"
# Per-frame keys that some episodes lack (bags recorded without /<arm>_arm/command_request); the
# store records per episode which of them it holds.
OPTIONAL_KEYS: tuple[str, ...] = (REQUESTED_ACTION,)


def image_key(camera: str) -> str:
    """(T, h, w, 3) uint8 RGB at the training resolution."""
    return f"images.{camera}"


# --- window samples (one per anchor frame t; batches add a leading B axis) ---
OBS_PREFIX = "obs."  # obs.<per-frame key> at t, e.g. obs.proprio (P,), obs.images.top (h, w, 3)
NEXT_OBS_PREFIX = "next_obs."  # same keys at t + stride (s_{t+1}), clipped at the last frame
TASK = "task"  # str prompt (batches: list[str])
TASK_ID = "task_id"  # int64 index of the prompt in the store's task table
ACTIONS = "actions"  # (H, D) float32 chunk a_{t:t+H}, zero-padded past the episode end
ACTION_VALID = "action_valid"  # (H,) bool: chunk step inside the episode
INTERVENTION_MASK = "intervention_mask"  # (H, D) bool: M^int, dims of the arm(s) a human drove
SOURCE = "source"  # int64: SOURCE_DEMO / SOURCE_ROLLOUT
OUTCOME_LABEL = "outcome_label"  # float32: 1 / 0 on outcome-labeled policy frames, NaN elsewhere
INTERVENTION_WINDOW = "intervention_window"  # bool: window holds >= min_human_steps human frames
EFFICIENCY_TARGET = "efficiency_target"  # bool: supervises V_e (successful episodes)
TERMINAL_SUCCESS = "terminal_success"  # bool: d_t = 1, the terminal step of a success
EPISODE_SUCCESS = "episode_success"  # bool: the episode's outcome is success
EPISODE_DONE = "episode_done"  # bool: t is the episode's last frame
REWARD = "reward"  # float32: parent value head reward r_t (spec §7)
MC_RETURN = "mc_return"  # float32: R_t, discounted return from t (spec §7)
STEPS_TO_END = "steps_to_end"  # int64: T - 1 - t
EPISODE_INDEX = "episode_index"  # int64
FRAME_INDEX = "frame_index"  # int64: t

SOURCE_DEMO = 0
SOURCE_ROLLOUT = 1
