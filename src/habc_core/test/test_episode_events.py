"""One START / END event writer (habc_core.episode_events) for the recorder, collector,
synthesiser and the bag writer's finish."""

from habc_core.contract import EVENT_END, EVENT_START, EpisodeMeta
from habc_core.episode_events import write_end_event, write_start_event


class _Writer:
    def __init__(self) -> None:
        self.calls: list = []

    def write_event(self, event, timestamp_ns, **fields) -> None:
        self.calls.append((event, timestamp_ns, fields))


def test_start_and_end_events_carry_the_episode_identity():
    meta = EpisodeMeta(
        episode_id="ep_1",
        task="put the marker in the pouch",
        source="rollout",
        outcome="unknown",
        round=3,
        model_index=7,
        robot="r",
        control_hz=30.0,
        t_max_steps=10,
        start_ns=5,
        end_ns=6,
        intervened=False,
    )
    w = _Writer()
    write_start_event(w, meta, meta.start_ns)
    write_end_event(w, meta, meta.end_ns, "success")
    identity = {
        "episode_id": "ep_1",
        "task": "put the marker in the pouch",
        "source": "rollout",
        "round_index": 3,
        "model_index": 7,
    }
    assert w.calls == [
        (EVENT_START, 5, {**identity, "outcome": ""}),
        (EVENT_END, 6, {**identity, "outcome": "success"}),
    ]
