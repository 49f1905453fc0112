"""The checkerboard's compiled lane kernel: each lane as if alone (bit for bit), and the torch
loop's run to float32 rounding (the same epochs to 100% and to the rule, losses close)."""

from __future__ import annotations

import torch

import floatcheck
from nnstudies.checker import compiled, data, train
from nnstudies.checker.model import StackedMLP

SETTINGS = {"lr": 0.01, "weight_decay": 1e-5}


def lanes(seeds, hid, max_epochs=3000, patience=300, **kw):
    x, t = data.points()
    model = StackedMLP.random([train.restart_seeds(s, 1)[0] for s in seeds], hid, 0.15)
    return compiled.train(model, x, t, max_epochs=max_epochs, patience=patience,
                          **{**SETTINGS, **kw})


def test_a_lane_is_the_same_alone_or_among_others_bit_for_bit():
    seeds = [0, 1, 2, 3, 4, 5, 6]  # some meet the rule early, some never: the batch runs on
    together = lanes(seeds, 6)
    assert any(together.met_rule) and not all(together.met_rule)
    for i, seed in enumerate(seeds):
        alone = lanes([seed], 6)
        assert (alone.epochs[0], alone.first_full[0], alone.met_rule[0], alone.final_loss[0],
                alone.final_correct[0]) == (together.epochs[i], together.first_full[i],
                                            together.met_rule[i], together.final_loss[i],
                                            together.final_correct[i])


CASES = [(1, 6), (0, 12), (3, 12), (5, 4), (4, 24)]
BOUND = 1e-6  # relative, after 200 Adam steps: ~16 float32 ulps; measured <= 1.9e-7


def _losses(epochs: int, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """The torch loop's and the kernel's loss after ``epochs`` (the rule out of reach)."""
    x, t = data.points()
    ref, mine = [], []
    for seed, hid in CASES:
        start = train.restart_seeds(seed, 1)
        ref += train.train(StackedMLP.random(start, hid, 0.15), x, t, max_epochs=epochs,
                           patience=10**6, log_every=epochs, **SETTINGS).final_loss
        mine += lanes([seed], hid, max_epochs=epochs, patience=10**6, **kw).final_loss
    return torch.tensor(mine, dtype=torch.float64), torch.tensor(ref, dtype=torch.float64)


def test_the_kernel_follows_the_torch_loop():
    """Over 200 epochs the kernel's loss is torch's to float32 rounding; a learning rate off
    by 1% (a small real bug) moves it by far more than the bound."""
    mine, ref = _losses(200)
    floatcheck.assert_within(mine, ref, BOUND * ref, "loss after 200 epochs")
    off, _ = _losses(200, lr=0.0101)
    assert ((off - ref).abs() > 100 * BOUND * ref).sum() >= 4


def test_the_rules_epochs_agree_within_the_epochs_tolerance():
    """Over a whole run the plateau escapes amplify rounding: the epoch of the 9th point's
    crossing moves as between two CPU paths (gates.yaml's epochs tolerance, 50)."""
    x, t = data.points()
    for seed, hid in CASES[:3]:
        ref = train.train(StackedMLP.random(train.restart_seeds(seed, 1), hid, 0.15), x, t,
                          max_epochs=2500, patience=200, log_every=2500, **SETTINGS)
        mine = lanes([seed], hid, max_epochs=2500, patience=200)
        assert (mine.met_rule[0] is None) == (ref.met_rule[0] is None)
        if ref.met_rule[0] is not None:
            assert abs(mine.met_rule[0] - ref.met_rule[0]) <= 50
            assert abs(mine.first_full[0] - ref.first_full[0]) <= 50
