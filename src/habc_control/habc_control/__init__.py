"""Rig control: cameras, pedal takeover, command mux, policy chunks, episodes, launch."""
