#!/usr/bin/env bash
# The main job on the simulated rig, end to end and small enough for a laptop (a few minutes):
#   scripted demonstrations -> SFT round 0 -> policy rollouts with operator takeovers -> HABC
#   round 1 -> the ROS rollout graph driving the sim rig with the new checkpoint (pedal played by
#   the simulated operator) -> a short evaluation.
# Everything lands under $DEMO_OUT (default out/demo). Run through `make demo`, or after
# `source scripts/env.sh`.
set -euo pipefail
OUT="${DEMO_OUT:-out/demo}"
DATA="$OUT/data"
CKPT="$OUT/ckpt"
STEPS="${DEMO_STEPS:-300}"
TASK="open the pouch, put the marker in it, and close the pouch"
rm -rf "$OUT"
mkdir -p "$OUT"

step() { printf '\n=== %s\n' "$*"; }

step "1/6 scripted demonstrations (state mode)"
collect --demos 12 --obs state --out "$DATA" --round 0 --seed 0

step "2/6 SFT round 0 ($STEPS gradient steps)"
train_round --config config/train_sim.yaml --data-root "$DATA" --ckpt-root "$CKPT" \
  --round 0 --method sft --set steps_per_round="$STEPS" checkpoint_every=100

step "3/6 rollouts of the SFT policy, simulated operator taking over on failures"
collect --rollouts 8 --obs state --policy "$CKPT/sft/round_000" --out "$DATA" --round 1 \
  --seed 10000

step "4/6 HABC round 1 (initialised from SFT)"
train_round --config config/train_sim.yaml --data-root "$DATA" --ckpt-root "$CKPT" \
  --round 1 --method habc --init "$CKPT/sft/round_000" --set steps_per_round="$STEPS" \
  checkpoint_every=100

step "5/6 the ROS rollout graph on the sim rig with the HABC checkpoint (one recorded episode)"
habc-rollout backend=sim checkpoint="$CKPT/habc/round_001" data_root="$OUT/ros_episodes" \
  --episode "$TASK" --duration 8 --outcome unknown

step "6/6 evaluation on held-out seeds"
collect --eval 6 --obs state --policy "$CKPT/habc/round_001" --out "$OUT/eval" --seed 900000

step "done: demos + rollouts in $DATA, checkpoints in $CKPT, ROS bag in $OUT/ros_episodes"
