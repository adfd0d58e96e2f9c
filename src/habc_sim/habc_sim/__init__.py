"""The simulated bimanual ARX X5 rig (MuJoCo): model, IK, cameras, pouch task, gym-style env,
scripted operator. Pure core, no rclpy; see docs/sim-rig.md."""
