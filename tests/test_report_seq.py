"""The Part 3 report section: every sentence from results/ and metrics/, known answers in,
the right sentence out, and a change of the data changes the sentence."""

import json

import numpy as np
import pytest

from nnstudies import stage
from nnstudies.report import document, seq
from nnstudies.seq import languages, mechanism, models, plots
from nnstudies.stats import wilson

TASKS = ("reber", "anbn", "anbncn", "ereber")


def sequences(task, count=12):
    g = languages.generate(task, 0, 1, 1, count, max_n=5)
    return g, [g.test.sequence(i, g.prob_table) for i in range(count)]


def base_runs(task):
    g, seqs = sequences(task)
    runs = {"symbols": [s for s, _, _ in seqs], "states": [st for _, st, _ in seqs],
            "probs": [p for _, _, p in seqs], "out": [p for _, _, p in seqs]}
    return g, runs


def reber_results():
    g, runs = base_runs("reber")
    # each state a corner of its own: the hidden vectors separate perfectly
    corners = np.random.default_rng(0).normal(size=(g.max_state + 1, 2))
    runs["hidden"] = [corners[st[1:]] for st in runs["states"]]
    net = models.build("srn", 7, 2, 1)
    return plots.machine_findings(net, runs, g)


def counter_results(task, unit=0):
    """Hidden rows whose unit ``unit`` IS the count; the other the phase."""
    g, runs = base_runs(task)
    hidden = []
    for s in runs["symbols"]:
        phase, count = mechanism.phase_counts(s)
        cols = [np.where(phase == 0, 1.0, -1.0)] * (len(g.alphabet))
        cols[unit] = count.astype(float)
        hidden.append(np.c_[tuple(cols)])
    runs["hidden"] = hidden
    return plots.counter_findings(runs, g)


def context_results(carrier=2, forget=0.99):
    g, runs = base_runs("ereber")
    t = languages.REBER.index("T")
    rng = np.random.default_rng(0)
    runs["context"] = []
    gates = []
    for s in runs["symbols"]:
        c = rng.normal(size=(len(s) - 1, 4))
        c[:, carrier] = 2.0 if s[1] == t else -2.0
        runs["context"].append(c)
        gates.append({"c": c, "f": np.full_like(c, forget), "i": np.full_like(c, 0.1),
                      "g": np.zeros_like(c), "o": np.full_like(c, 0.5)})
    runs["hidden"] = runs["context"]
    return plots.context_findings(runs, gates, g)


def train_results(task, succeeded=11):
    model, hid = {"ereber": ("lstm", 5)}.get(task, ("srn", 2))
    rows = [{"read": "B", "next": "T", "state": 1, "hidden": [0.1] * hid, "output": [0.5, 0.5],
             "target": [0.5, 0.5], **({"context": [0.2] * hid} if model == "lstm" else {})}]
    return {"task": task, "model": model, "hid": hid, "epochs": 600, "kept_restart": 3,
            "selection": "lowest validation error (+ final)", "restarts": 16,
            "succeeded": succeeded, "success_bounds": {"error": 0.01},
            "success_split": "validation",
            "success_window": {"share": 0.1, "from_epoch": 540,
                               "kept_worst": {"evaluations": 1, "error": 0.009}},
            "settings": {"optim": "adam", "lr": 0.001, "momentum": 0.0, "weight_decay": 1e-5,
                         "init": 0.001, "seed": 0, "log_every": 200, "checkpoint_every": 300,
                         "kernel": "compiled"},
            "data": {"train_sequences_used": 601, "validation_sequences": 7,
                     "test_sequences": 12, "seed": 0},
            "diagnostic": {"epoch": 600, "restart": 3, "split": "validation", "sequence": 0,
                           "rows": rows, "scores": {"error": 0.25}}}


def write(root, name, metrics, results):
    for folder, data in (("metrics", metrics), ("results", results)):
        (root / folder).mkdir(exist_ok=True)
        (root / folder / f"{name}.json").write_text(json.dumps(stage._plain(data)))


