"""The episode manager starts an episode only once the recorder itself hears its events: other
nodes subscribe to /episode/events too, and on a graph of many processes they are often
discovered first (the events are not latched: a START the recorder misses is lost)."""

import pytest

pytestmark = pytest.mark.ros

TASK = "open the pouch, put the marker in it, and close the pouch"


def _listener(context, name, heard):
    from rclpy.node import Node

    from arx_x5_driver.qos import EVENTS_QOS
    from habc_interfaces.msg import EpisodeEvent

    node = Node(name, context=context)
    node.create_subscription(EpisodeEvent, "episode/events", heard.append, EVENTS_QOS)
    return node


def _tool(context):
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, QoSProfile

    from habc_interfaces.msg import EpisodeEvent

    node = Node("events_echo", context=context)
    qos = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(EpisodeEvent, "episode/events", lambda _m: None, qos)
    return node


def test_a_start_waits_for_the_recorder_not_for_any_listener(ros, spin, wait_until):
    from habc_control.episode_manager_node import EpisodeManagerNode
    from habc_interfaces.msg import EpisodeEvent
    from habc_interfaces.srv import StartEpisode

    em = EpisodeManagerNode(context=ros)
    mux_heard, recorder_heard = [], []
    mux = _listener(ros, "command_mux", mux_heard)
    spin(ros, [em, mux])
    assert wait_until(lambda: em._events.get_subscription_count() >= 1)
    req = StartEpisode.Request(task=TASK, source="rollout", round=0)
    res = em._on_start(req, StartEpisode.Response())
    assert not res.accepted and "'recorder' node is not subscribed" in res.message

    recorder = _listener(ros, "recorder", recorder_heard)
    tool = _tool(ros)  # e.g. an echo asking for latched events: it never matches, never waited for
    spin(ros, [recorder, tool])
    assert wait_until(em.recorder_listens)
    res = em._on_start(req, StartEpisode.Response())
    assert res.accepted, res.message
    assert wait_until(lambda: [e.event for e in recorder_heard] == [EpisodeEvent.START])
