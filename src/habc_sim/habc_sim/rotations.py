"""The sim's own rotation helper: the top-down grasp frame of the scripted expert and operator.

Every conversion (6-D rotation, matrix, quaternion, rpy) is habc_core.rotations'.
"""

from __future__ import annotations

import numpy as np

from habc_core.rotations import cross3


def top_down_rotation(close_dir_xy: np.ndarray, tilt: float = 0.0) -> np.ndarray:
    """Gripper frame pointing down (approach x = -z), fingers closing along the horizontal unit
    vector `close_dir_xy`. `tilt` leans the approach axis away from the base about the closing
    axis (radians), which keeps joint 4 inside its limit at larger reach."""
    c = np.array([float(close_dir_xy[0]), float(close_dir_xy[1]), 0.0])
    c /= max(float(np.sqrt(c @ c)), 1e-12)
    x = np.array([0.0, 0.0, -1.0])
    z = cross3(x, c)
    if tilt:
        # Rotate x and z about the closing axis c (Rodrigues): lean the approach axis.
        ct, st = np.cos(tilt), np.sin(tilt)
        x = x * ct + cross3(c, x) * st
        z = z * ct + cross3(c, z) * st
    out = np.empty((3, 3))
    out[:, 0], out[:, 1], out[:, 2] = x, c, z
    return out
