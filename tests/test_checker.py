"""Study 2 units: data, the stacked model (bit-for-bit equal to separate nets), the stopping
rule, the hand-designed net, tables and line equations."""

import pytest
import torch
from torch import nn

from nnstudies.checker import analysis, data, hand, train
from nnstudies.checker.model import StackedMLP, sigmoid, step

SETTINGS = dict(lr=0.01, weight_decay=1e-5, log_every=10)


def test_points_are_the_course_checkerboard():
    x, t = data.points()
    assert x.shape == (9, 2) and t.shape == (9, 1)
    assert x[:3].tolist() == [[-1, -1], [-1, 0], [-1, 1]]  # check.csv's row order
    for (a, b), target in zip(x.tolist(), t[:, 0].tolist()):
        assert target == (1.0 if (a + b) % 2 == 0 else 0.0)


def test_step_gives_one_at_zero():
    assert step(torch.tensor([-1e-7, 0.0, 1e-7])).tolist() == [0.0, 1.0, 1.0]


def test_sigmoid_rounds_the_same_wherever_an_element_sits():
    z = torch.linspace(-8, 8, 1001)
    alone = torch.cat([sigmoid(z[i:i + 7]) for i in range(0, len(z), 7)])
    assert torch.equal(sigmoid(z), alone)


def test_stacked_model_matches_plain_linear_layers():
    x, _ = data.points()
    model = StackedMLP.random([3, 4], hid=5, std=1.0)
    out = model(x)
    for r in range(2):
        w1, b1, w2, b2 = model.weights(r)
        in_hid, hid_out = nn.Linear(2, 5), nn.Linear(5, 1)
        with torch.no_grad():
            in_hid.weight.copy_(w1), in_hid.bias.copy_(b1)
            hid_out.weight.copy_(w2), hid_out.bias.copy_(b2)
        hidden = torch.sigmoid(in_hid(x))
        torch.testing.assert_close(out.hidden[r], hidden)
        torch.testing.assert_close(out.output[r], torch.sigmoid(hid_out(hidden)))


def test_restart_start_does_not_depend_on_how_many_restarts():
    seeds = train.restart_seeds(7, 5)
    few, many = StackedMLP.random(seeds[:2], 6, 0.15), StackedMLP.random(seeds, 6, 0.15)
    for a, b in zip(few.parameters(), many.parameters()):
        assert torch.equal(a, b[:2])


def test_batched_training_equals_separate_training_bit_for_bit():
    x, t = data.points()
    seeds = train.restart_seeds(0, 5)
    batched = StackedMLP.random(seeds, 6, 0.15)
    train.train(batched, x, t, max_epochs=60, patience=10**6, **SETTINGS)
    for r, seed in enumerate(seeds):
        alone = StackedMLP.random([seed], 6, 0.15)
        train.train(alone, x, t, max_epochs=60, patience=10**6, **SETTINGS)
        for a, b in zip(batched.parameters(), alone.parameters()):
            assert torch.equal(a[r], b[0]), f"restart {r} differs from its separate run"


def test_training_keeps_a_restart_that_met_the_rule_and_is_deterministic():
    x, t = data.points()
    runs = []
    for _ in range(2):
        model = StackedMLP.random(train.restart_seeds(0, 8), 6, 0.15)
        runs.append(train.train(model, x, t, max_epochs=20000, patience=200, **SETTINGS))
    res = runs[0]
    assert res.succeeded[res.kept] and res.final_correct[res.kept] == 9
    assert res.first_full[res.kept] + 200 - 1 <= res.epochs  # it held 100% for `patience` epochs
    assert all(res.first_full[r] is not None for r in range(8) if res.succeeded[r])
    assert res.epochs == runs[1].epochs and res.final_loss == runs[1].final_loss
    assert [h[0] for h in res.history] == list(range(10, res.epochs + 1, 10))


def test_training_stops_at_max_epochs_and_keeps_the_best():
    x, t = data.points()
    model = StackedMLP.random(train.restart_seeds(1, 4), 6, 0.15)
    res = train.train(model, x, t, max_epochs=30, patience=2000, **SETTINGS)
    assert res.epochs == 30 and not any(res.succeeded)
    assert res.final_correct[res.kept] == max(res.final_correct)


def test_step_nets_are_evaluated_not_trained():
    x, t = data.points()
    model = StackedMLP.random([0, 1], 4, 0.15, act="step")
    before = [p.clone() for p in model.parameters()]
    res = train.train(model, x, t, max_epochs=100, patience=10, **SETTINGS)
    assert res.epochs == 0 and all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_course_log_line():
    assert train.course_log(100, 0.68581, 5) == "ep:  100 loss: 0.6858 acc: 55.56"


DEFAULT = dict(hand.SEED_DESIGN, out_bias=0.5)


@pytest.mark.parametrize("act, scale", [("step", 1.0), ("sig", 10.0)])
def test_default_hand_design_classifies_all_nine_with_a_margin(act, scale):
    x, t = data.points()
    result = analysis.evaluate(hand.hand_net(DEFAULT, act, scale), x, t)
    assert result["correct"] == 9 and result["output_margin"] > 0.4 * scale


def test_seed_design_relies_on_step_of_zero():
    x, t = data.points()
    stepped = analysis.evaluate(hand.hand_net(hand.SEED_DESIGN, "step"), x, t)
    assert stepped["correct"] == 9 and stepped["output_margin"] == 0.0
    # Scaled by 10 under sigmoid, the blue points fall just below 0.5: only 4 of 9 right.
    scaled = analysis.evaluate(hand.hand_net(hand.SEED_DESIGN, "sig", 10.0), x, t)
    assert scaled["correct"] == 4 and scaled["output_margin"] < 0


def test_hand_activation_table_and_lines():
    x, t = data.points()
    net = hand.hand_net(DEFAULT, "step")
    header, rows = analysis.activation_table(net, x, t)
    assert header == ["x", "y", "target", "h0", "h1", "h2", "h3", "output"]
    for row in rows:
        s = row[0] + row[1]
        assert row[3:7] == [float(s + b >= 0) for b in (-1.5, -0.5, 0.5, 1.5)]
        assert row[7] == row[2]
    assert analysis.dividing_lines(net)[0] == "x + y - 1.5 = 0"
    assert analysis.line_equation([-2.0, 0.5], 0.0) == "-2x + 0.5y = 0"
    assert analysis.line_equation([0.0, 1.0], 3.0) == "y + 3 = 0"
    md = analysis.markdown_table(header, rows)
    assert md.splitlines()[2] == "| -1 | -1 | 1 | 0 | 0 | 0 | 0 | 1 |"
