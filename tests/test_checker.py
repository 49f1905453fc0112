"""Study 2 units: data, the stacked model (bit-for-bit equal to separate nets), the stopping
rule and the restarts table, the hand-designed net, lines, hidden codes, the scale sweep, the
course logs, and both stages in process."""

import json
import re

import pytest
import torch
from torch import nn

from nnstudies import stage
from nnstudies.checker import analysis, courselog, data, hand, train
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


def test_course_log_lines():
    assert courselog.progress_line(100, 0.68581, 5) == "ep:  100 loss: 0.6858 acc: 55.56"
    log = courselog.train_log([(100, 0.5, 9)], [torch.zeros(1)], 9)
    assert log.splitlines() == ["ep:  100 loss: 0.5000 acc: 100.00", "Final Weights:",
                                "tensor([0.])", "Final Accuracy:  100.0"]


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


def _result(first_full, met_rule, epochs, correct=None):
    n = len(first_full)
    return train.Result(model=None, kept=0, epochs=epochs, first_full=first_full,
                        met_rule=met_rule, final_loss=[0.1] * n, final_correct=correct or [9] * n)


def test_restart_table_says_what_happened_to_each_restart():
    # Restart 0 met the rule at 2500 and stopped the batch; 1 had reached 100% at 900 but was
    # stopped before holding it for `patience` epochs; 2 never reached 100%.
    rows = train.restart_table(_result([500, 900, None], [2500, None, None], 2500, [9, 9, 8]),
                               [0, 1, 2], max_epochs=200000)
    assert [r["outcome"] for r in rows] == [train.MET_RULE, train.STOPPED_AT_100, train.STOPPED_BELOW]
    assert rows[1]["first_epoch_at_100"] == 900 and rows[1]["met_rule_at"] is None
    # The whole budget ran out: nobody was stopped by another restart.
    rows = train.restart_table(_result([700, None], [None, None], 3000), [0, 1], max_epochs=3000)
    assert [r["outcome"] for r in rows] == [train.BUDGET_AT_100, train.BUDGET_BELOW]


def test_a_unit_with_known_weights_gives_its_line_and_split():
    x, t = data.points()
    net = StackedMLP.single([[1.0, 0.0]], [-0.5], [1.0], 0.0, act="step")  # x = 0.5
    (line,) = analysis.unit_lines(net, x, t)
    assert line["equation"] == "x - 0.5 = 0"
    assert line["active"] == [[1.0, -1.0, 1], [1.0, 0.0, 0], [1.0, 1.0, 1]]
    assert len(line["inactive"]) == 6 and line["on_line"] == []
    on = analysis.unit_lines(StackedMLP.single([[0.0, 1.0]], [0.0], [1.0], 0.0), x, t)[0]
    assert on["equation"] == "y = 0" and [p[:2] for p in on["on_line"]] == [[-1, 0], [0, 0], [1, 0]]
    assert analysis.line_equation([-2.0, 0.5], 0.0) == "-2x + 0.5y = 0"
    assert analysis.line_equation([0.0, 1.0], 3.0) == "y + 3 = 0"


def test_hand_hidden_codes_count_the_lines_below_each_point():
    x, t = data.points()
    codes = analysis.hidden_codes(hand.hand_net(DEFAULT, "step"), x, t)
    for c in codes:
        s = c["x"] + c["y"]
        assert c["code"] == [int(s + b >= 0) for b in (-1.5, -0.5, 0.5, 1.5)]
        assert c["active"] == sum(c["code"]) and c["output"] == c["target"]


def test_smallest_scale_and_the_seed_design_at_the_seeds_own_scale():
    x, t = data.points()
    k = analysis.smallest_scale(DEFAULT, x, t, analysis.geometric_scales(1, 1000, 20))
    assert 1.9 < k < 2.0
    assert analysis.evaluate(hand.hand_net(DEFAULT, "sig", k), x, t)["correct"] == 9
    assert analysis.evaluate(hand.hand_net(DEFAULT, "sig", 0.99 * k), x, t)["correct"] < 9
    # The seed's design at its k = 100: all nine counted right, but with no positive margin.
    seed = analysis.evaluate(hand.hand_net(hand.SEED_DESIGN, "sig", hand.SEED_SCALE), x, t)
    assert seed["correct"] == 9 and seed["output_margin"] <= 0


