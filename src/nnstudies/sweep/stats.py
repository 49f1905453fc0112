"""Success rates with 95% Wilson score intervals, and the per-size summary of a sweep."""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def wilson(successes: int, runs: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion: unlike p +- z*se it stays inside
    [0, 1] and is not empty at 0 or n successes, the usual outcomes of a small sweep."""
    if runs <= 0:
        raise ValueError("an interval needs at least one run")
    p, n = successes / runs, runs
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # In exact arithmetic the bounds are 0 at k = 0 and 1 at k = n: no rounding residue there.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == runs else min(1.0, centre + half)
    return low, high


def quartiles(values: list[float]) -> dict | None:
    """{q1, median, q3} (linear interpolation, numpy's default), None when there is no value."""
    if not values:
        return None
    q1, median, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return {"q1": float(q1), "median": float(median), "q3": float(q3)}


def summarize(results: list[dict]) -> dict:
    """Per size, in increasing order: runs, successes, rate, its 95% Wilson interval, and the
    quartiles of epochs to success over the runs that succeeded.  Keys are ``hid_<n>`` so
    that `dvc metrics show` reads ``hid_4.rate``."""
    sizes: dict[int, list[dict]] = {}
    for r in results:
        sizes.setdefault(r["hid"], []).append(r)
    out = {}
    for hid in sorted(sizes):
        runs = sizes[hid]
        ok = [r for r in runs if r["success"]]
        low, high = wilson(len(ok), len(runs))
        out[f"hid_{hid}"] = {
            "hid": hid, "runs": len(runs), "successes": len(ok), "rate": len(ok) / len(runs),
            "low": low, "high": high,
            "epochs_to_success": quartiles([r["epochs_to_success"] for r in ok])}
    return out
