#!/usr/bin/env bash
# Controlled round-1 arms of HABC, one factor changed each (docs/round1-study.md): from a finished
# benchmark seed's SFT checkpoint on HABC's round-1 store, train HABC with the gate off
# (g = 1: warmup_steps = steps_per_round), with half the batch from demos, with both, and with
# the intervention stream left out; evaluate every arm (and the benchmark's own round-1 cells) on
# 100 held-out layouts after the benchmark's 50.
#
#   bash scripts/round1_isolation.sh out/benchmark/cpu 0 [WORK_DIR]
set -euo pipefail
OUT=${1:?benchmark out dir, e.g. out/benchmark/cpu}
SEED=${2:?protocol seed}
WORK=${3:-$OUT/round1_isolation/seed_$SEED}
S=$OUT/state/seed_$SEED
CK=$S/ckpt
mkdir -p "$WORK"

arm() {
  local name=$1; shift
  [ -d "$WORK/$name/habc/round_001" ] || train_round --config config/train_sim.yaml \
    --data-root "$WORK" --store "$S/store/habc" --no-convert --ckpt-root "$WORK/$name" --round 1 \
    --init "$CK/sft/round_000" --method habc --no-progress \
    --set seed="$SEED" num_threads=1 steps_per_round=300 "$@" > "$WORK/$name.log" 2>&1
}
arm habc
arm no_gate warmup_steps=300
arm demos50 "batch_mix=[0.5,0.25,0.25]"
arm demos50_no_gate "batch_mix=[0.5,0.25,0.25]" warmup_steps=300
arm no_int_no_gate "batch_mix=[0.5,0.0,0.5]" warmup_steps=300

printf '| arm | trials 0-49 | trials 50-149 | all |\n| --- | --- | --- | --- |\n'
for pair in "SFT r0:$CK/sft/round_000" "control r1:$CK/sft_continued/sft/round_001" \
    "filtered BC r1:$CK/filtered_bc/round_001" "Imit-DAgger r1:$CK/imit_dagger/round_001" \
    "HABC r1 (benchmark):$CK/habc/round_001" "HABC r1 (retrained):$WORK/habc/habc/round_001" \
    "no gate:$WORK/no_gate/habc/round_001" "demos 50 %:$WORK/demos50/habc/round_001" \
    "demos 50 %, no gate:$WORK/demos50_no_gate/habc/round_001" \
    "no D_int, no gate:$WORK/no_int_no_gate/habc/round_001"; do
  name=${pair%%:*}; ck=${pair#*:}
  tag=$(echo "$name" | tr -c 'A-Za-z0-9' '_')
  for first in 9000000 9000050; do
    n=$([ $first = 9000000 ] && echo 50 || echo 100)
    [ -f "$WORK/eval_${tag}_$first.json" ] || habc-evaluate "$ck" --trials $n --seed $first --quiet \
      --json "$WORK/eval_${tag}_$first.json" > /dev/null
  done
  python3 - "$name" "$WORK/eval_${tag}_9000000.json" "$WORK/eval_${tag}_9000050.json" <<'PY'
import json, sys
a, b = (json.load(open(p))["summary"] for p in sys.argv[2:])
s, n = a["successes"] + b["successes"], a["n"] + b["n"]
print(f"| {sys.argv[1]} | {a['successes']}/{a['n']} | {b['successes']}/{b['n']} | {s}/{n} = {100 * s / n:.0f} % |")
PY
done
