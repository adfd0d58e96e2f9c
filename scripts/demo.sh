#!/usr/bin/env bash
# The main job on the simulated rig, end to end and small enough for a laptop (a few minutes):
#   scripted demonstrations -> SFT round 0 -> the ROS rollout graph driving the sim rig with the
#   SFT checkpoint (pedal played by the simulated operator; recorded by the recorder node) ->
#   policy rollouts with operator takeovers (DDS-free collector) -> HABC round 1 on all of them
#   -> a short evaluation -> a summary of what went in and what came out.
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

step "1/7 scripted demonstrations (state mode)"
habc-collect --demos 12 --obs state --out "$DATA" --round 0 --seed 0

step "2/7 SFT round 0 ($STEPS gradient steps)"
train_round --config config/train_sim.yaml --data-root "$DATA" --ckpt-root "$CKPT" \
  --round 0 --method sft --set steps_per_round="$STEPS" checkpoint_every=100

step "3/7 the ROS rollout graph on the sim rig with the SFT checkpoint (2 recorded rollouts)"
# Arm driver (MuJoCo rig, safety core), teleop (left-arm takeover 3-5 s, the scripted expert's
# hands), command mux, policy node, episode manager, recorder: one process. Each episode starts
# from a seeded layout and ends when the task itself is done, with its verdict as the outcome.
habc-rollout backend=sim checkpoint="$CKPT/sft/round_000" data_root="$DATA" \
  arm_driver.camera_every=0 --episode "$TASK" --round 1 --seed 20000 --episodes 2 \
  --outcome sim --duration 20

step "4/7 rollouts of the SFT policy (DDS-free collector), simulated operator taking over"
habc-collect --rollouts 8 --obs state --policy "$CKPT/sft/round_000" --out "$DATA" --round 1 \
  --seed 10000

step "5/7 HABC round 1 (initialised from SFT) on demos + both runtimes' rollouts"
train_round --config config/train_sim.yaml --data-root "$DATA" --ckpt-root "$CKPT" \
  --round 1 --method habc --init "$CKPT/sft/round_000" --set steps_per_round="$STEPS" \
  checkpoint_every=100

step "6/7 evaluation on held-out seeds"
habc-collect --eval 6 --obs state --policy "$CKPT/habc/round_001" --out "$OUT/eval" --seed 900000

step "7/7 summary (bags in $DATA, checkpoints in $CKPT, evaluation in $OUT/eval)"
python scripts/demo_summary.py "$OUT"
