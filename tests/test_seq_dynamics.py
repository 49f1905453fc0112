"""Study 3, what the nets do, measured: the counter, the context unit, the gates, the colour
legend, and stage plot_seq run in process on tiny data."""

import json

import numpy as np
import pytest
import torch

from nnstudies import layout, stage
from nnstudies.errors import UserError
from nnstudies.seq import checkpoints, languages, mechanism, models, plots

# ---- the counter ---------------------------------------------------------------------------


def blocks(*ns, classes=2):
    """A^n B^n (C^n) blocks then a final A, as the generator lays them out."""
    out = []
    for n in ns:
        for k in range(classes):
            out += [k] * n
    return np.array(out + [0])


def test_runs_and_phase_counts():
    phase, count = mechanism.phase_counts(blocks(2, 1))  # A A B B A B (A)
    assert phase.tolist() == [0, 0, 1, 1, 0, 1]
    assert count.tolist() == [1, 2, 1, 0, 1, 0]  # A's read; B's still to come


def counted(symbols, noise):
    """Hidden rows whose unit 0 IS the count, unit 1 the phase (+1 on A, -1 after), unit 2
    noise."""
    phase, count = mechanism.phase_counts(symbols)
    return np.c_[count, np.where(phase == 0, 1.0, -1.0), noise.normal(size=len(phase))]


def test_a_unit_that_is_the_count_is_found_with_r_one():
    noise = np.random.default_rng(0)
    symbols = [blocks(3, 1, 5, 2, 4), blocks(2, 6, 1, 1, 3)]
    hidden = [counted(s, noise) for s in symbols]
    found = mechanism.counting(hidden, symbols, "AB")
    for ch in "AB":
        e = found["phases"][ch]
        assert e["unit"] == 0 and e["r"] == pytest.approx(1.0) and e["slope"] == pytest.approx(1.0)
    assert found["phases"]["B"]["end"]["accuracy"] == 1.0  # count 0 below any threshold
    assert not found["phases"]["B"]["end"]["above"]
    # the phase unit flips at every change of phase: the largest change of any unit
    assert found["switches"]["A->B"] == {"unit": 1, "before": 1.0, "after": -1.0, "times": 10}
    assert found["switches"]["B->A"]["unit"] == 1 and found["switches"]["B->A"]["after"] == 1.0


def test_a_unit_that_counts_backwards_has_r_minus_one():
    symbols = [blocks(3, 1, 5, 2, 4, classes=3)]
    phase, count = mechanism.phase_counts(symbols[0])
    hidden = [np.c_[np.zeros(len(phase)), -2.0 * count + 1]]
    found = mechanism.counting(hidden, symbols, "ABC")
    assert set(found["phases"]) == {"A", "B", "C"}
    for e in found["phases"].values():
        assert e["unit"] == 1 and e["r"] == pytest.approx(-1.0) and e["slope"] == pytest.approx(-2)


def test_a_count_held_by_two_units_together_is_found_by_the_joint_fit():
    """The B count split over units 0 and 1 (count = u0 + u1, each half noise): neither unit
    alone follows it closely, the two together exactly; the end of the B's is a line through
    both, not a threshold on one."""
    rng = np.random.default_rng(1)
    symbols = [blocks(*rng.integers(1, 9, size=6)) for _ in range(20)]
    hidden = []
    for s in symbols:
        phase, count = mechanism.phase_counts(s)
        share = rng.uniform(-3, 3, size=len(phase))
        hidden.append(np.c_[count / 2 + share, count / 2 - share, np.where(phase == 0, 1.0, -1.0)])
    b = mechanism.counting(hidden, symbols, "AB")["phases"]["B"]
    assert abs(b["r"]) < 0.9 and b["joint_r"] == pytest.approx(1.0)
    assert b["end_joint"]["accuracy"] == 1.0 > b["end"]["accuracy"]


