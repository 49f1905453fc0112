"""The interval and test helpers against values worked by hand or published."""

import pytest

from nnstudies.stats import Z95, fisher_exact, holm, mcnemar_exact, wilson
from nnstudies.sweep.stats import conclude, summarize


def test_wilson_known_values_and_its_defining_equation():
    assert wilson(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert wilson(10, 10) == (pytest.approx(0.7225, abs=1e-4), 1.0)
    assert wilson(5, 10) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    # 862 of 1,000: p = 0.862, z = 1.96: centre 0.86061, half-width 0.02138
    assert wilson(862, 1000) == (pytest.approx(0.83923, abs=1e-5), pytest.approx(0.88200, abs=1e-5))
    for k, n in [(1, 3), (7, 20), (13, 40), (99, 100)]:
        p = k / n
        low, high = wilson(k, n)
        assert low < p < high
        for bound in (low, high):  # the score test is exactly at its 95% boundary there
            assert (p - bound) ** 2 == pytest.approx(Z95 * Z95 * bound * (1 - bound) / n, rel=1e-9)
    assert wilson(50, 100)[1] - wilson(50, 100)[0] < wilson(5, 10)[1] - wilson(5, 10)[0]
    with pytest.raises(ValueError):
        wilson(0, 0)


def test_mcnemar_exact_against_hand_worked_tables():
    # 3 discordant pairs, all one way: P(X <= 0 | n=3, 1/2) = 1/8, two-sided 1/4
    assert mcnemar_exact(3, 0) == mcnemar_exact(0, 3) == 0.25
    # 5 against 1: P(X <= 1 | n=6) = (1 + 6) / 64, two-sided 14/64
    assert mcnemar_exact(5, 1) == 14 / 64
    assert mcnemar_exact(4, 4) == 1.0 and mcnemar_exact(0, 0) == 1.0  # no evidence either way
    # The paired KMNIST counts: 41 vs 11 (p about 4e-5), 126 vs 24 (about 7e-18)
    assert mcnemar_exact(41, 11) == pytest.approx(3.589e-5, rel=1e-3)
    assert mcnemar_exact(126, 24) == pytest.approx(6.69e-18, rel=1e-3)


def test_holm_steps_down_and_keeps_the_order():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5]) == [0.5] and holm([0.6, 0.7]) == [1.0, 1.0]


def test_fisher_exact_against_hand_worked_tables():
    # 3 of 3 against 0 of 3: of the C(6, 3) = 20 ways to place 3 successes, 1 is this table
    # and 1 its mirror (as unlikely): p = 2/20
    assert fisher_exact(3, 3, 0, 3) == pytest.approx(0.1, rel=1e-12)
    # 1 of 2 against 1 of 2: every table is at least as likely as... none is less: p = 1
    assert fisher_exact(1, 2, 1, 2) == 1.0
    # 4 of 10 against 9 of 10 (issue 25's checkerboard example): p = 0.0573 (scipy agrees)
    assert fisher_exact(4, 10, 9, 10) == pytest.approx(0.05727554, abs=1e-8)
    # 3 of 5 against 5 of 5: tables x = 3 (p 10/36 ... ) give 0.4444 = 4/9
    assert fisher_exact(3, 5, 5, 5) == pytest.approx(4 / 9, rel=1e-12)
    assert fisher_exact(2, 7, 5, 9) == fisher_exact(5, 9, 2, 7)  # symmetric in the samples


def test_the_conclusion_is_the_smallest_size_whose_lower_bound_clears_the_threshold():
    rows = [{"hid": h, "success": i < k, "epochs_to_success": 100} for h, k in ((2, 0), (4, 20), (6, 35), (8, 34))
            for i in range(35)]
    sizes = summarize(rows)
    c = conclude(sizes, 0.9)
    assert c["smallest"] == 6  # and not 8: 34 of 35 has a lower bound of 0.855 < 0.9
    assert [(n["smaller"], n["larger"], n["distinguishable"]) for n in c["neighbours"]] == \
        [(2, 4, True), (4, 6, True), (6, 8, False)]
    p = [n["p"] for n in c["neighbours"]]
    assert [n["p_holm"] for n in c["neighbours"]] == holm(p)
    # the data change, the conclusion changes: one failure at 6 leaves no size supported
    rows[2 * 35 + 34]["success"] = False
    assert "smallest" not in conclude(summarize(rows), 0.9)
    assert conclude(summarize(rows), 0.8)["smallest"] == 6