TINY = """\
hid: 6
tracking: {enabled: false, required: false}
checker:
  train: {act: sig, init: 0.15, lr: 0.01, weight_decay: 1.0e-5, max_epochs: 1500, patience: 200,
          restarts: 8, seed: 0, log_every: 100, threads: 1,
          cpu_path: host}
  hand: {in_weight: [[1, 1], [1, 1], [1, 1], [1, 1]], hid_bias: [-1.5, -0.5, 0.5, 1.5],
         out_weight: [1, -1, 1, -1], out_bias: 0.5, scale: 10}
"""


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """Both stages run in process on tiny params, as `dvc repro` would run them."""
    import importlib.util
    from pathlib import Path

    root = tmp_path_factory.mktemp("checker")
    (root / "params.yaml").write_text(TINY)
    for name in ("train_checker", "hand_checker"):
        path = Path(__file__).resolve().parents[1] / "stages" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        cpu_group = "checker.train" if name == "train_checker" else None  # as their main()s
        stage.run(name, "checker", module.PARAMS, module.produce, root=root, cpu_group=cpu_group)
    return root


def test_train_checker_stage_writes_metrics_results_and_files(staged):
    metrics = json.loads((staged / "metrics/train_checker.json").read_text())
    results = json.loads((staged / "results/train_checker.json").read_text())
    assert metrics["accuracy"] == 1.0 and metrics["restarts_succeeded"] >= 1
    assert set(metrics) == {"accuracy", "correct", "loss", "output_margin", "epochs_to_100",
                            "epochs_run", "restarts_succeeded", "restarts_reached_100"}
    assert results["settings"]["patience"] == 200 and results["settings"]["hid"] == 6
    assert len(results["restarts"]) == 8 and len(results["lines"]) == 6
    assert len(results["final_weights"]["in_weight"]) == 6 and len(results["activations"]) == 9
    kept = results["restarts"][results["kept"]["restart"]]
    assert kept["kept"] and kept["outcome"] == train.MET_RULE
    files = sorted(p.name for p in (staged / "plots/train_checker").iterdir())
    # the same names whatever hid: no file of another width can linger after `dvc exp apply`
    assert files == sorted(["check.png", "history.csv", "history.png", "init.png", "lines.png",
                            "out.png", "hidden.png"])
    assert sorted(results["figures"].values()) == [f for f in files if f.endswith(".png")]
    log = (staged / "logs/train_checker/train.log").read_text()
    assert log.startswith("ep:  100 loss: ") and "Final Accuracy:  100.0" in log
    assert (staged / "models/checker.pt").exists()


def test_hand_checker_stage_writes_the_design_and_the_scale_sweep(staged):
    metrics = json.loads((staged / "metrics/hand_checker.json").read_text())
    results = json.loads((staged / "results/hand_checker.json").read_text())
    assert metrics["step"]["accuracy"] == 1.0 and metrics["sigmoid"]["accuracy"] == 1.0
    assert metrics["step"]["output_margin"] == 0.5 and 1.9 < metrics["smallest_scale"] < 2.0
    assert results["seed_design"]["scale"] == 100 and results["seed_design"]["step"]["output_margin"] == 0
    sweep = results["scale_sweep"]
    assert len(sweep["params"]) == len(sweep["scales"]) and sweep["scales"][0] == 1.0
    assert [c["active"] for c in results["hidden_codes"]] == [0, 1, 2, 1, 2, 3, 2, 3, 4]
    files = sorted(p.name for p in (staged / "plots/hand_checker").iterdir())
    assert files == sorted(["check.png", "lines.png", "scale.png", "step_hidden.png", "step_out.png",
                            "sigmoid_hidden.png", "sigmoid_out.png"])
    assert sorted(results["figures"].values()) == files
    assert "Initial Accuracy:  100.0" in (staged / "logs/hand_checker/hand.log").read_text()


def test_bad_params_stop_the_stage_before_anything_is_written(tmp_path):
    from nnstudies.params import ParamError

    (tmp_path / "params.yaml").write_text(TINY.replace("hid: 6", "hid: 0"))
    with pytest.raises(ParamError, match="hid = 0: must be an integer from 1 to 64"):
        stage.run("train_checker", "checker", ["hid", "checker.train", "tracking"],
                  lambda p, ctx: None, root=tmp_path)
    assert not (tmp_path / "metrics").exists()


