"""Credit assignment (spec §2) and value rewards (§7): every rule by hand, then properties."""

from __future__ import annotations

import numpy as np
import pytest

from habc_trainer.credit import assign_credit, value_targets

NAN = np.nan


def authority(pattern: str, arms: int = 2, arm: int = 0) -> np.ndarray:
    """'PPHHP' -> (T, arms) bool with the given arm HUMAN where the letter is H."""
    h = np.zeros((len(pattern), arms), dtype=bool)
    h[:, arm] = [c == "H" for c in pattern]
    return h


def labels(pattern, outcome, source="rollout", **kw):
    return assign_credit(authority(pattern), outcome, source, window=4, min_human_steps=2, **kw)


def assert_labels(got, expected):
    np.testing.assert_array_equal(got.outcome_label, np.asarray(expected, dtype=np.float32))


def test_autonomous_success_labels_every_frame_one():
    c = labels("PPPPP", "success")
    assert_labels(c, [1, 1, 1, 1, 1])
    assert c.efficiency_target.all()
    np.testing.assert_array_equal(c.terminal_success, [0, 0, 0, 0, 1])
    assert not c.intervention_window.any()


def test_autonomous_failure_labels_every_frame_zero_and_no_efficiency():
    c = labels("PPPP", "failure")
    assert_labels(c, [0, 0, 0, 0])
    assert not c.efficiency_target.any()
    assert not c.terminal_success.any()


