"""What a recorder missed: the largest receive-time gap of each arm's joint_states."""

import numpy as np

from habc_core import rostypes
from habc_core.bag_writer import EpisodeBagWriter
from habc_core.recording_gaps import joint_state_gaps

MS = 1_000_000


def test_the_largest_gap_where_it_fell_and_how_many_were_long(tmp_path):
    bag = tmp_path / "ep"
    left = [0, 33, 66, 400, 433, 466, 700]  # ms: a 334 ms gap at 66 ms, one of 234 ms
    with EpisodeBagWriter(bag, typestore=rostypes.make_typestore()) as w:
        for t in left:
            w.write_joint_state("left", np.zeros(7), (1000 + t) * MS)
        for t in range(0, 700, 33):
            w.write_joint_state("right", np.zeros(7), (1000 + t) * MS)
    gaps = {g.topic: g for g in joint_state_gaps(bag)}
    assert set(gaps) == {"/left_arm/joint_states", "/right_arm/joint_states"}
    lg, rg = gaps["/left_arm/joint_states"], gaps["/right_arm/joint_states"]
    assert (lg.messages, lg.largest_ms, lg.at_s, lg.over) == (7, 334.0, 0.066, 2)
    assert rg.largest_ms == 33.0 and rg.over == 0
