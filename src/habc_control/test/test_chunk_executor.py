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


def test_executes_25_of_50_then_requests_a_new_chunk():
    ex = ChunkExecutor(ChunkExecutorConfig(horizon=50, execute_steps=25))
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
    ex = ChunkExecutor(ChunkExecutorConfig(execute_steps=25, prefetch_steps=5))
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
