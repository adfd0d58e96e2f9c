"""plots: every figure is a real PNG with the data drawn; helpers behave."""

import numpy as np
import pytest

from habc_trainer import plots

PNG = b"\x89PNG\r\n\x1a\n"


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_success_and_length_plots_write_pngs(tmp_path):
    curves = {
        "HABC": [plots.Point(0, 0.3, 0.2, 0.45), plots.Point(1, 0.5, 0.37, 0.63)],
        "HABC-V": [plots.Point(0, 0.3, 0.2, 0.45), plots.Point(1, 0.4, 0.28, 0.54)],
    }
    p = plots.success_vs_round(curves, tmp_path / "a" / "success.png", reference=0.3)
    w, h = _png_size(p)
    assert w > 300 and h > 200
    q = plots.length_vs_round(curves, tmp_path / "length.png")
    assert _png_size(q)[0] > 300


def test_gate_histograms_one_panel_per_checkpoint(tmp_path):
    bins = np.linspace(0, 2, 41)
    rng = np.random.default_rng(0)
    panels = {
        f"ckpt {i}": {
            "rollout_success": np.histogram(rng.uniform(0.5, 1.2, 500), bins)[0].tolist(),
            "intervention": np.histogram(rng.uniform(0.8, 1.1, 300), bins)[0].tolist(),
        }
        for i in range(3)
    }
    p = plots.gate_histograms(panels, bins, tmp_path / "g.png")
    w1, _ = _png_size(p)
    p1 = plots.gate_histograms({"one": panels["ckpt 0"]}, bins, tmp_path / "g1.png")
    assert w1 > _png_size(p1)[0]  # three panels side by side are wider than one


def test_value_traces_and_viability_map(tmp_path):
    eps = [
        {
            "p_v": np.linspace(0.2, 0.9, 120).tolist(),
            "v_e_norm": np.linspace(0.3, 1, 120),
            "human": [40 <= t < 70 for t in range(120)],
            "label": "seed 1: success",
        },
        {"p_v": [0.5] * 50, "v_e_norm": [0.2] * 50, "human": [False] * 50, "label": "fail"},
    ]
    p = plots.value_traces(eps, tmp_path / "t.png")
    assert _png_size(p)[1] > 300  # one row per episode
    x, y = np.linspace(0.24, 0.32, 5), np.linspace(-0.27, -0.17, 4)
    m = plots.viability_map(
        x, y, np.random.default_rng(1).uniform(size=(4, 5)), tmp_path / "v.png"
    )
    assert _png_size(m)[0] > 200


@pytest.mark.parametrize(
    ("mask", "spans"),
    [
        ([False, True, True, False, True], [(1, 3), (4, 5)]),
        ([True, True], [(0, 2)]),
        ([], []),
    ],
)
def test_spans_of_human_control(mask, spans):
    assert plots._spans(mask) == spans
