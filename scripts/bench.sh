#!/usr/bin/env bash
# Every benchmark under bench/: speed and peak memory, printed, never pass/fail.
set -euo pipefail
for b in bench/bench_*.py; do
  printf '\n=== %s\n' "$b"
  python "$b"
done
