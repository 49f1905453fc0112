"""The three nets compared with their uncertainty: paired tests on synthetic predictions where
the answer is known, and the report's sentences following them."""

import numpy as np
import pytest

from nnstudies.kmnist import comparison
from nnstudies.report import kmnist as part1

CLASSES = ["o", "ki"]
ACTUAL = np.array([0] * 100 + [1] * 100)


def scored(net, wrong_in_o=(), wrong_in_ki=()):
    """A net right on every image except the listed positions within each class."""
    predicted = ACTUAL.copy()
    predicted[list(wrong_in_o)] = 1
    predicted[[100 + i for i in wrong_in_ki]] = 0
    return comparison.Scored(net, {"lin": "NetLin", "full": "NetFull", "conv": "NetConv",
                                   "wide": "NetFull-wide"}[net],
                             ACTUAL, predicted)


def compare(lin, full, conv):
    return comparison.study([lin, full, conv], CLASSES).results


def test_a_big_gain_in_one_class_is_supported_and_a_small_one_is_not():
    lin = scored("lin", wrong_in_o=range(40), wrong_in_ki=range(4))
    full = scored("full", wrong_in_o=range(40), wrong_in_ki=range(2))   # ki: 2 images better
    conv = scored("conv", wrong_in_o=range(5), wrong_in_ki=range(2))    # o: 35 images better
    r = compare(lin, full, conv)
    steps = {(s["from"], s["to"]): {c["class"]: c for c in s["classes"]} for s in r["per_class"]["steps"]}
    assert steps[("full", "conv")]["o"]["only_to"] == 35 and steps[("full", "conv")]["o"]["supported"]
    assert steps[("lin", "full")]["ki"]["only_to"] == 2 and not steps[("lin", "full")]["ki"]["supported"]
    assert r["per_class"]["tests"] == 4
    text = part1.gain_sentence(r)
    assert "NetFull -> NetConv: o (+35.0 points" in text and "NetLin -> NetFull: none" in text
    assert "The other 3 changes" in text


def test_the_pair_sentence_says_ahead_only_where_the_test_says_so():
    lin = scored("lin", wrong_in_o=range(30))
    full = scored("full", wrong_in_o=range(29))
    conv = scored("conv", wrong_in_o=range(2))
    text = part1.pairs_test_sentence(compare(lin, full, conv))
    assert "NetFull is right where NetLin is wrong on 1 image, the reverse on 0 (p = 1.0e+00)" in text
    assert "NetConv ahead of NetFull" in text and "NetFull ahead of NetLin" not in text
    same = part1.pairs_test_sentence(compare(lin, lin.__class__("full", "NetFull", ACTUAL, lin.predicted),
                                             lin.__class__("conv", "NetConv", ACTUAL, lin.predicted)))
    assert "no pair differs at p < 0.05: these 200 images do not tell the nets apart" in same


def test_nets_scored_on_different_images_are_refused():
    other = comparison.Scored("full", "NetFull", ACTUAL[::-1].copy(), ACTUAL[::-1].copy())
    with pytest.raises(ValueError, match="different test images"):
        comparison.study([scored("lin"), other], CLASSES)


def test_the_size_control_sentence_follows_its_tests():
    wide_results = {"settings": {"sizes": {"hidden": 530}, "parameters": 421360}}
    conv_results = {"settings": {"parameters": 421642}}
    lin = scored("lin", wrong_in_o=range(30))
    full = scored("full", wrong_in_o=range(20))
    conv = scored("conv", wrong_in_o=range(2))
    behind = scored("wide", wrong_in_o=range(20))  # as NetFull: far behind NetConv
    r = comparison.study([lin, full, conv, behind], CLASSES).results
    text = part1.control_sentence(r, wide_results, conv_results)
    assert "NetFull widened to 530 hidden units (`kmnist.wide`) has 421,360 parameters" in text
    assert "the parameter count alone does not give NetConv its lead" in text
    assert "widening NetFull does not change its accuracy detectably" in text
    level = scored("wide", wrong_in_o=range(3))  # as NetConv: widening alone closes the gap
    r = comparison.study([lin, full, conv, level], CLASSES).results
    text = part1.control_sentence(r, wide_results, conv_results)
    assert "the two nets are not told apart: this control cannot separate size" in text
    assert "widening NetFull raises its accuracy beyond chance" in text
    assert part1.control_sentence(compare(lin, full, conv), None, conv_results).startswith(
        "No size control was run")
