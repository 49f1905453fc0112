"""Stage plot_seq's study: one task's trained net on the held-out test sequences, what its
units do (measured: :mod:`nnstudies.seq.mechanism`, :mod:`nnstudies.seq.dynamics`), and the
few figures that show each finding.

- Reber: the hidden space coloured by state (with the colour legend) and the state machine
  read back from it, self-loops and exit drawn.
- a^n b^n (c^n): the hidden space coloured by count, one sequence's units with the count
  unit and its end-of-run threshold marked, and the count unit against the count per phase.
- Embedded Reber (LSTM): a T- and a P-branch string side by side, the carrier cell unit and
  its gates; the T/P probe accuracy per position before the closing symbol.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from nnstudies.errors import UserError
from nnstudies.outputs import Outputs
from nnstudies.seq import checkpoints, dynamics, mechanism
from nnstudies.seq.diagnostics import run_one
from nnstudies.seq.languages import Grammar
from nnstudies.seq.models import SRN, Stacked
from nnstudies.stats import wilson

SPLIT = "test"  # what is measured and plotted: sequences neither training nor selection saw


def collect(model: Stacked, grammar: Grammar, split: str = SPLIT) -> dict:
    """Every sequence of ``split`` through the net: symbols, states, probs, outputs, units."""
    data = grammar.split(split)
    runs = {"symbols": [], "states": [], "probs": [], "out": [], "hidden": [], "context": []}
    for i in range(len(data)):
        symbols, states, probs = data.sequence(i, grammar.prob_table)
        out, units = run_one(model, symbols, grammar.classes)
        for key, value in (("symbols", symbols), ("states", states), ("probs", probs),
                           ("out", out), *units.items()):
            runs[key].append(value)
    return runs


def load(models: Path, epoch: int, task: str) -> tuple[Stacked, dict]:
    path = Path(models) / f"epoch_{epoch}.pt"
    if not path.exists():
        # Only names train_seq writes: a stray copy ("epoch_5 (copy).pt") is never read, so
        # it should not stop a stage that only lists epochs to help pick one.
        have = sorted(int(m[1]) for f in Path(models).glob("epoch_*.pt")
                      if (m := re.fullmatch(r"epoch_([0-9]+)\.pt", f.name)))
        raise UserError(f"seq.plot.epoch.{task} = {epoch}: no checkpoint {path} "
                        f"(available epochs: {', '.join(map(str, have)) or 'none'})")
    return checkpoints.load_best(path)


def stage(task: str, grammar: Grammar, models: Path, epoch: int, num_sequences: int) -> Outputs:
    """plot_seq@<task>: the net kept at ``epoch`` (train.choose), measured on test."""
    net, info = load(models, epoch, task)
    runs = collect(net, grammar)
    lang = grammar.language
    name = f"{task}, epoch {info['epoch']}, restart {info['best_restart']}"
    scores = [lang.scores((o - p) ** 2) for o, p in zip(runs["out"], runs["probs"])]
    metrics = {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}
    results = {"task": task, "epoch": info["epoch"], "restart": info["best_restart"],
               "restarts": info["restarts"], "split": SPLIT, "sequences": len(runs["symbols"]),
               "shown_sequences": min(num_sequences, len(runs["symbols"])),
               "selection": "lowest validation error (+ final) at this epoch"}
    shown = {k: v[:num_sequences] for k, v in runs.items()}
    if lang.counter:
        found = counter_findings(runs, grammar)
        metrics.update(found.pop("metrics"))
        results.update(found)
        files = counter_figures(shown, grammar, results, name)
    elif lang.embedded:
        gates = [mechanism.lstm_gates(net, s) for s in runs["symbols"]]
        found = context_findings(runs, gates, grammar, net)
        metrics.update(found.pop("metrics"))
        results.update(found)
        files = context_figures(results, grammar, name)
    else:
        found = machine_findings(net, runs, grammar)
        metrics.update(found.pop("metrics"))
        results.update(found)
        files = machine_figures(shown, grammar, results, name)
    return Outputs(metrics=metrics, results=results, files=files, step=info["epoch"])


# ---- Reber: the state machine in hidden space -------------------------------------------

def _labels(runs: dict) -> np.ndarray:
    return np.concatenate([st[1:] for st in runs["states"]])


def machine_findings(net: Stacked, runs: dict, grammar: Grammar) -> dict:
    points, labels = np.concatenate(runs["hidden"]), _labels(runs)
    back = dynamics.read_back_machine(runs["hidden"], runs["states"], runs["symbols"])
    states = sorted(back["centroids"])
    legend = mechanism.legend(states, grammar.max_state)
    for row in legend:
        row["centroid"] = back["centroids"][row["state"]].tolist()
        row["points"] = int((labels == row["state"]).sum())
    chars = grammar.alphabet
    transitions = [{"from": s, "symbol": chars[a], "to": t, "times": n,
                    "read_back": back["machine"].get((s, a))}
                   for (s, a, t), n in sorted(back["transitions"].items())]
    exits = _exits(runs, chars)
    separation = dynamics.centroid_accuracy(points, labels)
    return {"metrics": {"separation": separation, "machine_agreement": back["agreement"]},
            "legend": legend, "transitions": transitions, "exits": exits,
            "silhouette": dynamics.silhouette(points, labels),
            "start": np.tanh(net.H0[0].detach().numpy()).tolist() if isinstance(net, SRN)
            else None}


def _exits(runs: dict, chars: str) -> list[dict]:
    """The last move of every string (reading its final symbol leaves the machine): from
    which state, by which symbol; no hidden vector follows it, so it is drawn as an exit."""
    seen: dict[tuple, int] = {}
    for st, sym in zip(runs["states"], runs["symbols"]):
        key = (int(st[-1]), chars[sym[-1]])
        seen[key] = seen.get(key, 0) + 1
    return [{"from": s, "symbol": a, "times": n} for (s, a), n in sorted(seen.items())]


def _colorbar(fig, mappable, max_state: int, ax, label="grammar state", **kw):
    bar = fig.colorbar(mappable, ax=ax, ticks=range(0, max_state + 1, 1 if max_state <= 10 else 2),
                       **kw)
    bar.set_label(label)


def scatter(points, labels, max_state: int, title: str, j: int = 0, k: int = 1,
            label: str = "grammar state"):
    fig, ax = plt.subplots(figsize=(6.5, 5))
    sc = ax.scatter(points[:, j], points[:, k], c=labels, cmap="jet", vmin=0, vmax=max_state, s=12)
    ax.set_xlabel(f"hidden unit {j}")
    ax.set_ylabel(f"hidden unit {k}")
    ax.set_title(title)
    _colorbar(fig, sc, max_state, ax, label)
    return fig, ax


def machine_figures(shown: dict, grammar: Grammar, results: dict, name: str):
    points, labels = np.concatenate(shown["hidden"]), _labels(shown)
    fig, ax = scatter(points, labels, grammar.max_state, f"{name}: hidden units by state")
    handles = [plt.Line2D([], [], marker="o", ls="", color=row["colour"],
                          label=f"state {row['state']}: {row['name']}") for row in results["legend"]]
    ax.legend(handles=handles, fontsize=8, loc="best")
    yield "states.png", fig
    yield "machine.png", machine(points, labels, results, grammar,
                             f"{name}\nstate machine read back from the hidden space")


def machine(points, labels, results: dict, grammar: Grammar, title: str, min_share=0.01):
    """The scatter with the read-back machine over it: a node per state at its centroid, an
    arrow per transition seen in at least ``min_share`` of all moves, loops as circles, the
    start (the SRN's tanh(H0)) and the exit."""
    fig, ax = scatter(points, labels, grammar.max_state, title)
    cents = {row["state"]: np.array(row["centroid"][:2]) for row in results["legend"]}
    total = sum(t["times"] for t in results["transitions"])
    span = np.ptp(points[:, :2], axis=0).max() or 1.0
    for s, c in cents.items():  # small, see-through discs: the clusters stay visible
        ax.annotate(str(s), c, fontsize=9, weight="bold", ha="center", va="center",
                    bbox={"boxstyle": "circle,pad=0.2", "fc": "white", "alpha": 0.6}, zorder=5)
    for t in results["transitions"]:
        if t["times"] < min_share * total or t["from"] not in cents or t["to"] not in cents:
            continue
        p, q = cents[t["from"]], cents[t["to"]]
        if t["from"] == t["to"]:  # a self-loop: a small circle beside the node
            centre = p + np.array([0.04, 0.04]) * span
            ax.add_patch(plt.Circle(centre, 0.035 * span, fill=False, color="k", lw=1))
            ax.text(*(centre + 0.05 * span), t["symbol"], fontsize=10, ha="center")
            continue
        # filled heads that stop at the node's disc (shrink, in points), so the direction shows
        ax.annotate("", q, p, arrowprops={"arrowstyle": "-|>", "color": "k", "lw": 1,
                                          "mutation_scale": 12, "shrinkA": 9, "shrinkB": 9,
                                          "connectionstyle": "arc3,rad=0.15"}, zorder=4)
        # the label on the arc's outer side, clear of where arcs cross in the middle
        mid = (p + q) / 2 + 0.11 * np.array([(q - p)[1], -(q - p)[0]])
        ax.text(*mid, t["symbol"], fontsize=9, ha="center", va="center", color="darkred",
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7})
    for e in results["exits"]:
        if e["from"] in cents:
            p = cents[e["from"]]
            # pointing into the plot, away from the nearest edge
            away = np.sign(points[:, :2].mean(0) - p) * np.array([0.12, 0.12]) * span
            ax.annotate("", p + away, p, arrowprops={"arrowstyle": "->", "color": "k", "lw": 1.5})
            ax.text(*(p + away * 1.15), f"{e['symbol']} (exit)", fontsize=9, ha="center")
    if results.get("start") is not None:
        ax.plot(*results["start"][:2], "kx", markersize=10, label="start, tanh(H0)")
        ax.legend(loc="best", fontsize=8)
    return fig


