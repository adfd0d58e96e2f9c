#!/usr/bin/env bash
# Every benchmark under bench/: speed and peak memory, printed, never pass/fail. Each headline
# figure (a `FIGURE | ...` line, bench/figures.py) is gathered into a summary at the end, next to
# its bound or peer. The full output is kept in $BENCH_LOG (default out/bench/bench.log).
set -euo pipefail
LOG="${BENCH_LOG:-out/bench/bench.log}"
mkdir -p "$(dirname "$LOG")"
: >"$LOG"

# The conversion bound of issue 17 is about 640x480 JPEG three-camera episodes.
args_for() {
  case "$1" in
    bench/bench_convert.py) echo "--episodes 16 --compressed --image-hw 480 640" ;;
    *) echo "" ;;
  esac
}

for b in bench/bench_*.py; do
  printf '\n=== %s %s\n' "$b" "$(args_for "$b")" | tee -a "$LOG"
  # shellcheck disable=SC2046  # the arguments are meant to split
  python "$b" $(args_for "$b") 2>&1 | tee -a "$LOG"
done

printf '\n=== summary: each figure next to its bound (full output: %s)\n' "$LOG"
grep '^FIGURE |' "$LOG" | sed 's/^FIGURE | //' || echo "(no figures)"