def test_swapping_the_cell_the_output_reads_flips_the_closing_symbol_and_a_twin_does_not():
    """Two cells hold the outer T/P alike (the same correlation); the output reads only cell 0.
    Swapping cell 0 to the other branch's value flips every closing prediction; swapping
    cell 1, its twin in every correlation, flips none: the intervention tells them apart."""
    alphabet = languages.REBER  # "BTSXPVE"
    t, p = alphabet.index("T"), alphabet.index("P")
    net = models.build("lstm", 7, 2, 1)
    with torch.no_grad():
        for param in net.parameters():
            param.zero_()
        net.hid_bias[0, 0:2] = 10.0   # input gates open
        net.hid_bias[0, 2:4] = 10.0   # forget gates keep
        net.hid_bias[0, 6:8] = 10.0   # output gates open
        net.W[0, t, 4:6] = 3.0        # the candidate: + on T, - on P, 0 on every other symbol
        net.W[0, p, 4:6] = -3.0
        net.V[0, 0, t], net.V[0, 0, p] = 5.0, -5.0  # the output reads cell 0 only
    symbols, context = [], []
    for outer in "TPTP":
        s = np.array([alphabet.index(ch) for ch in f"B{outer}BSSXE{outer}E"])
        symbols.append(s)
        context.append(mechanism.lstm_gates(net, s)["c"])
    assert np.corrcoef([c[1, 0] for c in context], [c[1, 1] for c in context])[0, 1] == pytest.approx(1)
    swap = mechanism.branch_swap(net, symbols, context, alphabet)
    assert swap["baseline_right"] == 4
    assert [(u["unit"], u["flipped"]) for u in swap["units"]] == [(0, 4), (1, 0)]


def test_best_threshold_either_way_round():
    assert mechanism.best_threshold([1, 2, 3, 4], [0, 0, 1, 1]) == {
        "threshold": 2.5, "accuracy": 1.0, "above": True}
    low = mechanism.best_threshold([1, 2, 3, 4], [1, 1, 0, 0])
    assert low["accuracy"] == 1.0 and not low["above"]
    # equal values cannot be cut apart
    assert mechanism.best_threshold([1, 1, 1, 1], [1, 0, 1, 0])["accuracy"] == 0.5


# ---- the context unit ----------------------------------------------------------------------

def ereber_strings(count, seed=0):
    g = languages.generate("ereber", seed, 1, 1, count)
    return [g.test.sequence(i, g.prob_table)[0] for i in range(count)]


def test_a_cell_that_is_the_outer_symbol_is_found_by_the_probe():
    rng = np.random.default_rng(1)
    symbols = ereber_strings(40)
    t = languages.REBER.index("T")
    context = [np.c_[rng.normal(size=(len(s) - 1, 2)), np.full(len(s) - 1, 1.0 if s[1] == t
                                                               else -1.0),
                     rng.normal(size=(len(s) - 1, 2))] for s in symbols]
    probe = mechanism.context_probe(context, symbols, languages.REBER)
    assert probe["unit"] == 2 and probe["unit_accuracy"][2] == 1.0
    assert max(a for i, a in enumerate(probe["unit_accuracy"]) if i != 2) < 0.8
    assert probe["mean"] == {"T": 1.0, "P": -1.0} and probe["t_above"]
    assert all(r["carrier"] == 1.0 and r["probe"] == 1.0 for r in probe["by_position"])
    assert probe["by_position"][0]["back"] == 0


def test_lstm_gates_are_the_course_loop():
    torch.manual_seed(0)
    net = models.build("lstm", 7, 3, 1)
    net.init_restarts(seed=0)
    symbols = ereber_strings(1)[0]
    gates = mechanism.lstm_gates(net, symbols)
    x = torch.eye(7)[torch.from_numpy(symbols[:-1])][:, None]
    _, units = net.unrolled(x)
    assert np.allclose(gates["c"], units["context"][:, 0, 0].detach().numpy(), atol=1e-6)
    reading = mechanism.gate_reading([gates], [symbols], 1, languages.REBER)
    assert 0 < reading["forget"] < 1 and 1 <= reading["abs_cell_rank"] <= 3
    assert f"B{languages.REBER[symbols[1]]}" in reading["change"]


def test_legend_names_the_jet_colours():
    names = {row["state"]: row["name"] for row in mechanism.legend(range(1, 7), 6)}
    assert names == {1: "blue", 2: "light blue", 3: "light green", 4: "yellow", 5: "orange-red",
                     6: "dark red (brown)"}


# ---- plot_seq in process -------------------------------------------------------------------

PARAMS = """\
tracking: {enabled: false, required: false}
seq:
  plot:
    num_sequences: 3
    epoch: {reber: 0, anbn: 0, anbncn: 0, ereber: 0}
  train: {threads: 1, cpu_path: host}
"""
NETS = {"reber": ("srn", 2), "anbn": ("srn", 2), "anbncn": ("srn", 3), "ereber": ("lstm", 3)}


