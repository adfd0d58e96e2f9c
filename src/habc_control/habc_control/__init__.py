"""Rig control: cameras, pedal takeover, command mux, policy chunk execution, episode recording, launch."""
