"""ARX X5 arm driver: safety core, real backend (arx5-interface SDK over CAN) and the simulated
MuJoCo rig.
"""
