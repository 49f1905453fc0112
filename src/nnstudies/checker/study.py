"""The two stage functions of Study 2: settings in, every output as data (nnstudies.outputs).

``trained``: the course's check_main.py run (``--hid --act --init --lr --epoch``), R restarts
side by side, the first to meet the course's rule kept.  ``hand_designed``: the 4-unit design
of params under the step and rescaled under the sigmoid, a sweep of the scale, and the seed
report's own design (output bias 0) at the seed's own scale.
"""

from __future__ import annotations

import torch

from nnstudies.checker import analysis, courselog, data, plots, train
from nnstudies.checker.hand import SEED_DESIGN, SEED_SCALE, hand_net
from nnstudies.checker.model import StackedMLP
from nnstudies.outputs import LogMetrics, Outputs, Served

# The sweep of the scale k: geometric, 1 to 1000, 20 values per decade.
SCALES = analysis.geometric_scales(1.0, 1000.0, 20)
MODEL = "models/checker.pt"
# Each stage's figures (plots/<stage>/), named by what they show, never by a param value:
# another `hid` rewrites the same files, so applying one experiment after another leaves
# none behind.  Listed in the results, where the report finds them.
TRAINED_FIGURES = {"data": "check.png", "lines": "lines.png", "init": "init.png",
                   "history": "history.png", "hidden": "hidden.png", "out": "out.png"}
HAND_FIGURES = {"data": "check.png", "lines": "lines.png", "scale": "scale.png",
                **{f"{net}_{part}": f"{net}_{part}.png" for net in ("step", "sigmoid")
                   for part in ("hidden", "out")}}


def course_command(hid: int, s: dict) -> str:
    """The course command these settings stand for (restarts and patience are ours)."""
    return (f"python3 check_main.py --hid {hid} --act {s['act']} --init {s['init']:g} "
            f"--lr {s['lr']:g} --epoch {s['max_epochs']}")


def _weights(net: StackedMLP) -> dict:
    w1, b1, w2, b2 = net.weights()
    return {"in_weight": w1.tolist(), "hid_bias": b1.tolist(), "out_weight": w2[0].tolist(),
            "out_bias": float(b2[0])}


def trained(hid: int, s: dict, log_metrics: LogMetrics | None = None, progress=None) -> Outputs:
    """Train ``s['restarts']`` nets of ``hid`` units (settings ``s``: checker.train)."""
    torch.manual_seed(s["seed"])
    x, t = data.points()
    n = len(x)
    seeds = train.restart_seeds(s["seed"], s["restarts"])
    model = StackedMLP.random(seeds, hid, s["init"], s["act"])
    starts = [w.detach().clone() for w in model.parameters()]  # to draw the kept net's start

    def on_log(epoch, loss, correct):
        if progress is not None:
            progress.update(epoch, f"{int((correct == n).sum())} restarts at 100%")

    res = train.train(model, x, t, lr=s["lr"], weight_decay=s["weight_decay"],
                      max_epochs=s["max_epochs"], patience=s["patience"],
                      log_every=s["log_every"], on_log=on_log)
    k, net = res.kept, res.model.pick(res.kept)
    if log_metrics is not None:  # the kept restart's curves (known only once training ends)
        for e, loss, ok in res.history:
            log_metrics({"loss": loss[k], "accuracy": ok[k] / n,
                         "restarts_at_100": sum(o == n for o in ok)}, e)
    initial = StackedMLP(*(w[k:k + 1] for w in starts), act=s["act"])
    final = analysis.evaluate(net, x, t)
    history = [(e, loss[k], ok[k]) for e, loss, ok in res.history]
    restarts = train.restart_table(res, seeds, s["max_epochs"])
    lines = analysis.unit_lines(net, x, t)
    stopper = next((r for r in restarts if r["met_rule_at"] == res.epochs), None) \
        if any(res.succeeded) else None

    metrics = {
        "accuracy": final["accuracy"], "correct": final["correct"], "loss": res.final_loss[k],
        "output_margin": final["output_margin"], "epochs_to_100": res.first_full[k],
        "epochs_run": res.epochs, "restarts_succeeded": sum(res.succeeded),
        "restarts_reached_100": sum(e is not None for e in res.first_full),
    }
    results = {
        "settings": {"hid": hid, **{key: s[key] for key in (
            "act", "init", "lr", "weight_decay", "max_epochs", "patience", "restarts", "seed",
            "log_every")}, "optimiser": "Adam (full batch)", "loss": "binary cross-entropy",
            "course_command": course_command(hid, s)},
        "epochs_run": res.epochs,
        "stopped_by": stopper["restart"] if stopper else None,
        "restarts": restarts,
        "kept": {"restart": k, "seed": seeds[k], "first_epoch_at_100": res.first_full[k],
                 "met_rule_at": res.met_rule[k], **final, "loss": res.final_loss[k]},
        "final_weights": _weights(net),
        "lines": lines,
        "activations": analysis.activations(net, x, t),
        "log_tail": [{"epoch": e, "loss": loss, "accuracy": 100.0 * ok / n}
                     for e, loss, ok in history[-8:]],
        "figures": TRAINED_FIGURES,
    }

    def files():  # one open figure at a time: each is saved and closed before the next
        for name, figure in plots.region_maps(net, x, t):
            yield TRAINED_FIGURES[name], figure
        yield TRAINED_FIGURES["data"], plots.data_figure(x, t)
        yield TRAINED_FIGURES["init"], next(plots.region_maps(
            initial, x, t, hidden=False, title="the kept restart's output before training"))[1]
        yield TRAINED_FIGURES["lines"], plots.lines_figure(
            lines, x, t, f"kept restart {k}: every hidden unit's dividing line")
        yield TRAINED_FIGURES["history"], plots.history_figure(
            [e for e, _, _ in history], [loss for _, loss, _ in history],
            [100 * ok / n for _, _, ok in history], f"kept restart {k}, hid {hid}")
        yield "history.csv", _history_csv(history, res.history, n)
        yield "train.log", courselog.train_log(history, net.weights(), final["correct"], n)

    return Outputs(
        metrics=metrics, results=results,
        files=files(),
        models={MODEL: {"state_dict": net.state_dict(), "act": s["act"], "hid": hid,
                        "seed": seeds[k]}},
        served=[Served("checker_mlp", "checker_mlp", {"hid": hid, "act": s["act"]},
                       net.state_dict(), x.numpy())],  # the 9 points
        step=res.epochs)


