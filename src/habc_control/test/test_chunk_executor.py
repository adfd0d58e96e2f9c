import numpy as np
import pytest

from habc_control.authority import Authority
from habc_control.chunk_executor import ChunkExecutor, ChunkExecutorConfig

P, H = Authority.POLICY, Authority.HUMAN


def chunk(base: float, h: int = 50, d: int = 4) -> np.ndarray:
    return (base + np.arange(h, dtype=np.float32))[:, None].repeat(d, axis=1)


def test_config_validation():
    with pytest.raises(ValueError, match="execute_steps"):
        ChunkExecutorConfig(horizon=50, execute_steps=60)
    with pytest.raises(ValueError, match="prefetch_steps"):
        ChunkExecutorConfig(execute_steps=25, prefetch_steps=25)
    with pytest.raises(ValueError, match="boundary: .*'smooth'"):
        ChunkExecutorConfig(boundary="smooth")
    with pytest.raises(ValueError, match="blend_steps"):
        ChunkExecutorConfig(blend_steps=-1)


def test_executes_25_of_50_then_requests_a_new_chunk():
    ex = ChunkExecutor(ChunkExecutorConfig(horizon=50, execute_steps=25, boundary="none"))
    requests = 0
    rows = []
    for _ in range(60):
        if ex.should_request():
            requests += 1
            ex.load(chunk(1000.0 * requests), ex.begin_request(), model_index=7)
        s = ex.step()
        rows.append((s.chunk_id, s.index, float(s.action[0]), s.model_index))
    assert requests == 3  # ticks 0, 25, 50
    assert rows[0] == (0, 0, 1000.0, 7)
    assert rows[24] == (0, 24, 1024.0, 7)
    assert rows[25] == (1, 0, 2000.0, 7)  # row 25.. of the first chunk never ran
    assert rows[50][:2] == (2, 0)


def test_fresh_chunk_after_human_to_policy():
    ex = ChunkExecutor()
    ex.on_authority({"left": P, "right": P})
    ex.load(chunk(0.0), ex.begin_request())
    for _ in range(10):
        ex.step()
    assert ex.on_authority({"left": H, "right": P}) is False  # takeover: right arm still runs
    assert ex.remaining == 15
    ex.step()
    assert ex.on_authority({"left": P, "right": P}) is True  # back to POLICY: drop the chunk
    assert ex.fresh_chunks_after_takeover == 1
    assert ex.should_request() and ex.step() is None
    ex.load(chunk(500.0), ex.begin_request())
    s = ex.step()
    assert (s.index, float(s.action[0])) == (0, 500.0)


def test_stale_chunk_from_before_takeover_is_refused():
    ex = ChunkExecutor()
    ex.on_authority({"left": P})
    token = ex.begin_request()  # inference in flight on the pre-takeover observation
    ex.on_authority({"left": H})
    ex.on_authority({"left": P})
    assert ex.load(chunk(0.0), token) is False
    assert ex.should_request()


def test_no_requests_while_no_arm_is_under_policy():
    ex = ChunkExecutor()
    ex.on_authority({"left": H, "right": Authority.HOLD})
    assert not ex.should_request()
    assert ex.step() is None


def test_async_inference_skips_rows_already_executed():
    ex = ChunkExecutor(ChunkExecutorConfig(execute_steps=25, prefetch_steps=5, boundary="none"))
    ex.load(chunk(0.0), ex.begin_request())
    for _ in range(20):
        ex.step()
    assert ex.should_request()  # 5 rows left: prefetch
    token = ex.begin_request()
    for _ in range(3):  # three rows executed while inference ran
        ex.step()
    assert ex.load(chunk(100.0), token)
    s = ex.step()
    assert (s.index, float(s.action[0])) == (3, 103.0)


def test_holding_ticks_do_not_count_as_late():
    ex = ChunkExecutor()
    token = ex.begin_request()
    for _ in range(4):
        assert ex.step() is None  # waiting for the first chunk: arm holds
    ex.load(chunk(0.0), token)
    assert ex.step().index == 0


def test_bad_chunk_shape_is_rejected():
    ex = ChunkExecutor()
    with pytest.raises(ValueError, match="actions"):
        ex.load(np.zeros((10, 4)), ex.begin_request())


# --- chunk boundaries ---


def run_with_latency(ex: ChunkExecutor, latency, ticks: int, policy) -> list:
    """Drive `ex` as the policy node does: request k lands `latency` (or `latency(k)`) ticks
    after it was made."""
    rows, in_flight, k = [], None, 0
    for t in range(ticks):
        if in_flight is not None and t >= in_flight[2]:
            ex.load(*in_flight[:2])
            in_flight = None
        if ex.should_request():
            token = ex.begin_request()
            delay = latency(k) if callable(latency) else latency
            in_flight, k = (policy(t, ex.request_inputs()), token, t + delay), k + 1
        rows.append(ex.step())
    return rows


def test_rtc_request_carries_the_rows_still_to_come_and_how_many_will_surely_run():
    ex = ChunkExecutor(ChunkExecutorConfig(execute_steps=25))
    assert ex.request_inputs() == {}
    token = ex.begin_request()
    assert ex.request_inputs() == {}  # nothing runs yet: no prefix
    ex.step(), ex.step()  # two ticks of latency
    ex.load(chunk(0.0), token)
    for _ in range(22):
        ex.step()
    assert ex.latency_ticks == 2 and ex.should_request() is False  # 3 rows left > 2
    ex.step()
    assert ex.should_request()  # 2 rows left: as many as the last inference took
    ex.begin_request()
    inputs = ex.request_inputs()
    prefix = inputs["prefix.actions"]
    assert prefix.shape == (50 - 23, 4) and prefix[0, 0] == 23.0 and prefix[-1, 0] == 49.0
    assert inputs["prefix.frozen"] == 2


