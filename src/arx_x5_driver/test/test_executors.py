"""ExecutorPerNode: each node spun on its own thread; shutdown leaves no spin behind."""

import threading
import time

import pytest

pytestmark = pytest.mark.ros


def test_nodes_talk_across_their_own_spins_and_shutdown_ends_them(ros, wait_until):
    from rclpy.node import Node
    from std_msgs.msg import String

    from arx_x5_driver.executors import ExecutorPerNode

    talker, listener = Node("talker", context=ros), Node("listener", context=ros)
    got = []
    listener.create_subscription(String, "/chatter", got.append, 10)
    pub = talker.create_publisher(String, "/chatter", 10)
    talker.create_timer(0.02, lambda: pub.publish(String(data="hi")))
    spinning = ExecutorPerNode(ros)
    spinning.add("talker", talker)
    spinning.add("listener", listener)
    with pytest.raises(ValueError, match="talker"):
        spinning.add("talker", talker)
    spinning.start()
    spinning.start()  # nothing new to spin: no second thread per node
    names = [t.name for t in threading.enumerate() if t.name.startswith("spin_")]
    assert sorted(names) == ["spin_listener", "spin_talker"]
    try:
        assert wait_until(lambda: len(got) >= 3, timeout=10.0)
    finally:
        spinning.shutdown(timeout_sec=2.0)
    time.sleep(0.1)
    assert not [t for t in threading.enumerate() if t.name.startswith("spin_")]
    count = len(got)
    time.sleep(0.2)
    assert len(got) == count  # nothing spins the listener any more
    talker.destroy_node()
    listener.destroy_node()