def _history_csv(history, all_history, n):
    import pandas as pd

    return pd.DataFrame({
        "epoch": [e for e, _, _ in history], "loss": [loss for _, loss, _ in history],
        "accuracy": [100 * ok / n for _, _, ok in history],
        "restarts_at_100": [sum(o == n for o in ok) for _, _, ok in all_history]})


def _evaluated(design: dict, act: str, scale: float, x, t) -> tuple[StackedMLP, dict]:
    net = hand_net(design, act, scale)
    return net, dict(analysis.evaluate(net, x, t), scale=scale,
                     activations=analysis.activations(net, x, t))


def hand_designed(design: dict) -> Outputs:
    """The design of params (checker.hand: weights, biases, ``scale``) under the step and, every
    weight and bias times ``scale``, under the sigmoid; beside it the seed report's design."""
    x, t = data.points()
    weights = {key: design[key] for key in ("in_weight", "hid_bias", "out_weight", "out_bias")}
    scale = design["scale"]
    step_net, step = _evaluated(weights, "step", 1.0, x, t)
    sig_net, sig = _evaluated(weights, "sig", scale, x, t)
    # How far the scaled sigmoid's hidden units are from the step's 0/1: what the scale buys.
    step_hidden = torch.tensor([a["hidden"] for a in step["activations"]])
    sig_hidden = torch.tensor([a["hidden"] for a in sig["activations"]])
    sig["hidden_deviation"] = float((sig_hidden - step_hidden).abs().max())
    seed_step = _evaluated(SEED_DESIGN, "step", 1.0, x, t)[1]
    seed_sig = _evaluated(SEED_DESIGN, "sig", SEED_SCALE, x, t)[1]
    sweep = {"params": analysis.scale_sweep(weights, x, t, SCALES),
             "seed": analysis.scale_sweep(SEED_DESIGN, x, t, SCALES)}
    smallest = analysis.smallest_scale(weights, x, t, SCALES)
    seed_smallest = analysis.smallest_scale(SEED_DESIGN, x, t, SCALES)
    lines = analysis.unit_lines(step_net, x, t)

    metrics = {
        "step": {k: step[k] for k in ("correct", "accuracy", "output_margin", "hidden_margin")},
        "sigmoid": {k: sig[k] for k in ("correct", "accuracy", "output_margin", "hidden_margin")},
        "smallest_scale": smallest,
    }
    results = {
        "design": weights, "scale": scale, "lines": lines,
        "hidden_codes": analysis.hidden_codes(step_net, x, t),
        "step": step, "sigmoid": sig,
        "scale_sweep": {"scales": SCALES, "params": sweep["params"], "seed": sweep["seed"]},
        "smallest_scale": smallest,
        "seed_design": {
            "design": SEED_DESIGN, "scale": SEED_SCALE, "step": seed_step, "sigmoid": seed_sig,
            "smallest_scale": seed_smallest,
            "source": "its Part 2 Q2: W2 = [1, -1, 1, -1], b2 = 0; Q3: k = 100"},
        "figures": HAND_FIGURES,
    }
    runs = [("step", 1.0, step_net.weights(), step["correct"]),
            ("sig", scale, sig_net.weights(), sig["correct"])]

    def files():
        yield HAND_FIGURES["data"], plots.data_figure(x, t)
        yield HAND_FIGURES["lines"], plots.lines_figure(lines, x, t, "the hand design's dividing lines")
        for name, net in (("step", step_net), ("sigmoid", sig_net)):
            for part, figure in plots.region_maps(net, x, t, lines=[line["equation"] for line in lines]):
                yield HAND_FIGURES[f"{name}_{part}"], figure
        yield HAND_FIGURES["scale"], plots.scale_figure(
            {"params design": sweep["params"], "seed design (output bias 0)": sweep["seed"]},
            {f"params: k = {scale:g}": scale, f"seed: k = {SEED_SCALE:g}": SEED_SCALE})
        yield "hand.log", courselog.hand_log(runs, len(x))

    return Outputs(metrics=metrics, results=results, files=files())