@pytest.fixture
def root(tmp_path):
    found = {"reber": reber_results(), "anbn": counter_results("anbn"),
             "anbncn": counter_results("anbncn"), "ereber": context_results()}
    for task in TASKS:
        f = found[task]
        metrics = {"error": 0.01, **({"final": 0.001} if task == "ereber" else {}),
                   **f.pop("metrics")}
        results = {"task": task, "epoch": 600, "restart": 3, "restarts": 16, "split": "test",
                   "sequences": 12, "shown_sequences": 3, **f}
        write(tmp_path, f"plot_seq_{task}", metrics, results)
        write(tmp_path, f"train_seq_{task}",
              {"test": {"error": 0.01, **({"final": 0.001} if task == "ereber" else {})},
               "success_count": 11, "restarts": 16}, train_results(task))
    return tmp_path


def render(root) -> str:
    blocks = seq.section(root / "metrics", root / "results", root / "plots", {})
    return document.markdown(blocks, root / "reports")


def edit(root, name, change):
    path = root / "results" / f"{name}.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_a_count_no_single_unit_holds_is_not_given_to_one_unit(root):
    def spread_over_two_units(found):  # the B count held by units 0 and 1 together
        b = found["counting"]["phases"]["B"]
        b.update(r=0.70, joint_r=0.98, end={"threshold": -0.2, "accuracy": 0.898, "above": False},
                 end_joint={"accuracy": 0.99})
    def q3(text):
        return text.split("### Q3.")[1].split("### Q4.")[0]

    assert "**hidden unit 0 counts down the B's still to come**" in q3(render(root))
    edit(root, "plot_seq_anbncn", spread_over_two_units)
    text = q3(render(root))
    assert "counts down the B's" not in text
    assert ("**no single unit follows the B's still to come** (the closest, unit 0, at r = +0.70, "
            "below 0.9); a least-squares fit on all 3 units together follows it at r = 0.98") in text
    assert "a threshold on a line through all 3 units for 99.0%" in text
    assert "no single unit holds that count" in text


def test_an_ungated_reading_says_so_with_its_numbers(root):
    text = render(root)
    assert "`plot_seq_anbncn` is not gated: no bound is set for its readings." in text


def test_restarts_and_kept_restart_are_the_true_numbers(root):
    text = render(root)
    assert "**16 restarts**" in text and "**11 of 16 restarts** met the bounds" in text
    assert "restart 3 is kept" in text and "12 held-out test sequences" in text
    write(root, "train_seq_anbn", {"test": {"error": 0.2}, "success_count": 2, "restarts": 16},
          train_results("anbn", succeeded=2))
    assert "**2 of 16 restarts** met the bounds" in render(root)


def test_the_count_unit_is_named(root):
    text = render(root)
    assert ("**hidden unit 0 counts the A's read so far** (r = +1.00" in text
            and "**hidden unit 0 counts down the B's still to come** (r = +1.00" in text)
    assert "this one threshold is right for 100.0%" in text
    found = counter_results("anbn", unit=1)
    write(root, "plot_seq_anbn", {"error": 0.01, **found.pop("metrics")},
          {"task": "anbn", "epoch": 600, "restart": 3, "restarts": 16, "split": "test",
           "sequences": 12, "shown_sequences": 3, **found})
    text = render(root)
    assert "**hidden unit 1 counts the A's read so far**" in text
    assert "**hidden unit 0 counts the A's read so far**" not in text.split("a^n b^n c^n")[0]


def test_the_seed_sides_are_checked_against_the_means(root):
    # the synthetic count unit is positive in both phases, the phase unit flips
    assert "**disagrees** in 1 of 2 units" in render(root).split("Q3.")[0]

    def sides(a, b):
        def change(data):
            data["counting"]["phases"]["A"]["mean"] = a
            data["counting"]["phases"]["B"]["mean"] = b
        return change
    edit(root, "plot_seq_anbn", sides([0.8, -0.9], [-0.9, 0.2]))  # opposite in every unit
    text = render(root).split("Q3.")[0]
    assert "(+0.80, -0.90) and (-0.90, +0.20), which **agrees**" in text
    edit(root, "plot_seq_anbn", sides([0.8, -0.9], [0.5, -0.2]))
    assert "**disagrees** in 2 of 2 units" in render(root).split("Q3.")[0]


