"""EE pose -> joint targets with the ARX SDK's own solver, plus the limit check it lacks.

`Arx5Solver.inverse_kinematics` can report success with a joint past its limit (seen: joint 4
at -1.857), so every solution is clamped to the SDK limits; a clamped or unconverged solution is
checked by FK against the target, and a far miss is reported, never silently executed as
something else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from habc_core.rotations import matrix_from_rpy, pose6_from_xyz_matrix
from habc_sim.model import quiet_native_output, sdk_limits


@dataclass(frozen=True)
class IkResult:
    q: np.ndarray  # (6,) joint targets inside the SDK limits
    ok: bool  # solver converged and the clamped solution reaches the target
    pos_error: float  # m, FK(q) vs target (0 when the solver converged without clamping)
    rot_error: float  # Frobenius norm of R(q) - R_target (likewise)
    clamped: bool  # a joint had to be pulled back inside its limit


class ArmIk:
    """One arm's IK in its base frame (the SDK's base_link frame)."""

    def __init__(self, pos_tol: float = 0.01, rot_tol: float = 0.1) -> None:
        import arx5_interface as arx5  # the SDK's IK solver, loaded with the first arm

        lim = sdk_limits()
        self.q_min = lim.joint_pos_min
        self.q_max = lim.joint_pos_max
        with quiet_native_output():  # KDL prints its chain (and a root-inertia warning)
            self._solver = arx5.Arx5Solver(lim.urdf_path, 6, self.q_min, self.q_max)
        self.pos_tol = pos_tol
        self.rot_tol = rot_tol

    def fk(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(xyz, R) of the tool point (eef_link) in the base frame."""
        pose = self._solver.forward_kinematics(np.asarray(q, dtype=np.float64))
        return pose[:3].copy(), matrix_from_rpy(pose[3:])

    def solve(self, xyz: np.ndarray, rot: np.ndarray, q_seed: np.ndarray) -> IkResult:
        seed = np.minimum(np.maximum(np.asarray(q_seed, dtype=np.float64), self.q_min), self.q_max)
        status, q = self._solver.inverse_kinematics(pose6_from_xyz_matrix(xyz, rot), seed)
        q = np.asarray(q, dtype=np.float64)
        if not np.isfinite(q).all():
            return IkResult(seed, False, float("inf"), float("inf"), False)
        q_c = np.minimum(np.maximum(q, self.q_min), self.q_max)
        clamped = bool((q_c != q).any())
        if status == 0 and not clamped:
            # Converged inside the limits: the solver's own tolerance holds, skip the FK check
            # (it is a third of the per-tick IK cost).
            return IkResult(q_c, True, 0.0, 0.0, False)
        p, r = self.fk(q_c)
        dp, dr = p - xyz, (r - rot).ravel()
        pos_err = float(np.sqrt(dp @ dp))
        rot_err = float(np.sqrt(dr @ dr))
        ok = status == 0 and pos_err <= self.pos_tol and rot_err <= self.rot_tol
        return IkResult(q_c, ok, pos_err, rot_err, clamped)
