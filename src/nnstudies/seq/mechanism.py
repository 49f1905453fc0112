"""How the trained recurrent nets do it, measured from their own units.

- ``counting``: a^n b^n (c^n).  Per phase (reading A's, B's, C's), the hidden unit whose
  activation follows the count (Pearson r and the slope of a linear fit), the unit that flips
  where one phase gives way to the next, and how well one threshold on the count unit tells
  the end of a B or C run (where the net must stop predicting B / C).
- ``context_probe``: embedded Reber.  Per cell (context) unit, how well one threshold tells
  the outer T from the outer P while the inner string is read, the unit that separates them
  best, and a linear probe of all units per position before the closing symbol.
- ``gate_reading``: the carrier unit's gates and magnitudes, to check the seed's reading.
- ``legend``: which colour of the plots' scale stands for which grammar state.

Alignment, as everywhere in the study: unit row k comes after reading ``symbols[k]``.
"""

from __future__ import annotations

import numpy as np
import torch

# ---- a^n b^n (c^n): the counter ----------------------------------------------------------

def runs(symbols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per symbol: how many of its run (equal symbols in a row) have been read including it,
    and the length of that run."""
    symbols = np.asarray(symbols)
    start = np.r_[True, symbols[1:] != symbols[:-1]]
    run_id = np.cumsum(start) - 1
    first = np.flatnonzero(start)
    read = np.arange(len(symbols)) - first[run_id] + 1
    length = np.diff(np.r_[first, len(symbols)])[run_id]
    return read, length


def phase_counts(symbols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per unit row (after reading symbols[k], k < L-1): the phase (the symbol read) and its
    count: A's read so far in the A phase; B's (C's) still to come in the B (C) phase, which
    is what the net needs to predict where the run ends (0: the next symbol is not B / C)."""
    read, length = runs(symbols)
    phase = np.asarray(symbols)[:-1]
    count = np.where(phase == 0, read[:-1], length[:-1] - read[:-1])
    return phase, count


def linear_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(Pearson r, slope of the least-squares line y = slope x + b); 0 where either is flat."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    sx, sy = x.std(), y.std()
    if len(x) < 2 or sx == 0 or sy == 0:
        return 0.0, 0.0
    cov = ((x - x.mean()) * (y - y.mean())).mean()
    return float(cov / (sx * sy)), float(cov / sx ** 2)


def joint_fit(units: np.ndarray, count: np.ndarray) -> float:
    """The correlation of ``count`` with its least-squares fit on all ``units`` (+ a constant):
    the multiple correlation R, 0 where the count is flat."""
    count = np.asarray(count, float)
    if len(count) < 2 or count.std() == 0:
        return 0.0
    design = np.c_[units, np.ones(len(count))]
    fitted = design @ np.linalg.lstsq(design, count, rcond=None)[0]
    return linear_fit(fitted, count)[0]


def best_threshold(values: np.ndarray, labels: np.ndarray) -> dict:
    """The one threshold on ``values`` that best tells ``labels`` (bool) apart, either way
    round: {"threshold", "accuracy", "above": the label on the high side}."""
    values, labels = np.asarray(values, float), np.asarray(labels, bool)
    order = np.argsort(values, kind="stable")
    v, lab = values[order], labels[order]
    # cut i: v[:i] low, v[i:] high; only cuts between distinct values (or outside them all)
    true_low = np.r_[0, np.cumsum(lab)]
    false_low = np.r_[0, np.cumsum(~lab)]
    n, n_true = len(v), int(lab.sum())
    right_if_true_high = (n_true - true_low) + false_low
    cuts = np.r_[True, v[1:] != v[:-1], True]
    hits = {True: np.where(cuts, right_if_true_high, -1),
            False: np.where(cuts, n - right_if_true_high, -1)}
    above = bool(hits[True].max() >= hits[False].max())
    i = int(np.argmax(hits[above]))
    threshold = (v[i - 1] + v[i]) / 2 if 0 < i < n else (v[0] - 1 if i == 0 else v[-1] + 1)
    return {"threshold": float(threshold), "accuracy": float(hits[above][i] / n), "above": above}


def counting(hidden: list[np.ndarray], symbols: list[np.ndarray], alphabet: str) -> dict:
    """The counter read off the hidden units, over all sequences.

    ``phases``: per phase, r and slope of every unit against the count, the unit with the
    largest |r| (``unit``), ``joint_r``: the correlation of the count with its least-squares
    fit on all units together (a count may be held by several units, none alone), and for the
    B / C phases the best threshold on that unit between "more to come" and "run ends here"
    (count 0), ``end``, and the best threshold on a least-squares line through all units,
    ``end_joint`` (both fitted and scored on the same rows).  ``switches``: per change of phase (A->B,
    B->C, B->A, C->A), the unit whose mean activation changes most, before and after.
    """
    h = np.concatenate([u[: len(s) - 1] for u, s in zip(hidden, symbols)])
    pc = [phase_counts(s) for s in symbols]
    phase = np.concatenate([p for p, _ in pc])
    count = np.concatenate([c for _, c in pc])
    out: dict = {"phases": {}, "switches": {}}
    for p, name in enumerate(alphabet):
        m = phase == p
        if m.sum() < 2:
            continue
        fits = [linear_fit(count[m], h[m, u]) for u in range(h.shape[1])]
        unit = int(np.argmax([abs(r) for r, _ in fits]))
        entry = {"count": "read so far" if p == 0 else "still to come", "points": int(m.sum()),
                 "unit": unit, "r": fits[unit][0], "slope": fits[unit][1],
                 "r_per_unit": [r for r, _ in fits], "slope_per_unit": [s for _, s in fits],
                 "max_count": int(count[m].max()), "mean": h[m].mean(0).tolist(),
                 "joint_r": joint_fit(h[m], count[m])}
        if p > 0:  # where the run ends the net must switch its prediction: read off by a threshold
            ends = count[m] == 0
            entry["end"] = best_threshold(h[m, unit], ends)
            line = np.c_[h[m], np.ones(int(m.sum()))] @ _probe(h[m], ends)
            entry["end_joint"] = {"accuracy": best_threshold(line, ends)["accuracy"]}
        out["phases"][name] = entry
    # phase switches: unit rows k (phase a) -> k+1 (phase b) within a sequence
    before = np.concatenate([p[:-1] for p, _ in pc])
    after = np.concatenate([p[1:] for p, _ in pc])
    h_before = np.concatenate([u[: len(s) - 2] for u, s in zip(hidden, symbols)])
    h_after = np.concatenate([u[1: len(s) - 1] for u, s in zip(hidden, symbols)])
    for a in range(len(alphabet)):
        for b in range(len(alphabet)):
            m = (before == a) & (after == b)
            if a == b or not m.any():
                continue
            mean_b, mean_a = h_before[m].mean(0), h_after[m].mean(0)
            unit = int(np.argmax(np.abs(mean_a - mean_b)))
            out["switches"][f"{alphabet[a]}->{alphabet[b]}"] = {
                "unit": unit, "before": float(mean_b[unit]), "after": float(mean_a[unit]),
                "times": int(m.sum())}
    return out


# ---- embedded Reber: the unit that remembers the outer symbol -----------------------------

def _inner_rows(symbols: np.ndarray) -> np.ndarray:
    """Unit rows while the inner string is read: after the inner B .. after the inner E."""
    return np.arange(2, len(symbols) - 2)


def _probe(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares linear probe: weights (units + 1) whose sign of [x, 1] @ w says y."""
    return np.linalg.lstsq(np.c_[x, np.ones(len(x))], np.where(y, 1.0, -1.0), rcond=None)[0]


def context_probe(context: list[np.ndarray], symbols: list[np.ndarray], alphabet: str,
                  positions: int = 8) -> dict:
    """Which cell unit carries the outer T/P through the inner string.

    Per unit, the best single threshold between T- and P-branch rows over every inner row
    (``unit_accuracy``); the carrier is the unit with the highest.  Per position counted back
    from the inner E (0: the row after reading it, which must predict the closing T/P), the
    accuracy of a threshold on the carrier and of a linear probe on all cells, each fitted
    to that position's rows of the even-numbered sequences and scored on the odd ones (not
    on what it was fitted to).
    """
    outer = np.array([s[1] for s in symbols]) == alphabet.index("T")
    rows = [_inner_rows(s) for s in symbols]
    x = np.concatenate([c[r] for c, r in zip(context, rows)])
    y = np.concatenate([np.full(len(r), o) for r, o in zip(rows, outer)])
    per_unit = [best_threshold(x[:, u], y) for u in range(x.shape[1])]
    unit = int(np.argmax([p["accuracy"] for p in per_unit]))
    even = np.arange(len(symbols)) % 2 == 0
    by_pos = []
    for back in range(positions):
        have = [i for i, s in enumerate(symbols) if len(s) - 3 - back >= 2]
        fit = [i for i in have if even[i]]
        score = [i for i in have if not even[i]]
        if not fit or not score:
            break
        xs = {i: context[i][len(symbols[i]) - 3 - back] for i in have}
        xf, yf = np.array([xs[i] for i in fit]), outer[fit]
        xt, yt = np.array([xs[i] for i in score]), outer[score]
        cut = best_threshold(xf[:, unit], yf)
        says_t = (xt[:, unit] > cut["threshold"]) == cut["above"]
        w = _probe(xf, yf)
        by_pos.append({"back": back, "carrier": float((says_t == yt).mean()),
                       "probe": float(((np.c_[xt, np.ones(len(xt))] @ w > 0) == yt).mean()),
                       "fit": len(fit), "scored": len(score)})
    return {"unit": unit, "unit_accuracy": [p["accuracy"] for p in per_unit],
            "threshold": per_unit[unit]["threshold"], "t_above": per_unit[unit]["above"],
            "mean": {"T": float(x[y, unit].mean()) if y.any() else None,
                     "P": float(x[~y, unit].mean()) if (~y).any() else None},
            "by_position": by_pos}


@torch.no_grad()
def _closing_prediction(model, symbols: np.ndarray, alphabet: str, unit: int | None = None,
                        value: float = 0.0) -> str:
    """The closing symbol (T or P) a one-restart LSTM predicts after the inner E (unit row
    L-3), optionally with cell ``unit`` set to ``value`` right after the outer T/P is read
    (row 1); the rest of the string runs unchanged through the course's loop."""
    x = torch.eye(model.num_in)[torch.from_numpy(np.asarray(symbols[:-1], np.int64))]
    W, U, b = model.W[0], model.U[0], model.hid_bias[0]
    h, c = torch.zeros(model.hid), torch.zeros(model.hid)
    for row, x_t in enumerate(x[: len(symbols) - 2]):  # rows 0 .. L-3
        i, f, g, o = (x_t @ W + h @ U + b).chunk(4)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        if row == 1 and unit is not None:
            c = c.clone()
            c[unit] = value
        h = torch.sigmoid(o) * torch.tanh(c)
    logits = h @ model.V[0] + model.out_bias[0]
    t, p = alphabet.index("T"), alphabet.index("P")
    return "T" if logits[t] >= logits[p] else "P"


def branch_swap(model, symbols: list[np.ndarray], context: list[np.ndarray], alphabet: str) -> dict:
    """An intervention on each cell unit in turn: right after the outer T/P is read, set the
    cell to the mean it takes there on the *other* branch, run the rest of the string as it
    is, and count the strings whose predicted closing symbol flips.  A cell that carries the
    outer symbol to the end flips them; a cell that does not, flips none.  ``context``: the
    cells per string (rows as everywhere), for the per-branch means at row 1."""
    t = alphabet.index("T")
    outer = np.array([s[1] == t for s in symbols])
    at_branch = np.array([c[1] for c in context])
    other_mean = {True: at_branch[~outer].mean(0), False: at_branch[outer].mean(0)}
    baseline = [_closing_prediction(model, s, alphabet) for s in symbols]
    truth = ["T" if o else "P" for o in outer]
    units = []
    for u in range(model.hid):
        swapped = [_closing_prediction(model, s, alphabet, u, float(other_mean[bool(o)][u]))
                   for s, o in zip(symbols, outer)]
        units.append({"unit": u, "flipped": int(sum(a != b for a, b in zip(baseline, swapped))),
                      "shift": float(abs(other_mean[True][u] - other_mean[False][u]))})
    return {"strings": len(symbols), "baseline_right": int(sum(a == b for a, b in zip(baseline, truth))),
            "units": units}


@torch.no_grad()
def lstm_gates(model, symbols: np.ndarray) -> dict[str, np.ndarray]:
    """The gates of a one-restart LSTM along one sequence, each (L-1, hid): input i, forget f,
    candidate g, output o, and the cell c, the course's loop (models.LSTM.unrolled) step by step."""
    x = torch.eye(model.num_in)[torch.from_numpy(np.asarray(symbols[:-1], np.int64))]
    W, U, b = model.W[0], model.U[0], model.hid_bias[0]
    h = torch.zeros(model.hid)
    c = torch.zeros(model.hid)
    out = {k: [] for k in "ifgoc"}
    for x_t in x:
        i, f, g, o = (x_t @ W + h @ U + b).chunk(4)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c = f * c + i * g
        h = o * torch.tanh(c)
        for k, v in zip("ifgoc", (i, f, g, o, c)):
            out[k].append(v.clone())
    return {k: torch.stack(v).numpy() for k, v in out.items()}


def gate_reading(gates: list[dict], symbols: list[np.ndarray], unit: int, alphabet: str) -> dict:
    """What the gates do while the inner string is read, to check the seed's reading of them.

    The carrier unit's mean forget and input gate over the inner rows, and what the input
    writes (|i g|) against what the cell holds (|c|) (kept: forget near 1, little written),
    and the rank of its mean |c| among the units (1: largest;
    the seed reads large cell values as what is carried).  ``change``: mean |c_t - c_{t-1}|
    over all units by the pair (symbol before, symbol read), for the pairs the seed names.
    """
    rows = [_inner_rows(s) for s in symbols]
    f = np.concatenate([g["f"][r] for g, r in zip(gates, rows)])
    i = np.concatenate([g["i"][r] for g, r in zip(gates, rows)])
    write = np.concatenate([np.abs(g["i"] * g["g"])[r] for g, r in zip(gates, rows)])
    c = np.concatenate([g["c"][r] for g, r in zip(gates, rows)])
    size = np.abs(c).mean(0)
    rank = int((size > size[unit]).sum()) + 1
    change: dict[str, list] = {}
    for g, s in zip(gates, symbols):
        dc = np.abs(np.diff(g["c"], axis=0)).mean(1)  # row k+1 vs row k: reading s[k+1]
        for k in range(len(dc)):
            change.setdefault(f"{alphabet[s[k]]}{alphabet[s[k + 1]]}", []).append(dc[k])
    return {"unit": unit, "forget": float(f[:, unit].mean()), "input": float(i[:, unit].mean()),
            "forget_min": float(f[:, unit].min()), "write": float(write[:, unit].mean()),
            "abs_cell": size.tolist(), "abs_cell_rank": rank,
            "change": {k: float(np.mean(v)) for k, v in sorted(change.items())}}


# ---- colours -------------------------------------------------------------------------------

# Plain colour names, to say in words which colour a state gets.
NAMED = {"dark blue": (0, 0, .5), "blue": (0, 0, 1), "light blue": (0, .8, 1),
         "cyan": (0, 1, 1), "light green": (.5, 1, .5), "yellow": (1, 1, 0),
         "orange": (1, .65, 0), "orange-red": (1, .27, 0), "red": (1, 0, 0),
         "dark red (brown)": (.5, 0, 0)}


def legend(states, max_state: int, cmap: str = "jet") -> list[dict]:
    """Per state, the colour the plots give it (the scale 0..max_state) and its nearest name."""
    import matplotlib

    scale = matplotlib.colormaps[cmap]
    rows = []
    for s in states:
        rgb = np.array(scale(s / max_state)[:3])
        name = min(NAMED, key=lambda k: ((np.array(NAMED[k]) - rgb) ** 2).sum())
        rows.append({"state": int(s), "colour": matplotlib.colors.to_hex(rgb), "name": name})
    return rows
