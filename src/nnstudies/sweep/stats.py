"""The per-size summary of a sweep: success rates with 95% Wilson intervals, epochs to success."""

from __future__ import annotations

import numpy as np

from nnstudies.stats import wilson


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