def test_a_switch_cross_fades_unless_told_not_to():
    for blend, guided in ((0, True), (4, False), (4, True)):
        cfg = ChunkExecutorConfig(execute_steps=25, prefetch_steps=5, blend_steps=blend)
        ex = ChunkExecutor(cfg)
        ex.load(chunk(0.0), ex.begin_request())
        for _ in range(20):
            ex.step()
        token = ex.begin_request()
        for _ in range(3):
            ex.step()
        ex.load(chunk(100.0), token, guided=guided)
        values = [float(ex.step().action[0]) for _ in range(6)]
        assert ex.guided_chunks == int(guided)
        if blend == 0:  # inpainting alone: the new chunk as it came
            assert values[0] == 103.0 and ex.blended_chunks == 0
        else:
            # old continuation 23, 24, ... ; new 103, 104, ...: weights 1/5 .. 4/5, then new.
            weights = (0.2, 0.4, 0.6, 0.8)
            expected = [(1 - w) * (23 + j) + w * (103 + j) for j, w in enumerate(weights)]
            assert values[:4] == pytest.approx(expected) and values[4:] == [107.0, 108.0]
            assert ex.blended_chunks == 1


def test_a_late_chunk_runs_past_execute_steps_instead_of_stopping():
    ex = ChunkExecutor(ChunkExecutorConfig(execute_steps=25, boundary="none"))
    late = lambda k: 1 if k == 0 else 10  # noqa: E731
    rows = run_with_latency(ex, late, 100, lambda t, _i: chunk(1000.0 * t))
    assert rows[0] is None  # the first chunk is on its way: nothing to run yet
    assert all(r is not None for r in rows[1:])
    index = [r.index for r in rows[1:]]
    # Inference slowed from 1 tick to 10: twice the running chunk ran on to row 33 while the
    # next was late (one slow chunk does not move the request: the median latency does), then,
    # the latency lasting, requests start 10 rows before row 25 and chunks land on time.
    assert index[:59] == list(range(34)) + list(range(10, 34)) + [10]
    assert index[59:] == list(range(11, 25)) + list(range(10, 25)) + list(range(10, 21))
    assert ex.extended_rows == 18 and ex.latency_ticks == 10


def test_one_slow_inference_does_not_move_the_requests():
    """A model's first call or a GC pause: the next chunks are still asked for prefetch_steps
    early, not back to back (which starved the rest of the policy node's process)."""
    ex = ChunkExecutor(ChunkExecutorConfig(execute_steps=25, prefetch_steps=5, boundary="none"))
    late = lambda k: 30 if k == 1 else 1  # noqa: E731
    rows = run_with_latency(ex, late, 300, lambda t, _i: chunk(1000.0 * t))
    switches = [t for t in range(2, len(rows)) if rows[t].chunk_id != rows[t - 1].chunk_id]
    gaps = np.diff(switches)
    assert ex.latency_ticks == 1 and (gaps[2:] >= 19).all(), gaps


def test_inference_slower_than_the_chunk_slows_the_arm_down_smoothly():
    """38 ticks of latency (the base preset's 1.27 s) for 50-row chunks: no chunk can cover the
    next inference at full speed. Playback settles at (H - 1) / 2d rows per tick, never holds
    and never jumps by more than one row per tick."""
    ex = ChunkExecutor(ChunkExecutorConfig(execute_steps=25, boundary="none"))
    ramp = lambda t, _i: np.arange(50, dtype=np.float32)[:, None].repeat(2, 1) + 0.0 * t  # noqa: E731
    rows = run_with_latency(ex, 38, 600, ramp)
    moving = rows[38:]
    assert all(r is not None for r in moving) and ex.starved_ticks == 38
    assert ex.slowed_ticks > 0
    # Steady state: each chunk lands (H - 1) / 2 rows in, rows advance by 49 / 76 per tick.
    tail = np.array([r.action[0] for r in moving[-76 * 3 :]])
    steps = np.diff(tail)
    within = steps[steps > -1.0]  # a switch restarts the ramp: that is the chunk, not the arm
    assert within.max() <= 1.0 + 1e-6
    assert np.median(within) == pytest.approx(49 / 76, rel=0.05)


def test_a_failed_or_hung_inference_leaves_the_policy_silent_so_the_mux_holds():
    """Running on past execute_steps is for a late chunk only: after a failed inference the chunk
    stops at row 25, and with one that never returns it stops at its last row."""
    for fail in (True, False):
        ex = ChunkExecutor(ChunkExecutorConfig(execute_steps=25, boundary="none"))
        ex.load(chunk(0.0), ex.begin_request())
        rows = []
        for _ in range(120):
            if fail and ex.request_pending:
                ex.cancel_request()  # the server is gone: each try fails a tick later
            if ex.should_request():
                ex.begin_request()  # a new try, in flight during this tick's row
            rows.append(ex.step())
        moving = [r for r in rows if r is not None]
        assert rows[-1] is None and all(r is None for r in rows[len(moving) :])
        if fail:  # one row past 25 while the first try was still out, then no more
            assert len(moving) == 26 and ex.extended_rows == 1
        else:  # hung: on to the last row, slowing into it, then silent
            assert max(r.index for r in moving) >= 48 and len(moving) < 70