# ---- a^n b^n (c^n): the counter ----------------------------------------------------------

def counter_findings(runs: dict, grammar: Grammar) -> dict:
    found = mechanism.counting(runs["hidden"], runs["symbols"], grammar.alphabet)
    totals: dict = {}
    for sym, p, o in zip(runs["symbols"], runs["probs"], runs["out"]):
        for key, (hits, n) in dynamics.position_accuracy(o.argmax(-1), sym, p,
                                                         grammar.alphabet).items():
            h0, n0 = totals.get(key, (0, 0))
            totals[key] = (h0 + hits, n0 + n)
    det = {k: h / n for k, (h, n) in totals.items() if n}
    points, labels = np.concatenate(runs["hidden"]), _labels(runs)
    read = np.concatenate([sym[:-1] for sym in runs["symbols"]])
    metrics = {"det_accuracy": det,
               "count_r": {ph: abs(e["r"]) for ph, e in found["phases"].items()},
               "end_accuracy": {ph: e["end"]["accuracy"] for ph, e in found["phases"].items()
                                if "end" in e},
               # clusters of (symbol read, count): the states merge the A and B branch of a count
               "phase_separation": dynamics.centroid_accuracy(
                   points, read * (grammar.max_state + 1) + labels)}
    # where the (phase, count) clusters overlap: the nearest-centroid hits within each phase
    combined = read * (grammar.max_state + 1) + labels
    hits = dynamics.nearest_centroid(points, dynamics.centroids(points, combined)) == combined
    by_phase = {ch: float(hits[read == p].mean()) for p, ch in enumerate(grammar.alphabet)
                if (read == p).any()}
    return {"metrics": metrics, "counting": found, "separation_by_phase": by_phase,
            "det_positions": {k: {"right": h, "of": n} for k, (h, n) in totals.items()},
            "state_separation": dynamics.centroid_accuracy(points, labels)}


