#!/usr/bin/env bash
# The LeRobot venv: Python 3.12 + LeRobot + habc_core / habc_trainer from this tree. Idempotent:
# reinstalls only when scripts/requirements-lerobot.txt changed.
#   bash scripts/lerobot_env.sh            # -> .venv-lerobot (override: HABC_LEROBOT_VENV)
#   make test-lerobot                      # its tests: src/habc_trainer/test/test_lerobot_*.py
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HABC_LEROBOT_VENV:-$ROOT/.venv-lerobot}"
REQ="$ROOT/scripts/requirements-lerobot.txt"
log() { printf 'lerobot-env: %s\n' "$*" >&2; }

find_python() {
  for py in "${HABC_LEROBOT_PYTHON:-}" python3.12 python3.13 /root/.pyenv/versions/3.12*/bin/python; do
    [ -n "$py" ] || continue
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      command -v "$py"; return 0
    fi
  done
  return 1
}

if [ ! -x "$VENV/bin/python" ]; then
  PY="$(find_python)" || { log "error: no Python >= 3.12 found (set HABC_LEROBOT_PYTHON)"; exit 2; }
  log "creating $VENV with $PY"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.habc-requirements"
want="$(sha256sum "$REQ" | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "pip install -r scripts/requirements-lerobot.txt (first time: several GB)"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -r "$REQ"
  echo "$want" >"$stamp"
fi
# The workspace's pure-Python packages from the source tree (no ROS runtime needed by these).
site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
printf '%s\n' "$ROOT/src/habc_core" "$ROOT/src/habc_trainer" >"$site/habc_workspace.pth"
"$VENV/bin/python" -c 'import lerobot, habc_trainer.store; print("lerobot", lerobot.__version__)' >&2
log "ready: $VENV"
