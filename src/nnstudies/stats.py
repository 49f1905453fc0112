"""Rates with 95% Wilson score intervals, and exact tests on paired outcomes (McNemar), with
Holm's correction when many are read together."""

from __future__ import annotations

import math

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


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar test on paired outcomes: ``only_a`` items right under A alone,
    ``only_b`` under B alone.  Under "A and B are right equally often" the split of the
    discordant items is Binomial(only_a + only_b, 1/2); the p-value doubles the smaller tail
    (capped at 1).  Exact integers throughout, so p-values of 1e-18 keep their digits."""
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2 ** n)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given): reject where adjusted < alpha
    and the family-wise error rate stays <= alpha over all the tests."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def fisher_exact(a_successes: int, a_runs: int, b_successes: int, b_runs: int) -> float:
    """Two-sided Fisher exact test of "A and B succeed equally often" on two independent
    samples: with the margins fixed, A's successes are hypergeometric; the p-value sums the
    probabilities of every table no more likely than the one seen (the usual two-sided rule,
    as scipy's).  Exact integers, with a relative tolerance for ties of equal probability."""
    total, k = a_runs + b_runs, a_successes + b_successes
    lo, hi = max(0, k - b_runs), min(k, a_runs)
    weights = {x: math.comb(a_runs, x) * math.comb(b_runs, k - x) for x in range(lo, hi + 1)}
    seen = weights[a_successes]
    tail = sum(w for w in weights.values() if w * (1 - 1e-7) <= seen)
    return min(1.0, tail / math.comb(total, k))
