"""One line per headline figure, which scripts/bench.sh gathers into `make bench`'s summary.

FIGURE | <name> | <value> | <bound or peer> | <ratio> | <within / over> | peak <MB> MB
"""

from __future__ import annotations

import resource


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report_figure(
    name: str,
    value: float,
    bound: float,
    unit: str = "",
    bound_name: str = "bound",
    higher_is_better: bool = False,
    peak_mb: float | None = None,
) -> bool:
    """Print the figure next to its bound; True when within it (the bench itself never fails)."""
    ratio = value / bound if bound else float("inf")
    within = value >= bound if higher_is_better else value <= bound
    peak = peak_rss_mb() if peak_mb is None else peak_mb
    sign = ">=" if higher_is_better else "<="
    print(
        f"FIGURE | {name} | {value:.4g} {unit} | {bound_name} {sign} {bound:.4g} {unit} | "
        f"ratio {ratio:.2f} | {'within' if within else 'OVER'} | peak {peak:.0f} MB"
    )
    return within