PHASE_COLOURS = ("#dde8ff", "#ffe4d6", "#e0f5e0")


def counter_figures(shown: dict, grammar: Grammar, results: dict, name: str):
    points, labels = np.concatenate(shown["hidden"]), _labels(shown)
    hid = points.shape[1]
    if hid >= 3:
        fig = plt.figure(figsize=(6.5, 5))
        ax = fig.add_subplot(projection="3d")
        sc = ax.scatter(points[:, 0], points[:, 1], points[:, 2], c=labels, cmap="jet", vmin=0,
                        vmax=grammar.max_state, s=8)
        ax.view_init(elev=30, azim=-60)
        ax.set_xlabel("hidden 0")
        ax.set_ylabel("hidden 1")
        ax.set_zlabel("hidden 2")
        ax.set_title(f"{name}: hidden units by count")
        _colorbar(fig, sc, grammar.max_state, ax, "count (colour state)", pad=0.12, shrink=0.8)
        yield "hidden.png", fig
    else:
        yield "hidden.png", scatter(points, labels, grammar.max_state,
                                f"{name}: hidden units by count", label="count (colour state)")[0]
    yield "counter.png", counter_trajectory(shown, grammar, results["counting"], name)
    yield "count_fit.png", count_fit(shown, grammar, results["counting"], name)


