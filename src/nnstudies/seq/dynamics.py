"""Measured hidden-unit dynamics: how well hidden vectors separate by grammar state, and
the state machine read back from the hidden space."""

from __future__ import annotations

from collections import Counter

import numpy as np

from nnstudies.seq.compiled import jit


def centroids(points: np.ndarray, labels: np.ndarray) -> dict[int, np.ndarray]:
    return {int(s): points[labels == s].mean(0) for s in np.unique(labels)}


def nearest_centroid(points: np.ndarray, cents: dict[int, np.ndarray]) -> np.ndarray:
    names = np.array(list(cents))
    dist = ((points[:, None, :] - np.stack(list(cents.values()))[None]) ** 2).sum(-1)
    return names[dist.argmin(1)]


def centroid_accuracy(points: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of hidden vectors whose nearest state centroid is their own state's."""
    return float(centroid_accuracies(points[:, None], labels)[0])


def centroid_accuracies(points: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``centroid_accuracy`` of R nets at once: points (N, R, hid) -> (R,).  Each net's
    centroids and distances are its own, summed in the same order as for that net alone.
    Compiled: training evaluates 16 restarts every 1,000 epochs, and numpy took longer over
    it than the training itself."""
    states, index = np.unique(labels, return_inverse=True)
    points = np.ascontiguousarray(np.asarray(points, np.float32).transpose(0, 2, 1))
    return _centroid_hits(points, index.reshape(-1), len(states)) / len(labels)


@jit
def _centroid_hits(points, index, S):
    """Per net, the points nearest their own state's centroid: points (N, hid, R) float32,
    index (N,) each point's state in 0..S-1.  Float32 sums in point order and ties to the
    lower state, as numpy's mean and argmin."""
    N, H, R = points.shape
    count = np.zeros(S, np.int64)
    cent = np.zeros((S, H, R), np.float32)
    for i in range(N):
        count[index[i]] += 1
        for h in range(H):
            for r in range(R):
                cent[index[i], h, r] += points[i, h, r]
    for s in range(S):
        for h in range(H):
            for r in range(R):
                cent[s, h, r] /= np.float32(count[s])
    hits, near = np.zeros(R, np.int64), np.empty(R, np.int64)
    dist, near_dist = np.empty(R, np.float32), np.empty(R, np.float32)
    for i in range(N):  # the innermost loops run over nets, so that they vectorise
        for s in range(S):
            dist[:] = 0.0
            for h in range(H):
                for r in range(R):
                    dist[r] += (points[i, h, r] - cent[s, h, r]) ** 2
            for r in range(R):
                if s == 0 or dist[r] < near_dist[r]:
                    near[r], near_dist[r] = s, dist[r]
        for r in range(R):
            hits[r] += near[r] == index[i]
    return hits


def silhouette(points: np.ndarray, labels: np.ndarray, limit: int = 2000, seed: int = 0) -> float:
    """Mean silhouette coefficient (on at most ``limit`` points, a seeded subsample)."""
    if len(np.unique(labels)) < 2:
        return 0.0
    if len(points) > limit:
        keep = np.random.default_rng(seed).choice(len(points), limit, replace=False)
        points, labels = points[keep], labels[keep]
    dist = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
    same = labels[:, None] == labels[None]
    own = same.sum(1) - 1
    a = np.where(own > 0, (dist * same).sum(1) / np.maximum(own, 1), 0.0)
    b = np.full(len(points), np.inf)
    for s in np.unique(labels):
        other = labels == s
        b = np.where(labels != s, np.minimum(b, dist[:, other].mean(1)), b)
    s = np.where(own > 0, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(s.mean())


def transitions(states: list[np.ndarray], symbols: list[np.ndarray]) -> Counter:
    """Counts of (state, symbol, next state) along sequences, state aligned as in the course:
    the hidden vector after reading symbol k carries state[k+1], so moving from hidden k-1
    to hidden k reads symbol k and goes from state[k] to state[k+1]."""
    counts = Counter()
    for st, sym in zip(states, symbols):
        for k in range(1, len(sym) - 1):
            counts[(int(st[k]), int(sym[k]), int(st[k + 1]))] += 1
    return counts


def read_back_machine(hidden: list[np.ndarray], states: list[np.ndarray],
                      symbols: list[np.ndarray]) -> dict:
    """The state machine as the hidden space shows it.

    Each hidden vector is assigned its nearest state centroid; the machine read back maps
    (state, symbol) to the most frequent assigned state of the hidden vector that follows.
    ``agreement`` is the fraction of true transitions (state, symbol) -> state the read-back
    machine reproduces, weighted by how often they occur.
    """
    points = np.concatenate(hidden)
    labels = np.concatenate([st[1:] for st in states])
    cents = centroids(points, labels)
    votes: dict[tuple, Counter] = {}
    true = transitions(states, symbols)
    for h, st, sym in zip(hidden, states, symbols):
        assigned = nearest_centroid(h, cents)
        for k in range(1, len(sym) - 1):
            votes.setdefault((int(st[k]), int(sym[k])), Counter())[int(assigned[k])] += 1
    machine = {key: c.most_common(1)[0][0] for key, c in votes.items()}
    hits = sum(n for (s, a, t), n in true.items() if machine.get((s, a)) == t)
    return {"centroids": cents, "machine": machine, "transitions": true,
            "agreement": hits / max(1, sum(true.values()))}


def position_accuracy(predicted: np.ndarray, symbols: np.ndarray, probs: np.ndarray,
                      alphabet: str) -> dict[str, float]:
    """a^n b^n (c^n): accuracy on deterministic positions, by what is predicted.

    ``B``: every B after the first of a block; ``last_B``: the last B of blocks with n >= 2;
    ``C``: every C; ``A``: the A after each block.  ``predicted`` and ``probs`` are aligned
    with ``symbols[1:]``.
    """
    target = symbols[1:]
    det = probs.max(-1) == 1
    nxt = np.append(target[1:], -1)
    groups = {"B": det & (target == 1), "last_B": det & (target == 1) & (nxt != 1),
              "A": det & (target == 0), "all": det}
    if "C" in alphabet:
        groups["C"] = det & (target == 2)
    return {name: (int((predicted[m] == target[m]).sum()), int(m.sum()))
            for name, m in groups.items()}
