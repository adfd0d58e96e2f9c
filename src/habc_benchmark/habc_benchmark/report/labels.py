"""How the report names methods and cells and prints percentages."""

from __future__ import annotations

from habc_benchmark.stages import SFT_CONTINUED

LABELS = {
    "sft": "SFT",
    "imit_dagger": "Imit-DAgger",
    "imit_recap": "Imit-Recap",
    "habc_v": "HABC-V",
    "habc": "HABC",
    "habc_naive": "HABC (naive credit)",
    "habc_ir": "HABC + IR",
    SFT_CONTINUED: "SFT continued (control)",
}


def label(method: str) -> str:
    return LABELS.get(method, method)


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f}"


def cell_key(method: str, round_index: int) -> str:
    """A cell's name in results.json: 'habc/r003'."""
    return f"{method}/r{round_index:03d}"


def parse_cell_key(key: str) -> tuple[str, int]:
    method, r = key.split("/r")
    return method, int(r)
