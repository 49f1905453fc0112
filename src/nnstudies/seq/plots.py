"""Hidden-unit figures of one trained net, and the measured dynamics behind them.

``collect`` runs eval sequences through a one-restart net; ``measure`` turns them into
numbers; ``figures`` yields the plots one at a time (each closed when saved).
"""

from __future__ import annotations

from itertools import combinations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nnstudies.seq import dynamics  # noqa: E402
from nnstudies.seq.languages import Grammar  # noqa: E402
from nnstudies.seq.models import SRN, Stacked  # noqa: E402
from nnstudies.seq.report import run_one  # noqa: E402

ANGLES = ((30, -60), (20, 30), (60, 120))  # (elevation, azimuth) of the 3-D views


def collect(model: Stacked, grammar: Grammar, count: int) -> dict:
    """Run eval sequences 0..count-1; per sequence: symbols, states, probs, outputs, units."""
    runs = {"symbols": [], "states": [], "probs": [], "out": [], "hidden": [], "context": []}
    for i in range(min(count, len(grammar.eval))):
        symbols, states, probs = grammar.eval.sequence(i, grammar.prob_table)
        out, units = run_one(model, symbols, grammar.classes)
        for key, value in (("symbols", symbols), ("states", states), ("probs", probs),
                           ("out", out), *units.items()):
            runs[key].append(value)
    return runs


def _colorbar(fig, mappable, max_state: int, ax=None, **kw):
    bar = fig.colorbar(mappable, ax=ax, ticks=range(0, max_state + 1, 1 if max_state <= 10 else 2),
                       **kw)
    bar.set_label("grammar state")


def scatter(points, labels, max_state: int, j: int, k: int, title: str, unit: str = "hidden",
            start=None):
    """Units j and k of every vector, coloured by state (jet, 0..max_state)."""
    fig, ax = plt.subplots(figsize=(6, 5))
    sc = ax.scatter(points[:, j], points[:, k], c=labels, cmap="jet", vmin=0, vmax=max_state,
                    s=12)
    if start is not None:  # the SRN's actual initial state tanh(H0)
        ax.plot(start[j], start[k], "kx", markersize=10, label="initial state tanh(H0)")
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel(f"{unit} unit {j}")
    ax.set_ylabel(f"{unit} unit {k}")
    ax.set_title(title)
    _colorbar(fig, sc, max_state, ax)
    return fig


def views_3d(points, labels, max_state: int, title: str, unit: str = "hidden"):
    """Yield units 0, 1, 2 in 3-D from several angles (the course's interactive view, saved)."""
    for elev, azim in ANGLES:
        fig = plt.figure(figsize=(6, 5))
        ax = fig.add_subplot(projection="3d")
        sc = ax.scatter(points[:, 0], points[:, 1], points[:, 2], c=labels, cmap="jet",
                        vmin=0, vmax=max_state, s=8)
        ax.view_init(elev=elev, azim=azim)
        ax.set_xlabel(f"{unit} 0")
        ax.set_ylabel(f"{unit} 1")
        ax.set_zlabel(f"{unit} 2")
        ax.set_title(f"{title}\n(elevation {elev}, azimuth {azim})", fontsize=10)
        _colorbar(fig, sc, max_state, ax, pad=0.12, shrink=0.8)
        yield f"{unit}_3d_e{elev}_a{azim}", fig


def machine(points, labels, readback: dict, alphabet: str, max_state: int, title: str,
            j: int = 0, k: int = 1, min_share: float = 0.01):
    """The scatter with the read-back machine drawn over it: a centroid per state, an arrow
    per transition seen in at least ``min_share`` of all moves, labelled with its symbol."""
    fig = scatter(points, labels, max_state, j, k, title)
    ax = fig.axes[0]
    cents, counts = readback["centroids"], readback["transitions"]
    total = sum(counts.values())
    for s, c in cents.items():
        ax.annotate(str(s), (c[j], c[k]), fontsize=11, weight="bold", ha="center", va="center",
                    bbox={"boxstyle": "circle", "fc": "white", "alpha": 0.8})
    for (s, a, t), n in counts.items():
        if n < min_share * total or s not in cents or t not in cents:
            continue
        p, q = cents[s][[j, k]], cents[t][[j, k]]
        if np.allclose(p, q):  # a self-loop: a small label beside the state
            ax.annotate(alphabet[a], p, xytext=(10, 10), textcoords="offset points", color="k")
            continue
        ax.annotate("", q, p, arrowprops={"arrowstyle": "->", "color": "k", "lw": 1,
                                          "connectionstyle": "arc3,rad=0.15"})
        # the label sits on the arc: the midpoint of matplotlib's arc3 Bezier curve
        mid = (p + q) / 2 + 0.075 * np.array([(q - p)[1], -(q - p)[0]])
        ax.text(*mid, alphabet[a], fontsize=10, color="k", ha="center", va="center")
    return fig


