"""Past the trained n: does a counter net count further than the n it was trained on?

The measurement (Wiles & Elman 1995; Rodriguez, Wiles & Elman 1999; Gers & Schmidhuber 2001):
a probe sequence of three blocks, a^2 b^2 (c^2), a^n b^n (c^n), a^3 b^3 (c^3), then the closing
A, for n = 1 .. ``probe_max_n``.  Of the middle block, every prediction the language itself
determines is scored: after the first B has been read, the remaining B's, the C's and the
symbol after the block are fixed, whatever n is (:func:`next_symbols` derives them from the
language, not from the training files, whose rows are the course's 0.8/0.2 heuristic and end at
max_n).  A block is correct when every one of them is the net's argmax; a net counts up to n = k
when every block n <= k is correct.

The nets measured: train_seq's SRNs of a^n b^n and a^n b^n c^n, and the nets of
``seq.beyond`` (train_beyond: LSTMs on the same data, the SRN trained on a wider range of n),
each restart of each, at its last epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nnstudies import params
from nnstudies.errors import UserError
from nnstudies.outputs import Outputs
from nnstudies.seq.languages import TABLE
from nnstudies.stats import wilson

NETS = params.BEYOND_NETS  # the nets of seq.beyond, trained by train_beyond
# Context blocks around the measured one: the state must count from a real block boundary.
BEFORE, AFTER = 2, 3
A = 0  # every counter language's first symbol


def probe(lang: str, n: int) -> tuple[np.ndarray, slice]:
    """The probe's symbols (a^2 b^2 .. , a^n b^n .., a^3 b^3 .., A) and the slice of its
    prediction positions that read the measured block's symbols."""
    letters = len(TABLE[lang].alphabet)

    def block(m):
        return [k for k in range(letters) for _ in range(m)]

    first = block(BEFORE)
    symbols = first + block(n) + block(AFTER) + [A]
    return np.asarray(symbols, np.int64), slice(len(first), len(first) + letters * n)


def next_symbols(lang: str, symbols: np.ndarray) -> np.ndarray:
    """Per prediction position (after reading ``symbols[k]``): the next symbol where the
    language determines it, -1 where it does not.  A string of blocks a^m b^m (c^m), any m >= 1:
    after an A, another A or the first B may follow; once a B is read, the count of A's fixes
    every symbol up to and including the next block's A."""
    letters = len(TABLE[lang].alphabet)
    out = np.full(len(symbols) - 1, -1, np.int64)
    count, phase, read = 0, 0, 0  # A's of this block; letter being read; of it, read so far
    for k, s in enumerate(symbols[:-1]):
        if s == A:
            count = count + 1 if phase == 0 else 1
            phase, read = 0, count
            continue
        if s != phase + (read == count):  # the letter the language allows here
            raise ValueError(f"not a string of {lang}: symbol {k} is {TABLE[lang].alphabet[s]}")
        phase, read = s, (1 if s != phase else read + 1)
        if read < count:
            out[k] = phase
        else:
            out[k] = phase + 1 if phase + 1 < letters else A
    return out


@dataclass(frozen=True)
class Measured:
    """One net's probe, every restart: accuracy[n-1, r], correct[n-1, r] and, per restart, the
    first wrong prediction of its first wrong n."""

    accuracy: np.ndarray
    correct: np.ndarray
    breaks: list[dict | None]

    @property
    def largest(self) -> np.ndarray:
        """Per restart, the largest k with every block n <= k correct (0: not even n = 1)."""
        wrong = ~self.correct
        return np.where(wrong.any(0), wrong.argmax(0), len(self.correct))


def _onehot(seqs: list[np.ndarray], letters: int) -> torch.Tensor:
    """(T, N, letters), zero rows after each sequence's end (no input)."""
    x = torch.zeros(max(map(len, seqs)), len(seqs), letters)
    for i, s in enumerate(seqs):
        x[np.arange(len(s)), i, torch.from_numpy(s)] = 1.0
    return x


def run(net, lang: str, probe_max_n: int, kernel: str = "compiled") -> tuple[list, torch.Tensor,
                                                                            torch.Tensor]:
    """The probes n = 1..probe_max_n, as one batch: (probes, hidden (T, N, R, H), logits)."""
    probes = [probe(lang, n) for n in range(1, probe_max_n + 1)]
    with torch.no_grad():
        hidden, logits = net.run(_onehot([s for s, _ in probes], len(TABLE[lang].alphabet)), kernel)
    return probes, hidden, logits


def measure(net, lang: str, probe_max_n: int, kernel: str = "compiled") -> Measured:
    alphabet = TABLE[lang].alphabet
    probes, _, logits = run(net, lang, probe_max_n, kernel)
    R = logits.shape[2]
    accuracy = np.zeros((probe_max_n, R))
    correct = np.zeros((probe_max_n, R), bool)
    first_wrong: list[list] = [[] for _ in range(R)]
    for i, (symbols, block) in enumerate(probes):
        truth = next_symbols(lang, symbols)[block]
        scored = np.flatnonzero(truth >= 0)
        predicted = logits[block.start:block.stop, i].argmax(-1).numpy()[scored]  # (P, R)
        right = predicted == truth[scored, None]
        accuracy[i], correct[i] = right.mean(0), right.all(0)
        for r in np.flatnonzero(~right.all(0)):
            j = int(np.argmin(right[:, r]))
            expected, got = int(truth[scored[j]]), int(predicted[j, r])
            rank = {s: (s - 1) % len(alphabet) for s in range(len(alphabet))}  # B, C, .., A
            first_wrong[r].append({
                "n": i + 1, "position": j + 1, "of": len(scored),
                "expected": alphabet[expected], "predicted": alphabet[got],
                "when": "early" if rank[got] > rank[expected] else "late"})
    measured = Measured(accuracy, correct, [None] * R)
    breaks = [next((w for w in first_wrong[r] if w["n"] == k + 1), None)
              for r, k in enumerate(measured.largest)]
    return Measured(accuracy, correct, breaks)


