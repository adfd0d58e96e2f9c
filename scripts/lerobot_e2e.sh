#!/usr/bin/env bash
# A LeRobot VLA through the whole loop on the simulated rig (`make lerobot-demo`):
#   pixel demos and rollouts with takeovers (collector, nodes' venv) -> a tiny random-init
#   SmolVLA trained SFT then HABC (LeRobot venv) -> served by the policy server (LeRobot venv)
#   -> one episode of the ROS rollout graph driven by it, recorded (nodes' venv).
# Everything lands under $E2E_OUT (default out/lerobot-e2e). A real run swaps the tiny SmolVLA
# for a LeRobot checkpoint directory (docs/bring-your-own-vla.md).
set -euo pipefail
OUT="${E2E_OUT:-out/lerobot-e2e}"
LR="${HABC_LEROBOT_VENV:-.venv-lerobot}/bin/python"
PORT="${E2E_PORT:-8799}"
STEPS="${E2E_STEPS:-2}"
TASK="open the pouch, put the marker in it, and close the pouch"
rm -rf "$OUT"
mkdir -p "$OUT"
step() { printf '\n=== %s\n' "$*"; }

step "1/5 pixel demos and rollouts with takeovers (collector)"
habc-collect --demos 3 --obs pixels --out "$OUT/data" --round 0 --seed 0
habc-collect --rollouts 2 --obs pixels --policy weak-expert --out "$OUT/data" --round 1 --seed 100

step "2/5 a tiny random-init SmolVLA (no download)"
"$LR" - "$OUT" <<'EOF'
import sys
from pathlib import Path

from habc_trainer.models.lerobot_tiny import write_tiny_smolvla

print(write_tiny_smolvla(Path(sys.argv[1]) / "smolvla", horizon=50, image_size=64))
EOF
cat >"$OUT/train.yaml" <<EOF
method: habc
model_preset: tiny
model_overrides:
  lerobot: $OUT/smolvla/policy
  cameras: [top, left_wrist, right_wrist]
  image_size: 64
  horizon: 50
  execute_steps: 25
batch_size: 4
steps_per_round: $STEPS
warmup_steps: 0
lr_warmup_steps: 0
checkpoint_every: $STEPS
log_every: 1
num_threads: 1
EOF

step "3/5 SFT round 0, then HABC round 1 ($STEPS steps each, LeRobot venv)"
for spec in "0 sft" "1 habc"; do
  set -- $spec
  "$LR" -m habc_trainer.train_round --config "$OUT/train.yaml" --data-root "$OUT/data" \
    --ckpt-root "$OUT/ckpt" --round "$1" --method "$2" --no-progress
done

step "4/5 the policy server on ws://127.0.0.1:$PORT (LeRobot venv)"
"$LR" -m habc_trainer.serve --checkpoint "$OUT/ckpt/habc/round_001" --port "$PORT" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
python - "$PORT" <<'EOF'
import sys
import time

from habc_core.policy_client import PolicyClient, PolicyServerError

client = PolicyClient(f"ws://127.0.0.1:{sys.argv[1]}")
deadline = time.monotonic() + 120
while True:
    try:
        print("served:", client.metadata())
        break
    except PolicyServerError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.5)
EOF

step "5/5 one episode of the ROS rollout graph driven by the served SmolVLA (recorded)"
habc-rollout backend=sim checkpoint="ws://127.0.0.1:$PORT" data_root="$OUT/rollouts" \
  policy.image_size=64 --episode "$TASK" --round 2 --seed 30000 --episodes 1 --outcome sim \
  --duration 10
habc-convert --data-root "$OUT/rollouts" --store "$OUT/rollouts_store" --cameras top \
  --image-size 64 --no-progress
python - "$OUT/rollouts_store" <<'EOF2'
import sys

import numpy as np

from habc_trainer.store import EpisodeStore

store = EpisodeStore(sys.argv[1])
index = np.asarray(store.array("model_index", 0))
human = np.asarray(store.array("human", 0)).any(axis=1)
served = int((index >= 0).sum())
print(
    f"recorded {len(index)} frames: {served} from the served policy (model_index "
    f"{sorted(set(index[index >= 0].tolist()))}), {int(human.sum())} under a human takeover"
)
if served == 0:
    sys.exit("no frame was driven by the served policy")
EOF2
