"""One runtime: the same seeded sim episode through the ROS graph and through `habc-collect`.

Both run the arm driver's DriverCore (safety core), the command mux, the chunk executor and the
scheduled operator from one graph config; both bags convert, and the training data agree within
the tolerances below. What differs, and why: the graph runs in wall-clock time on DDS (the
episode starts and ends by service calls a few ticks off the sim's own counter, the operator's
pedal window is timed on the teleop node's clock, inference runs in a worker thread), while
`habc-collect` steps the same objects in one loop with one tick of modelled inference latency and
the graph's two ticks of row transport (policy -> mux -> driver).
"""

import os
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros

SEED = 4
T_MAX = 90  # ticks: a 3 s episode (the task's step limit ends it in both runtimes)
TAKEOVER = (1.0, 2.0)  # left arm under HUMAN authority, seconds after START
POLICY = "habc_control.policies:drifting_policy"
TASK = "open the pouch, put the marker in it, and close the pouch"


def _sim_yaml(tmp_path):
    path = tmp_path / "sim.yaml"
    path.write_text(f"sim:\n  task:\n    t_max: {T_MAX}\n", encoding="utf-8")
    return path


def _graph_episode(tmp_path, sim_yaml):
    import rclpy
    from rclpy.context import Context

    from habc_control.graph import apply_overrides, load_graph_config
    from habc_control.runner import Graph, SimTaskWatch, run_episode

    config = apply_overrides(
        load_graph_config(),
        {
            "backend": "sim",
            "checkpoint": POLICY,
            "data_root": str(tmp_path / "graph"),
            "arm_driver.sim_config": str(sim_yaml),
            "arm_driver.camera_every": "0",  # state episode: no rendering
            "teleop.sim_schedule": f"[left:{TAKEOVER[0]}:{TAKEOVER[1]}]",
        },
    )
    context = Context()
    rclpy.init(context=context, domain_id=100 + (os.getpid() + 11) % 100)
    # The driver and the recorder in processes of their own, as habc-rollout and launch run
    # them: in this one the recorder received the arms' state up to 0.25 s apart, and the
    # driver's loop thread waited for the GIL up to 285 ms (docs/performance.md).
    graph = Graph(config, context=context, own_process=("arm_driver", "recorder"))
    try:
        graph.spin_in_background()
        watch = SimTaskWatch(graph.nodes["episode_manager"])
        episode_id, outcome = run_episode(
            graph, TASK, 30.0, "sim", seed=SEED, watch=watch, timeout=30.0
        )
        time.sleep(0.5)
    finally:
        graph.stop()
        rclpy.shutdown(context=context)
    return config, episode_id, outcome


def _collect_episode(tmp_path, sim_yaml, graph_config):
    from habc_control.collect import BagSink, CollectConfig, Collector, make_policy_factory
    from habc_sim.config import load_sim_config
    from habc_sim.env import PouchEnv

    sim_cfg = load_sim_config(sim_yaml)
    env = PouchEnv(sim_cfg, obs_mode="state")
    cfg = CollectConfig.from_graph(
        graph_config, mode="rollout", schedule=(f"left:{TAKEOVER[0]}:{TAKEOVER[1]}",)
    )
    factory = make_policy_factory(POLICY, sim_cfg, cfg.horizon, cfg.execute_steps, -1)
    try:
        return Collector(env, cfg, BagSink(tmp_path / "collect"), factory).run_episode(SEED)
    finally:
        env.close()


def _segments(flags: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.r_[0, flags.astype(int), 0]))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def test_graph_and_collect_record_the_same_episode(tmp_path):
    from habc_core.features import ACTION, HUMAN
    from habc_trainer.episode import ExtractConfig, extract_episode

    sim_yaml = _sim_yaml(tmp_path)
    graph_config, episode_id, graph_outcome = _graph_episode(tmp_path, sim_yaml)
    summary = _collect_episode(tmp_path, sim_yaml, graph_config)

    (graph_bag,) = [p for p in (tmp_path / "graph").rglob(episode_id) if p.is_dir()]
    cfg = ExtractConfig(cameras=())
    g = extract_episode(graph_bag, cfg)  # raises (the test fails) if the bag would be skipped
    c = extract_episode(summary.path, cfg)

    # outcome: the task's own verdict in both (the step limit: a drifting policy never succeeds)
    assert graph_outcome == summary.outcome == g.info.outcome == c.info.outcome == "failure"
    assert g.info.intervened and c.info.intervened
    # frames: collect runs exactly T_MAX ticks; the graph's episode starts a few ticks after the
    # reset (START is a service call) and ends a few ticks after the sim said done (END too).
    assert c.length == T_MAX
    assert abs(g.length - c.length) <= 10, (g.length, c.length)
    # authority: one left-arm HUMAN segment in each, never the right arm; it starts ~1 s (30
    # ticks) after START and lasts ~1 s. Counted in frames (control ticks): the graph's log
    # times bunch up when the in-process recorder falls behind (30 ticks logged within 0.73 s
    # seen), its ticks do not.
    hz = 30
    for ep in (g, c):
        assert not ep.arrays[HUMAN][:, 1].any()
        (seg,) = _segments(ep.arrays[HUMAN][:, 0])
        assert abs(seg[0] - TAKEOVER[0] * hz) <= 8, seg
        assert abs((seg[1] - seg[0]) - (TAKEOVER[1] - TAKEOVER[0]) * hz) <= 8, seg
    # actions: the same trajectory up to a small time shift. Both start from the seed's home
    # pose; the policy drifts 2 mm per tick, so a lag of k ticks moves x by ~2k mm.
    n = min(g.length, c.length) - 12
    ga, ca = g.arrays[ACTION].astype(np.float64), c.arrays[ACTION].astype(np.float64)
    errors = {
        lag: float(np.max(np.abs(ga[max(lag, 0) : max(lag, 0) + n] - ca[max(-lag, 0) :][:n])))
        for lag in range(-6, 7)
    }
    lag = min(errors, key=errors.get)
    diff = np.abs(ga[max(lag, 0) : max(lag, 0) + n] - ca[max(-lag, 0) :][:n])
    where_t, where_d = np.unravel_index(int(np.argmax(diff)), diff.shape)
    print(
        f"graph {g.length} frames, collect {c.length}; best lag {lag} ticks, max |diff| "
        f"{errors[lag]:.4f} at frame {where_t}, dim {where_d}; per-lag {errors}"
    )
    assert abs(lag) <= 6
    # Before the takeover (policy only) the arms agree to a few mm at the best lag; the human's
    # segment and the policy's fresh chunks after it shift by the graph's latencies.
    pre = int(TAKEOVER[0] * 30) - 8
    pre_err = np.max(np.abs(ga[max(lag, 0) :][:pre] - ca[max(-lag, 0) :][:pre]))
    # Measured (10 runs, quiet machine): 2.2-3.7 cm overall in 7, a full gripper stroke (8.8 cm:
    # the scripted hands close the left gripper at another tick of the takeover) in 3; inside the
    # full suite on 2 busy cores 1.2 cm before the takeover. The bounds leave room for that, not
    # for a different episode.
    assert pre_err <= 0.025, pre_err
    assert errors[lag] <= 0.1
    # the executed action is what the safety core let through, in both runtimes
    from habc_core.features import SAFETY

    for ep in (g, c):
        assert ep.arrays[SAFETY].shape == (ep.length, 2)