def test_the_context_unit_is_found_and_named(root):
    text = render(root)
    # without an intervention the report names the best separator, not a carrier
    assert "Cell 2 separates the outer T/P best (a correlation" in text
    assert "for **100.0%** of the steps" in text and "carries the outer" not in text.split("Q4.")[1]
    assert "a linear probe on all 4 cells for 100.0%" in text
    found = context_results(carrier=0)
    write(root, "plot_seq_ereber", {"error": 0.01, "final": 0.001, **found.pop("metrics")},
          {"task": "ereber", "epoch": 600, "restart": 3, "restarts": 16, "split": "test",
           "sequences": 12, "shown_sequences": 3, **found})
    assert "Cell 0 separates the outer T/P best" in render(root)


def test_carries_is_said_only_where_the_intervention_shows_it(root):
    def swap(flipped):
        def change(data):
            data["intervention"] = {"strings": 12, "baseline_right": 12, "units": [
                {"unit": u, "flipped": f, "shift": 1.0, "interval": list(wilson(f, 12))}
                for u, f in enumerate(flipped)]}
        return change
    edit(root, "plot_seq_ereber", swap([0, 1, 12, 0]))  # only the best separator, cell 2, flips
    text = render(root)
    assert "Cell 2 carries the outer T/P through the inner string (the intervention below)" in text
    assert "cell 2: 12 of 12 (76-100%, shift 1.00)" in text
    assert "only swapping cell 2 flips the prediction beyond the others' intervals" in text
    edit(root, "plot_seq_ereber", swap([0, 9, 12, 0]))  # a second cell flips nearly as often
    text = render(root)
    assert "Cell 2 separates the outer T/P best (a correlation" in text
    assert "does not show that it alone carries the outer symbol" in text
    edit(root, "plot_seq_ereber", swap([0, 12, 0, 0]))  # another cell carries it, not cell 2
    text = render(root)
    assert ("swapping cell 2, the best separator over the inner steps, changes nothing the net "
            "predicts, while swapping cell 1 flips 12 of 12: cell 1 carries the outer symbol") in text


def test_the_seed_gate_reading_follows_the_data(root):
    text = render(root)
    # the carrier (|c| = 2 everywhere) is the largest cell; forget 0.99; input shut (0.1)
    assert "which agrees: cell 2, the best separator, has the largest mean |c|" in text
    assert "agrees that the forget gate keeps the old content" in text
    assert "the input gate is mostly shut (mean 0.10" in text

    def flip(data):
        data["gates"].update(abs_cell_rank=3, forget=0.5, input=0.9)
        data["gates"]["abs_cell"][0] = 5.0
        data["gates"]["change"].update(BP=1.0, SS=0.1)
    edit(root, "plot_seq_ereber", flip)
    text = render(root)
    assert "**disagrees**: cell 2, the best separator, ranks 3 by mean |c|" in text
    assert "**disagrees** that the forget gate keeps it" in text
    assert "the input gate is mostly open too (mean 0.90)" in text
    assert "1.00 reading P after B and 0.10 reading S after S: **the reverse**" in text

    edit(root, "plot_seq_ereber", lambda d: d["gates"]["change"].update(BP=0.1, SS=1.0))
    assert "0.10 reading P after B and 1.00 reading S after S: **agrees**" in render(root)


def test_the_reber_legend_and_machine(root):
    text = render(root)
    assert "This matches the seed's legend for 6 of 6 states." in text
    assert "reproduces **100.0%**" in text and "read back as loops for 2 of 2" in text
    assert "the exit is E from state 4 (12 strings)" in text

    def rename(data):
        data["legend"][4]["name"] = "red"
    edit(root, "plot_seq_reber", rename)
    assert "differs where state 5 is red, the seed says orange" in render(root)


def test_the_diagnostic_print_is_read_from_results(root):
    text = render(root)
    assert "The course's diagnostic print at epoch 600 (restart 3, validation sequence 0)" in text
    assert not (root / "plots" / "train_seq_anbn").exists()  # no log anywhere: none is read
