"""Explanations the data already hold, each computed from results: near-duplicate hidden units,
and the hand design's width against random starts.  Known answers on synthetic data; a changed
input changes the sentence."""

from nnstudies.report import checker, sweeps
from nnstudies.stats import wilson


def test_near_duplicate_units_are_found_by_their_lines():
    w = {"in_weight": [[6.28, 4.53], [-7.9, -8.0], [6.27, 4.67]], "hid_bias": [-8.91, 4.27, -8.99]}
    text = checker.duplicate_units_text(w)
    assert text.startswith("Near-duplicate units: h0 and h2 (cosine 0.99")
    assert "the 3 units draw about 2 distinct half-planes" in text
    w["in_weight"][2] = [-6.27, 4.67]  # now another line: no twins
    assert checker.duplicate_units_text(w).startswith("No two of the 3 hidden units")


def test_the_hand_designs_width_against_random_starts():
    low, high = wilson(2, 35)
    sizes = {"hid_4": {"hid": 4, "runs": 35, "successes": 2, "rate": 2 / 35, "low": low, "high": high}}
    hand = {"design": {"hid_bias": [-1.5, -0.5, 0.5, 1.5]}, "step": {"correct": 9}}
    text = sweeps.hand_text(sizes, hand)
    assert text == ("At hid = 4, the hand-designed net's width, a solution with that many units "
                    "exists (the hand design classifies all nine points), yet single random runs "
                    "reach one in 2 of 35 (6%, 95% interval 2-19%).")
    hand["step"]["correct"] = 8
    assert "does not classify all nine points" in sweeps.hand_text(sizes, hand)
    assert sweeps.hand_text({}, hand) == ""