def counter_trajectory(shown: dict, grammar: Grammar, found: dict, name: str):
    """One sequence: every hidden unit over time on phase-shaded ground, each phase's count
    unit drawn thick in its phase, the end-of-run thresholds dashed; below, the top output
    probability with the deterministic predictions right (o) or wrong (x)."""
    hidden, symbols = shown["hidden"][0], shown["symbols"][0]
    probs, out = shown["probs"][0], shown["out"][0]
    chars = grammar.alphabet
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(8, len(symbols) / 5), 6.5), sharex=True)
    t = np.arange(len(hidden))
    phase = symbols[:-1]
    for k in t:
        top.axvspan(k - 0.5, k + 0.5, color=PHASE_COLOURS[phase[k] % 3], lw=0)
    for u in range(hidden.shape[1]):
        top.plot(t, hidden[:, u], marker=".", lw=1, label=f"hidden {u}")
    for p, ch in enumerate(chars):
        e = found["phases"].get(ch)
        if e is None:
            continue
        m = np.where(phase == p, hidden[:, e["unit"]], np.nan)
        top.plot(t, m, lw=3.5, alpha=0.5, color="k",
                 label=f"{ch}: count unit {e['unit']} (r={e['r']:+.2f})")
        if "end" in e:
            top.hlines(e["end"]["threshold"], t[phase == p].min() - 0.5, t[-1] + 0.5, ls="--",
                       lw=1, color="0.3")
            top.text(t[-1], e["end"]["threshold"], f" end of {ch}'s", fontsize=8, va="bottom")
    top.set_ylabel("activation")
    top.legend(loc="upper left", fontsize=7, ncol=2)
    top.set_title(f"{name}: the counter (shading: phase A / B / C)")
    det = probs.max(-1) == 1
    right = out.argmax(-1) == symbols[1:]
    bottom.plot(t, out.max(-1), color="0.6", lw=1)
    bottom.scatter(t[det & right], out.max(-1)[det & right], marker="o", color="g",
                   label="deterministic, right")
    bottom.scatter(t[det & ~right], out.max(-1)[det & ~right], marker="x", color="r",
                   label="deterministic, wrong")
    bottom.set_ylabel("top output prob")
    bottom.set_xticks(t, [chars[s] for s in phase], fontsize=7)
    bottom.set_xlabel("symbol read")
    bottom.legend(loc="lower right", fontsize=8)
    return fig


def count_fit(shown: dict, grammar: Grammar, found: dict, name: str):
    """Per phase, the count unit's activation against the count, with the fitted line."""
    chars = grammar.alphabet
    phases = [ch for ch in chars if ch in found["phases"]]
    fig, axes = plt.subplots(1, len(phases), figsize=(4 * len(phases), 3.6), squeeze=False)
    pc = [mechanism.phase_counts(s) for s in shown["symbols"]]
    h = np.concatenate([u[: len(s) - 1] for u, s in zip(shown["hidden"], shown["symbols"])])
    phase = np.concatenate([p for p, _ in pc])
    count = np.concatenate([c for _, c in pc])
    for ax, ch in zip(axes[0], phases):
        e, m = found["phases"][ch], phase == chars.index(ch)
        y = h[m, e["unit"]]
        ax.scatter(count[m], y, s=10, alpha=0.5)
        xs = np.arange(count[m].min(), count[m].max() + 1)
        # the fitted line within tanh's range: a linear fit of a saturating code runs past +-1
        ax.plot(xs, np.clip(y.mean() + e["slope"] * (xs - count[m].mean()), -1, 1), "k-", lw=1)
        ax.set_ylim(-1.05, 1.05)
        ax.set_xlabel(f"{ch}'s {e['count']}")
        ax.set_ylabel(f"hidden unit {e['unit']}")
        ax.set_title(f"phase {ch}: r = {e['r']:+.2f}, slope {e['slope']:+.3f}", fontsize=10)
    fig.suptitle(f"{name}: the count unit of each phase", fontsize=10)
    fig.tight_layout()
    return fig


# ---- Embedded Reber: the context unit ----------------------------------------------------

