"""The control loop's SCHED_FIFO request: granted, refused (a warning line, never an error), off,
and a bad priority named."""

import errno
import os

import pytest

from arx_x5_driver.realtime import check_loop_priority, request_fifo


def test_a_granted_priority_sets_fifo_on_the_calling_thread():
    calls = []
    line, as_asked = request_fifo(50, lambda *args: calls.append(args))
    assert as_asked
    assert calls == [(0, os.SCHED_FIFO, os.sched_param(50))]
    assert "SCHED_FIFO priority 50" in line


def test_a_refusal_is_a_line_saying_how_to_allow_it():
    def refuse(pid, policy, param):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    line, as_asked = request_fifo(50, refuse)
    assert not as_asked
    assert "refused (Operation not permitted)" in line
    assert "rtprio" in line and "loop_priority 0" in line


def test_priority_0_leaves_the_scheduler_alone():
    def never(pid, policy, param):
        raise AssertionError("set_scheduler called with loop_priority 0")

    line, as_asked = request_fifo(0, never)
    assert as_asked and "normal scheduler (loop_priority 0)" in line


@pytest.mark.parametrize("bad", [-1, 100, 1.5, True, "50"])
def test_a_bad_priority_names_the_parameter(bad):
    with pytest.raises(ValueError, match="loop_priority"):
        check_loop_priority(bad)
