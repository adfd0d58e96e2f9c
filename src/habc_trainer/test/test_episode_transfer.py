"""An extracted episode crosses from a converter helper to the writer: arrays in an anonymous
memory file whose descriptor crosses the socket, the facts pickled; the same episode arrives."""

import multiprocessing
import os

import numpy as np
import pytest

from habc_trainer.episode import ExtractConfig, extract_episode
from habc_trainer.episode_transfer import receive_result, send_result
from habc_trainer.synthetic import SyntheticSpec, write_synthetic_episode


@pytest.fixture(scope="module")
def episode(tmp_path_factory):
    bag = tmp_path_factory.mktemp("bags") / "ep"
    write_synthetic_episode(bag, SyntheticSpec("ep", "PPPPHHPP", image_hw=(24, 32)))
    return extract_episode(bag, ExtractConfig(image_size=16))


def _round_trip(index, episode, reason):
    mine, theirs = multiprocessing.get_context("spawn").Pipe()
    try:
        send_result(theirs, index, episode, reason)
        return receive_result(mine)
    finally:
        mine.close()
        theirs.close()


@pytest.mark.parametrize("memfd", [True, False], ids=["memory file", "pickled (no memfd)"])
def test_the_same_episode_arrives(episode, memfd, monkeypatch):
    if not memfd:
        monkeypatch.delattr(os, "memfd_create", raising=False)
    index, got, reason = _round_trip(7, episode, None)
    assert index == 7 and reason is None
    assert got.info == episode.info and got.action_arm_dims == episode.action_arm_dims
    assert list(got.arrays) == list(episode.arrays)
    for key, array in episode.arrays.items():
        assert got.arrays[key].dtype == array.dtype
        np.testing.assert_array_equal(got.arrays[key], array)
    # Writable, and a write stays on this side.
    first = next(iter(got.arrays))
    got.arrays[first][...] = 0
    assert not np.shares_memory(got.arrays[first], episode.arrays[first])


def test_an_empty_array_and_a_skipped_bag_arrive(episode):
    import dataclasses

    empty = dataclasses.replace(episode, arrays={**episode.arrays, "extra": np.zeros((0, 3))})
    _i, got, _r = _round_trip(0, empty, None)
    assert got.arrays["extra"].shape == (0, 3)
    assert _round_trip(3, None, "bag e3: missing topic") == (3, None, "bag e3: missing topic")
