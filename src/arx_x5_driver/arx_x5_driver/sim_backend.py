"""The import path the arm node uses for the simulated rig; the code is in sim/backend.py."""

from arx_x5_driver.sim.backend import SimRigBackend

__all__ = ["SimRigBackend"]
