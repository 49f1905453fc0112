"""The per-size summary of a sweep: success rates with 95% Wilson intervals, epochs to success,
and what they support: the sizes whose rate clears a threshold at 95% confidence, and which
neighbouring sizes an exact test tells apart."""

from __future__ import annotations

import numpy as np

from nnstudies.stats import fisher_exact, holm, wilson

ALPHA = 0.05  # family-wise, over the neighbour tests of one series (Holm)


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


def conclude(sizes: dict, threshold: float) -> dict:
    """From ``summarize``'s sizes: those whose 95% Wilson lower bound reaches ``threshold``
    (a rate shown to be at least that), the smallest of them (absent where there is none), and
    for each pair of neighbouring sizes the two-sided Fisher exact test, Holm-adjusted over the
    pairs of this series: ``distinguishable`` where the adjusted p is below ALPHA."""
    rows = list(sizes.values())
    supported = [s["hid"] for s in rows if s["low"] >= threshold]
    pairs = list(zip(rows, rows[1:]))
    p = [fisher_exact(a["successes"], a["runs"], b["successes"], b["runs"]) for a, b in pairs]
    # "smallest" is absent where no size clears the threshold, and the sizes that do are not
    # listed (the sizes' `low` says it): `dvc plots` parses the results file, and fails on a
    # null or an empty list there.
    return {"threshold": threshold, **({"smallest": supported[0]} if supported else {}),
            "neighbours": [{"smaller": a["hid"], "larger": b["hid"], "p": pi, "p_holm": qi,
                            "distinguishable": qi < ALPHA}
                           for (a, b), pi, qi in zip(pairs, p, holm(p))]}
