# ruff: noqa: E501 - the mutants are exact source lines
"""Loosen each safety bound or remove each safety check, one at a time, and run the safety tests.

Every mutant must turn a test red ("killed"); one that passes ("survived") is a bound nothing
pins. The mutants are single edits derived from what docs/nodes.md promises ("Safety bounds").
Each runs in a private copy of the source tree (src/, config/, tests/, faults/), so the checkout
and anything else running from it are never touched.

    python scripts/check_safety_mutants.py                # every mutant, ~10 min on 2 cores
    python scripts/check_safety_mutants.py --only watchdog
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DRIVER = "src/arx_x5_driver/arx_x5_driver/"
CONTROL = "src/habc_control/habc_control/"

# The default-suite tests that make up the safety surface (docs/nodes.md lists them).
SAFETY_TESTS = (
    "src/arx_x5_driver/test/test_safety_bounds.py",
    "src/arx_x5_driver/test/test_safety.py",
    "src/arx_x5_driver/test/test_driver_core.py",
    "src/arx_x5_driver/test/test_arm_node.py",
    "src/habc_control/test/test_authority_bounds.py",
    "src/habc_control/test/test_authority.py",
    "src/habc_control/test/test_pedal.py",
    "src/habc_control/test/test_teleop.py",
    "src/habc_control/test/test_command_mux.py",
    "src/habc_control/test/test_chunk_executor.py",
    "tests/test_safety_config.py",
    "tests/test_faults.py",
)


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str


M = Mutant
MUTANTS = (
    # --- the arm driver's safety core
    M("watchdog x10", DRIVER + "safety.py", "watchdog_s: float = 0.25", "watchdog_s: float = 2.5"),
    M(
        "joint step x10",
        DRIVER + "safety.py",
        "max_joint_step: float = 0.06",
        "max_joint_step: float = 0.6",
    ),
    M(
        "EE step x10",
        DRIVER + "safety.py",
        "max_ee_step: float = 0.015",
        "max_ee_step: float = 0.15",
    ),
    M(
        "rotation step x10",
        DRIVER + "safety.py",
        "max_rot_step: float = 0.10",
        "max_rot_step: float = 1.0",
    ),
    M(
        "gripper step x10",
        DRIVER + "safety.py",
        "max_gripper_step: float = 0.01",
        "max_gripper_step: float = 0.1",
    ),
    M(
        "joint margin 0",
        DRIVER + "safety.py",
        "joint_margin: float = 0.05",
        "joint_margin: float = 0.0",
    ),
    M(
        "joint 1 max +1 rad",
        DRIVER + "safety.py",
        "X5_JOINT_MAX = (2.618,",
        "X5_JOINT_MAX = (3.618,",
    ),
    M(
        "joint 3 min -1 rad",
        DRIVER + "safety.py",
        "X5_JOINT_MIN = (-3.14, -0.05, -0.1,",
        "X5_JOINT_MIN = (-3.14, -0.05, -1.1,",
    ),
    M("workspace x 1.6 m", DRIVER + "safety.py", "(0.60, 0.45, 0.55)", "(1.60, 0.45, 0.55)"),
    M(
        "workspace z min -0.5 m",
        DRIVER + "safety.py",
        "(-0.05, -0.45, -0.05)",
        "(-0.05, -0.45, -0.5)",
    ),
    M("gripper max +0.1", DRIVER + "safety.py", "GRIPPER_MAX = 0.088", "GRIPPER_MAX = 0.188"),
    M(
        "gripper range clip removed",
        DRIVER + "safety.py",
        "g = float(np.clip(cmd.gripper, 0.0, GRIPPER_MAX))",
        "g = float(cmd.gripper)",
    ),
    M(
        "gripper step removed",
        DRIVER + "safety.py",
        "if abs(dg) > c.max_gripper_step:",
        "if False:",
    ),
    M(
        "joint limit clip removed",
        DRIVER + "safety.py",
        "clipped = np.clip(t, self._jmin, self._jmax)",
        "clipped = t",
    ),
    M(
        "joint step clamp removed",
        DRIVER + "safety.py",
        "if worst > c.max_joint_step:",
        "if False:",
    ),
    M(
        "workspace clip removed",
        DRIVER + "safety.py",
        "xyz = np.clip(t[:3], self._wmin, self._wmax)",
        "xyz = t[:3]",
    ),
    M("EE step clamp removed", DRIVER + "safety.py", "if dist > c.max_ee_step:", "if False:"),
    M(
        "rotation limit removed",
        DRIVER + "safety.py",
        "rot, rclamped = _limit_rotation(start.targets[3:9], t[3:9], c.max_rot_step)",
        "rot, rclamped = t[3:9], False",
    ),
    M(
        "watchdog check removed",
        DRIVER + "safety.py",
        "fresh = now - self._last_cmd_time <= self.config.watchdog_s",
        "fresh = True",
    ),
    M(
        "HOLD authority ignored",
        DRIVER + "safety.py",
        "if cmd is None or not fresh or cmd.authority == AUTHORITY_HOLD:",
        "if cmd is None or not fresh:",
    ),
    M(
        "non-finite command accepted",
        DRIVER + "safety.py",
        "if not np.all(np.isfinite(t)) or not np.isfinite(self.gripper):",
        "if False:",
    ),
    M(
        "tracking error x10",
        DRIVER + "safety.py",
        "tracking_error_max: float = 0.3",
        "tracking_error_max: float = 3.0",
    ),
    M(
        "tracking EE error x10",
        DRIVER + "safety.py",
        "tracking_error_ee_max: float = 0.08",
        "tracking_error_ee_max: float = 0.8",
    ),
    M(
        "tracking time x10",
        DRIVER + "safety.py",
        "tracking_error_s: float = 1.0",
        "tracking_error_s: float = 10.0",
    ),
    M("zero bound accepted", DRIVER + "safety.py", "if not getattr(self, name) > 0:", "if False:"),
    M(
        "negative margin accepted",
        DRIVER + "safety.py",
        "if getattr(self, name) < 0:",
        "if False:",
    ),
    M(
        "bool bound accepted",
        DRIVER + "safety.py",
        "if isinstance(value, bool) or not isinstance(value, int | float):",
        "if False:",
    ),
    M(
        "held arm ticked as requested",
        DRIVER + "driver_core.py",
        "        if arm in self._held:\n            safety.on_command(safety.hold_command(measured), now)\n",
        "",
    ),
    M(
        "request while held kept",
        DRIVER + "driver_core.py",
        "        if arm in self._held:\n            cmd = Command(cmd.mode, cmd.targets, cmd.gripper, AUTHORITY_HOLD)\n",
        "",
    ),
    M(
        "arm node ignores HOLD authority",
        DRIVER + "arm_node.py",
        "self.core.set_held(arm, auth == AUTHORITY_HOLD)",
        "self.core.set_held(arm, False)",
    ),
    M(
        "arm node accepts parameter changes",
        DRIVER + "ros_params.py",  # the driver's parameters are read-only in their descriptors
        "read_only=not self.dynamic",
        "read_only=False",
    ),
    # --- authority, pedal, teleop
    M(
        "debounce x10",
        CONTROL + "authority.py",
        "debounce_s: float = 0.03",
        "debounce_s: float = 0.3",
    ),
    M(
        "heartbeat x2",
        CONTROL + "authority.py",
        "heartbeat_s: float = 0.5",
        "heartbeat_s: float = 1.0",
    ),
    M(
        "authority timeout x10",
        CONTROL + "authority.py",
        "AUTHORITY_TIMEOUT_S = 2.0",
        "AUTHORITY_TIMEOUT_S = 20.0",
    ),
    M(
        "HOLD unlatched by switches",
        CONTROL + "authority.py",
        "            if current == Authority.HOLD:\n                continue",
        "            pass",
    ),
    M(
        "HOLD unlatched by requests",
        CONTROL + "authority.py",
        "if self._state[arm] == Authority.HOLD and authority != Authority.HOLD:\n            return []",
        "pass",
    ),
    M(
        "resume ignores a pressed switch",
        CONTROL + "authority.py",
        'held = self.config.mode == "hold" and self._debounce[arm].stable',
        "held = False",
    ),
    M(
        "stale authority not held",
        CONTROL + "authority.py",
        "        if self.stale(now):\n",
        "        if False:\n",
    ),
    # (AuthorityWatch's initial state is not mutated: before the first message `current()`
    # is stale and returns HOLD whatever that state says, so the edit changes nothing.)
    M(
        "heartbeat bound removed",
        CONTROL + "authority.py",
        "if not (0.0 < self.heartbeat_s <= 1.0):",
        "if not (0.0 < self.heartbeat_s):",
    ),
    M(
        "resume right after reconnect",
        CONTROL + "teleop.py",
        "resume_after_s: float = 1.0,",
        "resume_after_s: float = 0.0,",
    ),
    M(
        "pedal that cannot be opened: no HOLD",
        CONTROL + "teleop.py",
        '                changes = self.arbiter.hold_all(now, "pedal", str(exc))\n                first',
        "                changes = []\n                first",
    ),
    M(
        "pedal lost mid-use: no HOLD",
        CONTROL + "teleop.py",
        '            changes = self.arbiter.hold_all(now, "pedal", str(exc))\n            return TickResult(changes, f"{exc}: every arm HOLD until',
        '            changes = []\n            return TickResult(changes, f"{exc}: every arm HOLD until',
    ),
    M(
        "resume while the switch is pressed",
        CONTROL + "teleop.py",
        "            if any(levels.values()):\n                self._released_since = None\n            elif",
        "            if False:\n                pass\n            elif",
    ),
    M(
        "grab failure ignored",
        CONTROL + "pedal.py",
        'raise PedalLostError(f"pedal device {path} is grabbed elsewhere: {exc}") from exc',
        "pass",
    ),
    M("pedal not grabbed", CONTROL + "pedal.py", "grab: bool = True", "grab: bool = False"),
    M(
        "pedal read error ignored",
        CONTROL + "pedal.py",
        "            except OSError as exc:\n                self._lost(exc)\n            if ev is None:",
        "            except OSError:\n                break\n            if ev is None:",
    ),
    # --- the mux and the policy side
    M(
        "policy timeout x10",
        CONTROL + "command_mux.py",
        "POLICY_TIMEOUT_S = 0.5",
        "POLICY_TIMEOUT_S = 5.0",
    ),
    M(
        "policy timeout ticks x10",
        CONTROL + "command_mux.py",
        "policy_timeout_ticks: int = 15",
        "policy_timeout_ticks: int = 150",
    ),
    M(
        "stalled policy labelled POLICY",
        CONTROL + "command_mux.py",
        "if auth == Authority.POLICY and self.policy_stalled(arm):",
        "if False:",
    ),
    M(
        "no blend on takeover",
        CONTROL + "command_mux.py",
        "blend_steps: int = 15",
        "blend_steps: int = 0",
    ),
    M(
        "non-finite chunk accepted",
        CONTROL + "chunk_executor.py",
        "if not np.all(np.isfinite(actions)):",
        "if False:",
    ),
    M(
        "a failed inference still runs the chunk on",
        CONTROL + "chunk_executor.py",
        "        self._pending = None\n        self._extend = False",
        "        self._pending = None",
    ),
    M(
        "a hung inference runs the last row forever",
        CONTROL + "chunk_executor.py",
        "if not extending or self._cursor >= self._last() - _AT_LAST_ROW:",
        "if not extending:",
    ),
    M(
        "chunk from before a takeover accepted",
        CONTROL + "chunk_executor.py",
        "        if token != self._pending:\n            return False",
        "        if False:\n            return False",
    ),
    M(
        "chunk kept across a takeover",
        CONTROL + "chunk_executor.py",
        "        if regained:\n            self.invalidate()",
        "        if regained:\n            pass",
    ),
    M(
        "image timeout x10",
        CONTROL + "freshness.py",
        "IMAGE_TIMEOUT_S = 0.5",
        "IMAGE_TIMEOUT_S = 5.0",
    ),
    M(
        "stale images kept",
        CONTROL + "freshness.py",
        "{k: v for k, (v, t) in self._values.items() if now - t <= self.timeout_s}",
        "{k: v for k, (v, t) in self._values.items()}",
    ),
    M(
        "policy node feeds stale images",
        CONTROL + "policy_node.py",
        "self._images.fresh(now), self._env_state",
        "{k: v for k, (v, _t) in self._images._values.items()}, self._env_state",
    ),
    M(
        "collector blend default",
        CONTROL + "collect.py",
        "blend_steps: int = 15",
        "blend_steps: int = 0",
    ),
    M(
        "mux node authority timeout",
        CONTROL + "mux_node.py",
        "        AUTHORITY_TIMEOUT_S,\n"
        '        "no /control_authority this long -> every arm HOLD",\n'
        "        bounds=(0.1, AUTHORITY_TIMEOUT_S),",
        "        20.0,\n"
        '        "no /control_authority this long -> every arm HOLD",\n'
        "        bounds=(0.1, 100.0),",
    ),
    # --- the shipped graph profile
    M("rollout.yaml watchdog x10", "config/rollout.yaml", "watchdog_s: 0.25", "watchdog_s: 2.5"),
    M(
        "rollout.yaml joint step x10",
        "config/rollout.yaml",
        "max_joint_step: 0.06",
        "max_joint_step: 0.6",
    ),
    M(
        "rollout.yaml workspace x 1.6 m",
        "config/rollout.yaml",
        "workspace_max: [0.60, 0.45, 0.55]",
        "workspace_max: [1.60, 0.45, 0.55]",
    ),
    M(
        "rollout.yaml policy timeout x10",
        "config/rollout.yaml",
        "policy_timeout_s: 0.5",
        "policy_timeout_s: 5.0",
    ),
    M("rollout.yaml heartbeat x2", "config/rollout.yaml", "heartbeat_s: 0.5", "heartbeat_s: 1.0"),
    # --- the robot profile (an overlay: a bound it sets wins over the sim profile's)
    M(
        "rollout_robot.yaml watchdog x10",
        "config/rollout_robot.yaml",
        "    backend: arx5 ",
        "    watchdog_s: 2.5\n    backend: arx5 ",
    ),
    M(
        "rollout_robot.yaml policy timeout x10",
        "config/rollout_robot.yaml",
        "policy:\n  ros__parameters:\n",
        "command_mux:\n  ros__parameters:\n    policy_timeout_s: 5.0\n\npolicy:\n  ros__parameters:\n",
    ),
)


def copy_tree(dest: Path) -> None:
    for name in ("src", "config", "tests", "faults"):
        shutil.copytree(
            REPO / name,
            dest / name,
            symlinks=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
    for name in ("conftest.py", "pyproject.toml"):
        shutil.copy2(REPO / name, dest / name)


def environment(root: Path) -> dict[str, str]:
    """Imports and the graph config resolve to the private copy, messages to the build."""
    env = dict(os.environ)
    # Every Python package of the workspace (a src/<pkg>/setup.py), imported from the copy.
    names = sorted(d.name for d in (root / "src").iterdir() if (d / "setup.py").is_file())
    pkgs = [str(root / "src" / n) for n in names]
    keep = [
        p
        for p in env.get("PYTHONPATH", "").split(os.pathsep)
        if p and "/build/" not in p and not any(f"/install/{n}/" in p for n in names)
    ]
    env["PYTHONPATH"] = os.pathsep.join([str(root), *pkgs, *keep])
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(
        p
        for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep)
        if p and not p.endswith("/install/habc_control")
    )
    env["HABC_HUNG_TEST_S"] = "240"
    return env


def run_tests(root: Path, env: dict[str, str], timeout_s: float) -> tuple[bool, str]:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "-m",
        "not slow and not hardware",
        *SAFETY_TESTS,
    ]
    try:
        proc = subprocess.run(
            cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return False, "timed out"
    lines = [
        ln for ln in proc.stdout.splitlines() if ln.startswith("FAILED") or ln.startswith("ERROR")
    ]
    return proc.returncode == 0, (lines[0] if lines else proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="", help="run the mutants whose name contains this")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant run")
    args = p.parse_args(argv)
    chosen = [m for m in MUTANTS if args.only.lower() in m.name.lower()]
    if not chosen:
        p.error(f"--only: no mutant name contains {args.only!r}")
    with tempfile.TemporaryDirectory(prefix="habc-mutants-") as tmp:
        root = Path(tmp)
        copy_tree(root)
        env = environment(root)
        ok, why = run_tests(root, env, args.timeout)
        if not ok:
            print(f"the unmutated tree fails its safety tests: {why}", file=sys.stderr)
            return 2
        survived = []
        for i, m in enumerate(chosen, 1):
            target = root / m.path
            text = target.read_text()
            if text.count(m.old) != 1:
                print(
                    f"[{i}/{len(chosen)}] {m.name}: edit matches {text.count(m.old)} times in "
                    f"{m.path}: update the mutant",
                    file=sys.stderr,
                )
                return 2
            target.write_text(text.replace(m.old, m.new))
            start = time.monotonic()
            try:
                passed, why = run_tests(root, env, args.timeout)
            finally:
                target.write_text(text)
            verdict = "SURVIVED" if passed else "killed"
            print(
                f"[{i}/{len(chosen)}] {verdict:8s} {m.name} ({time.monotonic() - start:.0f} s)"
                + ("" if passed else f": {why}"),
                flush=True,
            )
            if passed:
                survived.append(m.name)
    print(
        f"{len(chosen) - len(survived)} of {len(chosen)} mutants killed"
        + (f"; survived: {survived}" if survived else "")
    )
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