def test_intervention_then_success_labels_only_post_intervention_suffix():
    c = labels("PPHHHPPP", "success")
    assert_labels(c, [NAN, NAN, NAN, NAN, NAN, 1, 1, 1])
    np.testing.assert_array_equal(c.post_intervention, [0, 0, 0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(c.is_human, [0, 0, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(c.segment_id, [0, 0, 1, 1, 1, 2, 2, 2])
    # Windows of 4 anchored at t holding >= 2 human frames: t = 0 (2), 1, 2, 3 (2).
    np.testing.assert_array_equal(c.intervention_window, [1, 1, 1, 1, 0, 0, 0, 0])
    # V_e: labeled suffix + intervention windows of the successful episode.
    np.testing.assert_array_equal(c.efficiency_target, [1, 1, 1, 1, 0, 1, 1, 1])


def test_failure_then_intervention_earlier_policy_segments_unlabeled():
    # Policy fails, human takes over, policy resumes, human again, policy finishes: failure.
    c = labels("PPHHPPHHPP", "failure")
    assert_labels(c, [NAN] * 8 + [0, 0])
    assert not c.efficiency_target.any()


def test_episode_ending_under_human_control_has_no_labels():
    c = labels("PPPHHH", "success")
    assert np.isnan(c.outcome_label).all()
    assert c.terminal_success[-1]
    np.testing.assert_array_equal(c.efficiency_target, c.intervention_window)


def test_unknown_outcome_labels_nothing_but_keeps_intervention_windows():
    c = labels("PPHHHPP", "unknown")
    assert np.isnan(c.outcome_label).all()
    assert c.intervention_window.any()
    assert not c.efficiency_target.any()
    assert not c.terminal_success.any()


def test_demo_has_no_outcome_labels_and_no_intervention_windows():
    c = labels("HHHHHH", "success", source="demo")
    assert np.isnan(c.outcome_label).all()
    assert not c.intervention_window.any()
    assert not c.efficiency_target.any()
    assert c.terminal_success[-1]


def test_naive_mode_labels_every_rollout_frame_including_human():
    c = labels("PPHHHPP", "failure", mode="naive")
    assert_labels(c, [0] * 7)
    assert np.isnan(labels("PPHHP", "unknown", mode="naive").outcome_label).all()
    assert np.isnan(labels("HHHH", "success", source="demo", mode="naive").outcome_label).all()


def test_any_arm_human_makes_the_frame_human():
    h = np.zeros((6, 2), dtype=bool)
    h[1, 1] = True  # only the right arm
    c = assign_credit(h, "success", "rollout", window=3, min_human_steps=1)
    assert c.is_human.tolist() == [False, True, False, False, False, False]
    assert_labels(c, [NAN, NAN, 1, 1, 1, 1])


def test_window_threshold_is_inclusive_and_clips_at_episode_end():
    c = assign_credit(authority("PPPPHH"), "success", "rollout", window=4, min_human_steps=2)
    # t=2: frames 2..5 hold 2 human; t=4: frames 4..5 (clipped) hold 2; t=5 holds only 1.
    np.testing.assert_array_equal(c.intervention_window, [0, 0, 1, 1, 1, 0])


def test_defaults_match_spec_ten_of_fifty():
    pattern = "P" * 60 + "H" * 10 + "P" * 30
    c = assign_credit(authority(pattern), "success", "rollout")
    first = int(np.flatnonzero(c.intervention_window)[0])
    last = int(np.flatnonzero(c.intervention_window)[-1])
    assert (first, last) == (60 + 10 - 50, 60)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(human=np.zeros((3, 2), dtype=np.int64)), "human"),
        (dict(human=np.zeros(3, dtype=bool)), "human"),
        (dict(human=np.zeros((3, 0), dtype=bool)), "human"),
        (dict(outcome="win"), "outcome"),
        (dict(source="eval"), "source"),
        (dict(mode="greedy"), "mode"),
        (dict(window=0), "window"),
        (dict(min_human_steps=0), "min_human_steps"),
        (dict(window=5, min_human_steps=6), "min_human_steps"),
    ],
)
def test_invalid_inputs_name_the_field(kwargs, field):
    args = dict(human=np.zeros((3, 2), dtype=bool), outcome="success", source="rollout")
    args.update(kwargs)
    human, outcome, source = args.pop("human"), args.pop("outcome"), args.pop("source")
    with pytest.raises(ValueError, match=field):
        assign_credit(human, outcome, source, **args)


def random_authority(rng: np.random.Generator) -> np.ndarray:
    t_len = int(rng.integers(1, 120))
    kind = rng.integers(0, 3)
    if kind == 0:  # fully autonomous
        return np.zeros((t_len, 2), dtype=bool)
    if kind == 1:  # independent noise
        return rng.random((t_len, 2)) < rng.random()
    h = np.zeros((t_len, 2), dtype=bool)  # a few takeover blocks on one or both arms
    for _ in range(int(rng.integers(1, 4))):
        a, b = sorted(rng.integers(0, t_len + 1, size=2))
        h[a:b, rng.integers(0, 2)] = True
    return h


def test_properties_over_random_authority_patterns():
    rng = np.random.default_rng(1234)
    for _ in range(600):
        h = random_authority(rng)
        outcome = str(rng.choice(["success", "failure", "unknown"]))
        source = str(rng.choice(["demo", "rollout"]))
        window = int(rng.integers(1, 60))
        min_steps = int(rng.integers(1, window + 1))
        kw = dict(window=window, min_human_steps=min_steps)
        aware = assign_credit(h, outcome, source, **kw)
        naive = assign_credit(h, outcome, source, mode="naive", **kw)
        t_len, is_human = len(h), h.any(axis=1)
        for c in (aware, naive):
            assert all(len(getattr(c, f)) == t_len for f in c.__dataclass_fields__)
            # Labels are exactly 0/1 and agree with the outcome.
            lab = c.outcome_label[c.labeled]
            assert set(np.unique(lab)) <= ({1.0} if outcome == "success" else {0.0})
            assert c.intervention_window.tolist() == aware.intervention_window.tolist()
        # Aware: human frames never labeled, all labeled frames after the last human frame.
        assert not (aware.labeled & is_human).any()
        if is_human.any():
            assert (np.flatnonzero(aware.labeled) > np.flatnonzero(is_human)[-1]).all()
        else:
            assert aware.labeled.all() == (source == "rollout" and outcome != "unknown")
        # Naive labels a superset of the aware labels, with the same values.
        assert not (aware.labeled & ~naive.labeled).any()
        np.testing.assert_array_equal(
            aware.outcome_label[aware.labeled], naive.outcome_label[aware.labeled]
        )
        # Unknown outcomes and demos are never labeled in either mode.
        if outcome == "unknown" or source == "demo":
            assert not naive.labeled.any()
        # Intervention windows: rollout only, and they match a brute-force count.
        brute = [is_human[t : t + window].sum() >= min_steps for t in range(t_len)]
        expected = brute if source == "rollout" else [False] * t_len
        assert aware.intervention_window.tolist() == expected
        # Efficiency targets only on successful rollouts, only labeled frames or int. windows.
        eff = aware.efficiency_target
        if outcome != "success" or source != "rollout":
            assert not eff.any()
        assert not (eff & ~(aware.labeled | aware.intervention_window)).any()
        # d_t = 1 exactly once on a success, at the last frame.
        assert aware.terminal_success.sum() == (outcome == "success")
        if outcome == "success":
            assert aware.terminal_success[-1]
        # Segments change exactly where the controller changes.
        seg_change = np.diff(aware.segment_id) != 0
        np.testing.assert_array_equal(seg_change, np.diff(is_human.astype(int)) != 0)


def test_rewards_and_returns():
    v = value_targets(3, "failure", gamma=0.5, failure_cost=100.0)
    np.testing.assert_allclose(v.reward, [-1, -1, -100])
    np.testing.assert_allclose(v.mc_return, [-1 - 0.5 - 25, -1 - 50, -100])
    s = value_targets(4, "success", gamma=1.0)
    np.testing.assert_allclose(s.mc_return, [-4, -3, -2, -1])  # minus the steps to the end
    u = value_targets(2, "unknown")
    np.testing.assert_allclose(u.reward, [-1, -1])
    assert value_targets(0, "failure").reward.shape == (0,)
    with pytest.raises(ValueError, match="gamma"):
        value_targets(3, "success", gamma=1.5)
    with pytest.raises(ValueError, match="outcome"):
        value_targets(3, "lost")