def context_findings(runs: dict, gates: list[dict], grammar: Grammar, net=None) -> dict:
    """``gates``: per sequence, the LSTM's gates and cells (mechanism.lstm_gates); ``net``:
    the one-restart LSTM, for the intervention on each cell (none without it)."""
    chars = grammar.alphabet
    probe = mechanism.context_probe(runs["context"], runs["symbols"], chars)
    swap = None
    if net is not None:
        swap = mechanism.branch_swap(net, runs["symbols"], runs["context"], chars)
        for u in swap["units"]:
            u["interval"] = list(wilson(u["flipped"], swap["strings"]))
    reading = mechanism.gate_reading(gates, runs["symbols"], probe["unit"], chars)
    labels = _labels(runs)
    examples = {}
    for branch in ("T", "P"):  # the first test string of each branch
        i = next((i for i, s in enumerate(runs["symbols"]) if chars[s[1]] == branch), None)
        if i is None:
            continue
        s = runs["symbols"][i]
        examples[branch] = {"sequence": i, "string": "".join(chars[c] for c in s),
                            "context": gates[i]["c"].tolist(),
                            "forget": gates[i]["f"][:, probe["unit"]].tolist(),
                            "input": gates[i]["i"][:, probe["unit"]].tolist(),
                            "output": runs["out"][i][-2].tolist()}
    separation = {u: dynamics.centroid_accuracy(np.concatenate(runs[u]), labels)
                  for u in ("hidden", "context")}
    # too few test strings to fit on half and score on the other: no per-step accuracy
    at_end = probe["by_position"][0] if probe["by_position"] else {"carrier": None,
                                                                    "probe": None}
    return {"metrics": {"separation": separation["hidden"],
                        "context_separation": separation["context"],
                        "carrier_accuracy": at_end["carrier"], "probe_accuracy": at_end["probe"]},
            "probe": probe, "gates": reading, "examples": examples, "intervention": swap}


def context_figures(results: dict, grammar: Grammar, name: str):
    yield "branches.png", branches(results, grammar, name)
    yield "probe.png", probe_figure(results, name)


def branches(results: dict, grammar: Grammar, name: str):
    """A T- and a P-branch string side by side: every cell unit (the carrier thick), and the
    carrier's forget and input gates."""
    unit = results["probe"]["unit"]
    ex = results["examples"]
    fig, axes = plt.subplots(2, len(ex), figsize=(6 * len(ex), 6), sharex="col", sharey="row",
                             squeeze=False)
    for col, (branch, e) in enumerate(ex.items()):
        c, s = np.array(e["context"]), e["string"]
        t = np.arange(len(c))
        top, bottom = axes[0, col], axes[1, col]
        for u in range(c.shape[1]):
            top.plot(t, c[:, u], lw=3 if u == unit else 1, alpha=1 if u == unit else 0.4,
                     label=f"cell {u}" + (" (carrier)" if u == unit else ""))
        top.axhline(results["probe"]["threshold"], ls="--", color="0.4", lw=1)
        top.set_title(f"{branch} branch: {s}", fontsize=10)
        top.set_ylabel("cell state c")
        top.legend(fontsize=7, loc="best")
        bottom.plot(t, e["forget"], label=f"forget gate, cell {unit}")
        bottom.plot(t, e["input"], label=f"input gate, cell {unit}")
        bottom.set_ylim(-0.05, 1.05)
        bottom.set_xticks(t, list(s[:-1]))
        bottom.set_xlabel("symbol read")
        bottom.legend(fontsize=7, loc="best")
    fig.suptitle(f"{name}: the cell that carries the outer T/P", fontsize=10)
    fig.tight_layout()
    return fig


def probe_figure(results: dict, name: str):
    rows = results["probe"]["by_position"]
    back = [r["back"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(back, [r["carrier"] for r in rows], "o-",
            label=f"threshold on cell {results['probe']['unit']}")
    ax.plot(back, [r["probe"] for r in rows], "s--", label="linear probe, all cells")
    ax.set_xlabel("symbols before the inner E (0: the row that predicts the closing T/P)")
    ax.set_ylabel("T vs P accuracy")
    ax.set_ylim(0.4, 1.02)
    ax.invert_xaxis()
    ax.legend(fontsize=8)
    ax.set_title(f"{name}: the outer symbol read from the cells", fontsize=10)
    return fig