def tiny_repo(root, task):
    """params.yaml, a small grammar file and an epoch-0 checkpoint of 2 untrained restarts."""
    (root / "params.yaml").write_text(PARAMS)
    g = languages.generate(task, 0, 2, 4, 12, max_n=4)
    path = root / layout.seq_data(task)
    path.parent.mkdir(parents=True)
    with open(path, "wb") as f:
        languages.save(g, f)
    model, hid = NETS[task]
    net = models.build(model, g.classes, hid, 2)
    net.init_restarts(seed=0, std=0.5)
    folder = root / layout.seq_models(task)
    folder.mkdir(parents=True)
    checkpoints.save(folder, {"task": {"model": model}}, g, net, 0,
                     {"state": net.state_dict(), "validation": {"error": [0.2, 0.1]},
                      "succeeded": [True, True], "kept": 1,
                      "optimizer": {}, "progress": {"epoch": 0}})


def load_stage(name):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "stages" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_stage(root, task):
    plot_seq = load_stage("plot_seq")
    return stage.run(f"plot_seq@{task}", "seq", plot_seq.PARAMS, plot_seq.produce, root=root,
                     cpu_group="seq.train")


FIGURES = {"reber": {"states.png", "machine.png"},
           "anbn": {"hidden.png", "counter.png", "count_fit.png"},
           "anbncn": {"hidden.png", "counter.png", "count_fit.png"},
           "ereber": {"branches.png", "probe.png"}}


@pytest.mark.parametrize("task", list(NETS))
def test_plot_seq_writes_its_findings(tmp_path, task):
    tiny_repo(tmp_path, task)
    run_stage(tmp_path, task)
    metrics = json.loads((tmp_path / layout.metrics(f"plot_seq@{task}")).read_text())
    results = json.loads((tmp_path / layout.results(f"plot_seq@{task}")).read_text())
    assert {p.name for p in (tmp_path / layout.plots(f"plot_seq@{task}")).iterdir()} == FIGURES[task]
    assert results["restart"] == 1 and results["restarts"] == 2  # lowest validation error
    assert results["split"] == "test" and results["sequences"] == 12
    assert 0 <= metrics["error"]
    if task == "reber":
        assert {"separation", "machine_agreement"} <= set(metrics)
        assert [row["state"] for row in results["legend"]] == [1, 2, 3, 4, 5, 6]
        assert results["exits"] == [{"from": 4, "symbol": "E", "times": 12}]
    elif task == "ereber":
        assert {"final", "carrier_accuracy", "probe_accuracy"} <= set(metrics)
        assert set(results["examples"]) <= {"T", "P"} and 0 <= results["probe"]["unit"] < 3
    else:
        assert set(metrics["count_r"]) == set(languages.alphabet(task))
        assert "last_B" in metrics["det_accuracy"] and "separation" not in metrics


def test_a_missing_checkpoint_is_one_clear_line(tmp_path):
    tiny_repo(tmp_path, "anbn")
    (tmp_path / "params.yaml").write_text(PARAMS.replace("anbn: 0", "anbn: 450"))
    with pytest.raises(UserError, match=r"seq.plot.epoch.anbn = 450: no checkpoint .*"
                                        r"\(available epochs: 0\)"):
        run_stage(tmp_path, "anbn")


def test_the_counter_figure_marks_each_phase(tmp_path):
    """plots.stage on a hand-made a^n b^n c^n run: the figures come out one at a time."""
    symbols = [blocks(2, 3, 1, classes=3)]
    phase, count = mechanism.phase_counts(symbols[0])
    runs = {"symbols": symbols, "states": [np.zeros(len(symbols[0]), int)],
            "probs": [np.eye(3)[symbols[0][1:]]], "out": [np.eye(3)[symbols[0][1:]]],
            "hidden": [np.c_[count, -count, phase]], "context": []}
    g = languages.generate("anbncn", 0, 1, 1, 1, max_n=4)
    found = plots.counter_findings(runs, g)
    assert found["metrics"]["count_r"] == {"A": 1.0, "B": 1.0, "C": 1.0}
    assert found["metrics"]["det_accuracy"]["all"] == 1.0
    names = [name for name, fig in plots.counter_figures(runs, g, found, "test")]
    assert names == ["hidden.png", "counter.png", "count_fit.png"]
