"""The errors of reading an episode bag (bag_reader.py and the MCAP readers beside it)."""

from __future__ import annotations


class BagReadError(RuntimeError):
    """A bag that cannot be read at all; the message names the file and the problem."""


class CompleteReadFailed(BagReadError):
    """rosbags could not read part of a bag it had opened; a streaming read may recover it."""
