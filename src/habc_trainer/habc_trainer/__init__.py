"""HABC trainer: episode bags to labeled windows, dual-head critic, weighted flow-matching actor,
rounds. No ROS runtime needed.
"""
