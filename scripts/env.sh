# Source me: puts the project's venv and built workspace on this shell's paths.
#   source scripts/env.sh            # runs the bootstrap first if needed (idempotent)
#   source scripts/env.sh --no-install
_habc_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "${1:-}" != "--no-install" ] && [ ! -d "$_habc_root/install" ]; then
  bash "$_habc_root/scripts/bootstrap.sh" || return 1
fi
export VIRTUAL_ENV="$_habc_root/.venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"
export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
# Fast DDS's DEFAULT transports (shared memory on one host, UDP between hosts), overridable.
# Not LARGE_DATA: its TCP channel aborted processes on participant teardown here
# (bench/bench_dds_churn.py); DEFAULT delivered every 1280x720 image at 30 Hz between two
# processes (bench/bench_dds_images.py).
export FASTDDS_BUILTIN_TRANSPORTS="${FASTDDS_BUILTIN_TRANSPORTS:-DEFAULT}"
export MUJOCO_GL="${MUJOCO_GL:-egl}"
export PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-$MUJOCO_GL}"
if [ -f "$_habc_root/install/local_setup.bash" ]; then
  # The generated setup scripts reference unset variables; they fail under `set -u`.
  _habc_had_u=0; case $- in *u*) _habc_had_u=1; set +u;; esac
  # shellcheck disable=SC1091
  source "$_habc_root/install/local_setup.bash"
  [ "$_habc_had_u" = 1 ] && set -u
  unset _habc_had_u
  # Console scripts of the ament_python packages (what `ros2 run <pkg> <exe>` would find).
  for _habc_bin in "$_habc_root"/install/*/lib/*/; do
    case ":$PATH:" in *":${_habc_bin%/}:"*) ;; *) PATH="${_habc_bin%/}:$PATH";; esac
  done
  unset _habc_bin
  export PATH
fi
unset _habc_root