# ---- The report's Part 2: every sentence from results, known answers and changed data ----

def _codes(design):
    x, t = data.points()
    return analysis.hidden_codes(hand.hand_net(design, "step"), x, t)


def test_alternation_sentence_is_read_from_the_hidden_codes():
    from nnstudies.report.checker import alternation_text

    text = alternation_text(_codes(DEFAULT), DEFAULT)
    assert ("h3 (blue to red, output weight -1), then h2 (red to blue, output weight +1), then h1 "
            "(blue to red, output weight -1), then h0 (red to blue, output weight +1)") in text
    assert "b2 = 0.5 puts it on the blue side with a margin" in text
    # The seed's output bias 0: the same codes, but the bottom band is blue only by step(0) = 1.
    seed = alternation_text(_codes(hand.SEED_DESIGN), hand.SEED_DESIGN)
    assert "b2 = 0 is exactly 0 there, blue only because step(0) = 1" in seed
    # Output weights that do not alternate: the argument is said not to apply.
    wrong = dict(DEFAULT, out_weight=[1.0, 1.0, 1.0, -1.0])
    assert "does not apply" in alternation_text(_codes(DEFAULT), wrong)
    # Lines that do not sort the points into bands of one class: said so.
    tilted = dict(DEFAULT, in_weight=[[1.0, 0.0]] * 4)
    assert "cannot be read off" in alternation_text(_codes(tilted), tilted)


def test_side_sentence_names_the_points_on_the_active_side():
    from nnstudies.report.checker import side_text

    x, t = data.points()
    line = analysis.unit_lines(hand.hand_net(DEFAULT, "step"), x, t)[0]
    assert side_text(line) == ("h0 (`x + y - 1.5 = 0`) is on for 1 blue: (1, 1) — a group of one "
                               "class only (blue)")
    line["active"].append([0.0, 1.0, 0])
    assert side_text(line) == "h0 (`x + y - 1.5 = 0`) is on for 1 blue and 1 red: (1, 1), (0, 1)"


def test_report_states_the_patience_and_the_restarts_from_results(staged):
    from nnstudies.report.checker import restart_summary

    results = json.loads((staged / "results/train_checker.json").read_text())
    text = restart_summary(results)
    assert "(100% for 200 consecutive epochs)" in text
    reached = sum(r["first_epoch_at_100"] is not None for r in results["restarts"])
    assert f"**{reached} reached 100%**" in text and "**1 met the patience rule**" in text
    results["settings"]["patience"] = 500  # as `-S checker.train.patience=500` would record it
    assert "(100% for 500 consecutive epochs)" in restart_summary(results)
    results["stopped_by"] = None
    for r in results["restarts"]:
        r["met_rule_at"] = None
    assert "No restart met the rule within the budget of 1,500 epochs" in restart_summary(results)


def test_scale_sentences_follow_the_sweep_and_attribute_the_seeds_k(staged):
    from nnstudies.report.checker import scale_text, seed_scale_text

    results = json.loads((staged / "results/hand_checker.json").read_text())
    text = scale_text(results)
    assert "smallest scale that classifies all nine points is k = 1.98; so k = 10 suffices" in text
    results["scale"], results["smallest_scale"] = 1.5, 1.98
    assert "so k = 1.5 does not suffice" in scale_text(results)
    seed = seed_scale_text(results)
    assert "by k = 100" in seed and "get an output of exactly 0.5" in seed
    for a in results["seed_design"]["sigmoid"]["activations"]:
        a["output"] = 0.9
    assert "get an output of exactly 0.5" not in seed_scale_text(results)


def test_the_whole_section_renders_from_results_alone(staged):
    from nnstudies.report import checker, document

    blocks = checker.section(staged / "metrics", staged / "results", staged / "plots", {})
    text = document.markdown(blocks, staged)
    assert "### Q1" in text and "### Q2" in text and "### Q3" in text
    assert "plots/train_checker/lines.png" in text and "plots/hand_checker/scale.png" in text
    linked = set(re.findall(r"plots/\w+/\w+\.png", text))
    assert {"plots/train_checker/hidden.png", "plots/hand_checker/sigmoid_hidden.png"} <= linked
    assert all((staged / path).is_file() for path in linked)