def counter_trajectory(hidden: np.ndarray, symbols: np.ndarray, probs: np.ndarray,
                       out: np.ndarray, alphabet: str, title: str):
    """a^n b^n (c^n): every hidden unit over time for one sequence, with the symbols read and
    the deterministic predictions marked right (o) or wrong (x)."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(8, len(symbols) / 5), 6), sharex=True)
    t = np.arange(len(hidden))
    for u in range(hidden.shape[1]):
        top.plot(t, hidden[:, u], marker=".", label=f"hidden {u}")
    top.set_ylabel("activation")
    top.legend(loc="upper right", fontsize=8)
    top.set_title(title)
    det = probs.max(-1) == 1
    right = out.argmax(-1) == symbols[1:]
    bottom.plot(t, out.max(-1), color="0.6", lw=1)
    bottom.scatter(t[det & right], out.max(-1)[det & right], marker="o", color="g",
                   label="deterministic, right")
    bottom.scatter(t[det & ~right], out.max(-1)[det & ~right], marker="x", color="r",
                   label="deterministic, wrong")
    bottom.set_ylabel("top output prob")
    bottom.set_xticks(t, [alphabet[s] for s in symbols[:-1]], fontsize=7)
    bottom.set_xlabel("symbol read")
    bottom.legend(loc="lower right", fontsize=8)
    return fig


def measure(runs: dict, grammar: Grammar) -> dict:
    """Measured dynamics over every collected sequence: cluster separation by state,
    agreement of the read-back machine, error (and final), deterministic-position accuracy."""
    labels = np.concatenate([st[1:] for st in runs["states"]])
    metrics = {}
    for unit in ("hidden", "context"):
        if not runs[unit]:
            continue
        points = np.concatenate(runs[unit])
        metrics[unit] = {"centroid_accuracy": dynamics.centroid_accuracy(points, labels),
                         "silhouette": dynamics.silhouette(points, labels),
                         "machine_agreement": dynamics.read_back_machine(
                             runs[unit], runs["states"], runs["symbols"])["agreement"]}
        if grammar.lang in ("anbn", "anbncn"):
            # A count is held on a different branch while reading A's, B's or C's: the
            # clusters are (symbol read, count), not the count alone.
            read = np.concatenate([sym[:-1] for sym in runs["symbols"]])
            phased = read * (grammar.max_state + 1) + labels
            metrics[unit]["phase_centroid_accuracy"] = dynamics.centroid_accuracy(points, phased)
    sq = [(o - p) ** 2 for o, p in zip(runs["out"], runs["probs"])]
    if grammar.lang == "ereber":
        metrics["error"] = float(np.mean([s[2:-3].mean() for s in sq]))
        metrics["final"] = float(np.mean([s[-2].mean() for s in sq]))
    else:
        metrics["error"] = float(np.mean([s.mean() for s in sq]))
    if grammar.lang in ("anbn", "anbncn"):
        totals: dict = {}
        for sym, p, o in zip(runs["symbols"], runs["probs"], runs["out"]):
            for key, (hits, n) in dynamics.position_accuracy(o.argmax(-1), sym, p,
                                                             grammar.alphabet).items():
                h0, n0 = totals.get(key, (0, 0))
                totals[key] = (h0 + hits, n0 + n)
        metrics["det_accuracy"] = {k: h / n for k, (h, n) in totals.items() if n}
    return metrics


def figures(model: Stacked, runs: dict, grammar: Grammar, num_sequences: int, name: str):
    """Yield (name, figure) one at a time, from the first ``num_sequences`` sequences."""
    shown = {k: v[:num_sequences] for k, v in runs.items()}
    labels = np.concatenate([st[1:] for st in shown["states"]])
    start = np.tanh(model.H0[0].detach().numpy()) if isinstance(model, SRN) else None
    for unit in ("hidden", "context"):
        if not shown[unit]:
            continue
        points = np.concatenate(shown[unit])
        for j, k in combinations(range(points.shape[1]), 2):
            yield f"{unit}_{j}{k}", scatter(points, labels, grammar.max_state, j, k,
                                            f"{name}: {unit} units {j}, {k}", unit,
                                            start if unit == "hidden" else None)
        if points.shape[1] >= 3:
            yield from views_3d(points, labels, grammar.max_state, f"{name}: {unit}", unit)
    readback = dynamics.read_back_machine(shown["hidden"], shown["states"], shown["symbols"])
    yield "machine", machine(np.concatenate(shown["hidden"]), labels, readback,
                             grammar.alphabet, grammar.max_state,
                             f"{name}\nstate machine read back from the hidden space")
    if grammar.lang in ("anbn", "anbncn"):
        yield "counter", counter_trajectory(shown["hidden"][0], shown["symbols"][0],
                                            shown["probs"][0], shown["out"][0],
                                            grammar.alphabet, f"{name}: counter trajectory")
