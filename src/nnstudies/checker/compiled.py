"""The checkerboard MLP's training loop compiled with numba: many runs in lockstep, one per lane.

Lane r is one run of ``train.train`` with one restart: full-batch Adam on the mean BCE over
the nine points, each point's accuracy read from the outputs before the update, and the
course's patience rule (100% for ``patience`` consecutive epochs).  A lane reports the epoch
it met the rule and its loss and points right after that epoch's update, as ``train.train``
stops there; the batch runs on until every lane has met the rule or ``max_epochs`` is spent.

Why: the torch loop costs about a millisecond an epoch whatever the batch, so a stuck run at
the course's 200,000 epochs costs minutes; here a lane-epoch costs well under a microsecond.
Exactness, as Study 3's kernel (nnstudies.lanes): a lane's arithmetic is the same whatever
runs beside it (bit-identical alone or among many; tested); against the torch loop it agrees
to float32 rounding (its own exp, its own summation order), tested within a bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nnstudies.checker.model import StackedMLP
from nnstudies.lanes import ONE, ZERO, gather, jit, optimizer_side, sigmoid, update

LOG_FLOOR = np.float32(-100.0)  # torch's binary_cross_entropy clamps each log there
TINY = np.float32(1e-12)  # ... and divides its gradient by at least this


@jit
def _forward(x, p, hid, z, h, out):
    """Every lane's hidden activations h (points, hid, lanes) and outputs out (points, lanes)."""
    lanes = p.shape[1]
    w1, b1, w2, b2 = 0, 2 * hid, 3 * hid, 4 * hid
    for k in range(len(x)):
        for r in range(lanes):
            z[r] = ZERO
        for j in range(hid):
            for r in range(lanes):
                pre = x[k, 0] * p[w1 + 2 * j, r] + x[k, 1] * p[w1 + 2 * j + 1, r] + p[b1 + j, r]
                h[k, j, r] = sigmoid(pre)
                z[r] += h[k, j, r] * p[w2 + j, r]
        for r in range(lanes):
            out[k, r] = sigmoid(z[r] + p[b2, r])


@jit
def _score(t, out, loss, correct):
    """Per lane: the mean BCE over the points and how many points are right (output >= 0.5)."""
    n, lanes = out.shape
    for r in range(lanes):
        loss[r] = ZERO
        correct[r] = 0
    for k in range(n):
        for r in range(lanes):
            o = out[k, r]
            term = max(np.float32(np.log(o)), LOG_FLOOR) if t[k] == ONE \
                else max(np.float32(np.log(ONE - o)), LOG_FLOOR)
            loss[r] -= term
            correct[r] += (o >= np.float32(0.5)) == (t[k] == ONE)
    for r in range(lanes):
        loss[r] /= np.float32(n)


@jit
def _train(x, t, p, m, v, hid, opt, max_epochs, patience, first_full, met_rule, final_loss,
           final_correct):
    """Train every lane in place; returns the epochs the batch ran.  first_full, met_rule:
    epochs (-1: never); final_loss, final_correct: after the update of the lane's last epoch."""
    n, lanes = p.shape
    points = len(x)
    g = np.zeros_like(p)
    z, loss = np.empty(lanes, np.float32), np.empty(lanes, np.float32)
    correct, streak = np.zeros(lanes, np.int64), np.zeros(lanes, np.int64)
    h, out = np.empty((points, hid, lanes), np.float32), np.empty((points, lanes), np.float32)
    w1, b1, w2, b2 = 0, 2 * hid, 3 * hid, 4 * hid
    inv_n = ONE / np.float32(points)
    epoch, running = 0, lanes
    while epoch < max_epochs and running > 0:
        epoch += 1
        _forward(x, p, hid, z, h, out)
        _score(t, out, loss, correct)
        for r in range(lanes):  # the previous epoch's update made this lane's last state
            if met_rule[r] == epoch - 1:
                final_loss[r], final_correct[r] = loss[r], correct[r]
        g[:] = ZERO
        for k in range(points):
            for r in range(lanes):
                o = out[k, r]
                # BCE's gradient as torch computes it, then through the sigmoid: (1 - y) y.
                d = inv_n * (o - t[k]) / max((ONE - o) * o, TINY) * ((ONE - o) * o)
                g[b2, r] += d
                for j in range(hid):
                    hj = h[k, j, r]
                    g[w2 + j, r] += d * hj
                    dz = d * p[w2 + j, r] * ((ONE - hj) * hj)
                    g[w1 + 2 * j, r] += dz * x[k, 0]
                    g[w1 + 2 * j + 1, r] += dz * x[k, 1]
                    g[b1 + j, r] += dz
        update(p.ravel(), m.ravel(), v.ravel(), g.ravel(), opt, epoch - 1)
        for r in range(lanes):
            if met_rule[r] >= 0:
                continue
            full = correct[r] == points
            streak[r] = streak[r] + 1 if full else 0
            if full and first_full[r] < 0:
                first_full[r] = epoch
            if streak[r] == patience:
                met_rule[r] = epoch
                running -= 1
    _forward(x, p, hid, z, h, out)
    _score(t, out, loss, correct)
    for r in range(lanes):
        if met_rule[r] < 0 or met_rule[r] == epoch:
            final_loss[r], final_correct[r] = loss[r], correct[r]
    return epoch


@dataclass
class Lanes:
    """Per lane, as ``train.Result`` says it for a one-restart run."""

    epochs: list[int]  # epochs run: the epoch it met the rule, else max_epochs
    first_full: list[int | None]  # first epoch at 100%
    met_rule: list[int | None]  # the epoch it met the patience rule
    final_loss: list[float]
    final_correct: list[int]


def train(model: StackedMLP, x: torch.Tensor, t: torch.Tensor, *, lr: float, weight_decay: float,
          max_epochs: int, patience: int) -> Lanes:
    """Train each restart of ``model`` (its lanes) as ``train.train`` trains a one-restart
    model with ``stop="first"``; the model's tensors are not changed."""
    if model.act != "sig":
        raise ValueError("the compiled checkerboard kernel trains sigmoid nets only")
    params = [q.detach().clone().requires_grad_() for q in model.parameters()]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    first, second, _, steps = optimizer_side(opt, params, max(max_epochs, 1))
    p, m, v = gather(params), gather(first), gather(second)
    lanes = model.restarts
    first_full, met_rule = np.full(lanes, -1, np.int64), np.full(lanes, -1, np.int64)
    final_loss, final_correct = np.zeros(lanes, np.float32), np.zeros(lanes, np.int64)
    _train(x.numpy().astype(np.float32), t.numpy().astype(np.float32).ravel(), p, m, v,
           model.hid, steps, max_epochs, patience, first_full, met_rule, final_loss,
           final_correct)
    if not np.isfinite(final_loss).all():
        raise ValueError("the loss is not finite (the outputs overflowed to NaN): lower "
                         "checker.train.init or checker.train.lr")
    return Lanes(epochs=[int(e) if e >= 0 else max_epochs for e in met_rule],
                 first_full=[int(e) if e >= 0 else None for e in first_full],
                 met_rule=[int(e) if e >= 0 else None for e in met_rule],
                 final_loss=[float(v) for v in final_loss],
                 final_correct=[int(c) for c in final_correct])