def trajectory(net, lang: str, trained_max_n: int, probe_max_n: int,
               kernel: str = "compiled") -> dict:
    """What one restart's hidden state does past the trained n: how far one more A moves the
    state at the end of the A's (``a_step[n]``: |h(n A's) - h(n-1 A's)|), and how far the
    measured block's states lie outside the box of every state the probes n <= trained_max_n
    visit (``outside[n]``, the largest distance; 0 inside)."""
    probes, hidden, _ = run(net, lang, probe_max_n, kernel)
    h = hidden[:, :, 0].numpy().astype(np.float64)  # (T, N, H)
    ends = np.array([h[block.start + n - 1, n - 1] for n, (_, block) in
                     enumerate(probes, start=1)])  # the state after the block's n-th A
    a_step = np.r_[np.nan, np.linalg.norm(np.diff(ends, axis=0), axis=1)]
    seen = np.concatenate([h[:len(s) - 1, i] for i, (s, _) in enumerate(probes[:trained_max_n])])
    lo, hi = seen.min(0), seen.max(0)
    outside = np.array([np.linalg.norm(np.maximum(0, np.maximum(lo - h[b, i], h[b, i] - hi)),
                                       axis=1).max() for i, (_, b) in enumerate(probes)])
    return {"a_step": a_step, "outside": outside}


@dataclass(frozen=True)
class Net:
    """A trained counter net to measure: every restart, the kept one, how it was trained."""

    name: str  # train_seq's task (anbn, anbncn) or a seq.beyond net
    language: str
    model: str  # srn | lstm
    max_n: int  # trained on n uniform in 1..max_n
    epochs: int
    net: object  # a Stacked net, every restart
    kept: int  # the kept restart at the last epoch, as train_seq keeps it (train.choose)


def study(nets: list[Net], probe_max_n: int) -> Outputs:
    """The beyond stage: every net's probe, restart by restart, and the kept restart's state."""
    results: dict = {"probe": {"max_n": probe_max_n, "blocks": [BEFORE, "n", AFTER],
                               "scored": "every prediction the language determines in the "
                                         "n-block: the B's after the first, the C's, the A "
                                         "after the block"}, "nets": {}}
    metrics: dict = {}
    for net in nets:
        if net.max_n >= probe_max_n:
            raise UserError(f"seq.beyond.probe_max_n = {probe_max_n} must exceed the trained "
                            f"n of {net.name} (max_n {net.max_n})")
        m = measure(net.net, net.language, probe_max_n)
        largest = m.largest
        path = trajectory(net.net.select(net.kept), net.language, net.max_n, probe_max_n)
        results["nets"][net.name] = {
            "language": net.language, "model": net.model, "hid": net.net.hid,
            "max_n": net.max_n, "epochs": net.epochs, "restarts": net.net.restarts,
            "kept_restart": net.kept,
            "largest_n": largest.tolist(),  # per restart
            "in_range": int(m.correct[:net.max_n].all(0).sum()),  # every n <= max_n right
            "beyond": int((largest > net.max_n).sum()),  # right at least at max_n + 1
            "furthest_n": int(largest.max()),
            "reach": float(largest.max() / net.max_n),  # the furthest n over the trained max_n
            "kept": {"largest_n": int(largest[net.kept]), "break": m.breaks[net.kept],
                     "accuracy": m.accuracy[:, net.kept].tolist(),
                     "a_step": [None if np.isnan(x) else float(x) for x in path["a_step"]],
                     "outside": path["outside"].tolist()},
            "breaks": m.breaks,
            "accuracy": m.accuracy.T.tolist(),  # [restart][n - 1]
        }
        r = results["nets"][net.name]
        for key in ("in_range", "beyond"):  # rates over the restarts, with their 95% interval
            r[f"{key}_interval"] = list(wilson(r[key], r["restarts"]))
        metrics[net.name] = {"largest_n": r["kept"]["largest_n"], "furthest_n": r["furthest_n"],
                             "in_range": r["in_range"], "beyond": r["beyond"]}
    return Outputs(metrics=metrics, results=results, files=_figures(results))


def _figures(results: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for name, r in results["nets"].items():
        accuracy = np.asarray(r["accuracy"]).T
        n = np.arange(1, len(accuracy) + 1)
        fig, ax = plt.subplots(figsize=(7.5, 3.6))
        ax.axvspan(0.5, r["max_n"] + 0.5, color="0.88", label=f"trained n (1..{r['max_n']})")
        for k in range(accuracy.shape[1]):
            ax.plot(n, accuracy[:, k], color="tab:blue", alpha=0.35, lw=0.8,
                    label="each restart" if k == 0 else None)
        ax.plot(n, accuracy[:, r["kept_restart"]], color="black", lw=2,
                label=f"kept restart ({r['kept_restart']})")
        ax.set(xlim=(0.5, n[-1] + 0.5), ylim=(-0.03, 1.03), xlabel="n of the probed block",
               ylabel="determined predictions right",
               title=f"{name}: {r['model'].upper()} {r['hid']} units, {r['epochs']:,} epochs")
        ax.legend(loc="lower left", fontsize=8)
        fig.tight_layout()
        yield f"{name}.png", fig
