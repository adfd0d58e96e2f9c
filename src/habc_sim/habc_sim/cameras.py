"""Offscreen RGB rendering of the rig's three cameras (top D455-like, two D405-like wrists).

Shadows, reflections and the skybox are off: they cost ~46 ms per camera on llvmpipe and add
nothing a 96-128 px policy input can use.
"""

from __future__ import annotations

import mujoco
import numpy as np

# Camera feature name (habc_core.features.CAMERA_NAMES) -> MuJoCo camera name.
CAMERA_MAP: dict[str, str] = {
    "top": "top",
    "left_wrist": "left/wrist_cam",
    "right_wrist": "right/wrist_cam",
}


class CameraSet:
    def __init__(self, model: mujoco.MjModel, size: int) -> None:
        self.size = size
        self._renderer = mujoco.Renderer(model, height=size, width=size)
        flags = self._renderer.scene.flags
        for flag in (
            mujoco.mjtRndFlag.mjRND_SHADOW,
            mujoco.mjtRndFlag.mjRND_REFLECTION,
            mujoco.mjtRndFlag.mjRND_SKYBOX,
        ):
            flags[flag] = 0
        self._cam_ids = {name: model.camera(cam).id for name, cam in CAMERA_MAP.items()}

    def render(self, data: mujoco.MjData) -> dict[str, np.ndarray]:
        """camera name -> (size, size, 3) uint8 RGB."""
        out: dict[str, np.ndarray] = {}
        for name, cid in self._cam_ids.items():
            self._renderer.update_scene(data, camera=cid)
            out[name] = self._renderer.render().copy()
        return out

    def close(self) -> None:
        self._renderer.close()
