"""The three KMNIST nets compared on the same test images, with their uncertainty.

Each net's test accuracy gets a 95% Wilson interval (the test images are the sample).  Two
nets scored on the same images are compared by McNemar's exact test on the paired outcomes:
only the images one net gets right and the other wrong carry evidence.  Per class, each step
up (NetLin -> NetFull, NetFull -> NetConv) is tested the same way within the class's images,
and the 20 tests are read together under Holm's correction, so a per-class difference is
called real only where the family-wise error rate stays at 5%.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnstudies.kmnist import plots
from nnstudies.outputs import Outputs
from nnstudies.stats import holm, mcnemar_exact, wilson

ALPHA = 0.05  # the level of every test: per pair of nets, and family-wise over the per-class tests
# (bigger net, smaller net); wide: NetFull at about NetConv's size, against both
PAIRS = (("full", "lin"), ("conv", "full"), ("conv", "lin"), ("conv", "wide"), ("wide", "full"))
STEPS = (("lin", "full"), ("full", "conv"))  # the steps up the report reads per class


@dataclass(frozen=True)
class Scored:
    """One net's predictions on the test images, in test-set order."""
    net: str
    title: str
    actual: np.ndarray     # class index per test image
    predicted: np.ndarray  # class index per test image


def paired(a: Scored, b: Scored, where: np.ndarray | None = None) -> dict:
    """Images right under ``a`` only and under ``b`` only (within ``where``), McNemar's p."""
    right_a, right_b = a.actual == a.predicted, b.actual == b.predicted
    if where is not None:
        right_a, right_b = right_a[where], right_b[where]
    only_a, only_b = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())
    return {"only_a": only_a, "only_b": only_b, "p": mcnemar_exact(only_a, only_b)}


def rate(s: Scored, index: int, name: str) -> dict:
    """The net's accuracy on the test images of one class, with its 95% Wilson interval."""
    where = s.actual == index
    correct, images = int((s.predicted[where] == index).sum()), int(where.sum())
    return {"class": name, "correct": correct, "images": images,
            "accuracy": correct / images if images else 0.0,
            "interval": list(wilson(correct, images)) if images else [0.0, 1.0]}


def study(scored: list[Scored], classes: list[str]) -> Outputs:
    nets = {s.net: s for s in scored}
    first = scored[0]
    for s in scored[1:]:
        if not np.array_equal(s.actual, first.actual):
            raise ValueError(f"{s.net} and {first.net} were scored on different test images")
    accuracy = {}
    for s in scored:
        correct, images = int((s.actual == s.predicted).sum()), len(s.actual)
        accuracy[s.net] = {"title": s.title, "correct": correct, "images": images,
                           "accuracy": correct / images, "interval": list(wilson(correct, images)),
                           "per_class": [rate(s, index, name) for index, name in enumerate(classes)]}
    pairs = [{"a": a, "b": b, **paired(nets[a], nets[b])} for a, b in PAIRS
             if a in nets and b in nets]
    steps = []
    for low, high in STEPS:
        if low not in nets or high not in nets:
            continue
        rows = []
        for index, name in enumerate(classes):
            where = first.actual == index
            t = paired(nets[high], nets[low], where)
            rows.append({"class": name, "images": int(where.sum()),
                         "from_accuracy": float((nets[low].predicted[where] == index).mean()),
                         "to_accuracy": float((nets[high].predicted[where] == index).mean()),
                         "only_from": t["only_b"], "only_to": t["only_a"], "p": t["p"]})
        steps.append({"from": low, "to": high, "classes": rows})
    adjusted = holm([row["p"] for step in steps for row in step["classes"]])
    for row, p in zip((row for step in steps for row in step["classes"]), adjusted):
        row["p_holm"], row["supported"] = p, p < ALPHA
    results = {"alpha": ALPHA, "nets": accuracy, "pairs": pairs,
               "per_class": {"correction": "holm", "tests": len(adjusted), "steps": steps},
               "figures": {"accuracy": "accuracy.png"}}
    metrics = {net: {"test_accuracy_low": a["interval"][0], "test_accuracy_high": a["interval"][1]}
               for net, a in accuracy.items()}
    return Outputs(metrics=metrics, results=results,
                   files={"accuracy.png": plots.comparison_figure(accuracy, steps, classes, ALPHA)})
