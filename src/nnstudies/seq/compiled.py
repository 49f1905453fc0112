"""Study 3's training loop compiled with numba: a whole span of epochs in one call.

The nets are tiny (2-5 hidden units, 2-7 symbols), so torch spends its time on per-step
dispatch and autograd bookkeeping, not on arithmetic.  ``train_span`` runs, for every
epoch of a span, the forward pass over that epoch's sequence, the loss (per restart: mean
over time of the next-symbol NLL, as ``train.train``), full BPTT and the optimiser update,
all compiled; ``forward`` is the same forward pass over an evaluation batch.

State stays torch's: the parameters are the model's own tensors (copied in and out of the
compiled layout around each span) and the optimiser state is ``optimizer.state[p]`` exactly
as torch.optim.Adam / SGD keep it, so ``state_dict()``, checkpoints and resume do not know
which kernel ran.

Exactness (docs/seq.md, "The compiled kernel"; tests/test_seq_compiled.py):
- every restart reads the same sequence, so all restarts step through it together, each in
  its own SIMD lane, with only elementwise operations across restarts: restart r's
  arithmetic is the same, operation for operation, whatever runs beside it (bit-identical
  alone or among R, and a resumed run to an uninterrupted one, on one CPU path; tested);
- the update repeats torch's single-tensor Adam / SGD operation by operation in float32,
  fused multiply-adds where torch's vectorised CPU kernels fuse (add with alpha, lerp,
  addcmul) and bias corrections as torch's Python floats: the same gradients give torch's
  update to about an ulp a step, not its bits (torch's square root is MKL's vsSqrt, not
  correctly rounded; on ATEN_CPU_CAPABILITY=default torch does not fuse); tested within a
  bound derived from that arithmetic;
- the forward and backward pass are float32 too, but sum in their own order and use their
  own exp/tanh (below): close to the ``loop`` kernel, not equal (tested within 1e-5 after
  200 updates).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from nnstudies.lanes import ONE, ZERO, exp, gather, inline, jit, optimizer_side, scatter, sigmoid, tanh, update

NAMES = {"srn": ("H0", "W", "U", "hid_bias", "V", "out_bias"),
         "lstm": ("W", "U", "hid_bias", "V", "out_bias")}

# ---- the nets, all restarts in lockstep ------------------------------------------------------
# Every restart reads the same sequence, so one time loop serves them all: arrays end in the
# restart axis and the innermost loops run over restarts, elementwise, each restart's
# operations in the same order as if it ran alone (bit-identical whatever R is; tested).
# p, m, v, g hold the parameters, optimiser states and gradients, (n, R): parameter k is rows
# offs[k]:offs[k+1], in the model's order and shapes.  Rows are indexed, never sliced, in the
# time loops: a slice is a new array, with reference counting of its own.

@jit
def _part(a, offs, k, shape):
    """Parameter k of (n, R) as an array of ``shape`` + (R,)."""
    return a[offs[k]:offs[k + 1]].reshape(shape + (a.shape[1],))


@inline
def _readout(hs, t, V, c, zs, acc):
    """zs[t] = h_t V + c (hs[t + 1] is h_t)."""
    H, C, R = V.shape
    for o in range(C):
        acc[:] = ZERO
        for k in range(H):
            for r in range(R):
                acc[r] += hs[t + 1, k, r] * V[k, o, r]
        for r in range(R):
            zs[t, o, r] = acc[r] + c[o, r]


@inline
def _readout_grad(hs, zs, t, y, inv_t, V, gV, gc, dz, dh, acc, mx, nll):
    """Step t's NLL of label y under log_softmax(zs[t]), added to nll, and the backward pass
    through it and the output layer: dz = d(NLL / T)/dz, added to gV and gc; dh += V dz."""
    H, C, R = V.shape
    for r in range(R):
        mx[r] = zs[t, 0, r]
    for o in range(1, C):
        for r in range(R):
            mx[r] = max(mx[r], zs[t, o, r])
    acc[:] = ZERO  # the softmax's denominator
    for o in range(C):
        for r in range(R):
            dz[o, r] = np.float32(exp(np.float64(zs[t, o, r] - mx[r])))
            acc[r] += dz[o, r]
    for r in range(R):
        nll[r] += math.log(acc[r]) - (zs[t, y, r] - mx[r])
        acc[r] = inv_t / acc[r]
    for o in range(C):
        for r in range(R):
            dz[o, r] *= acc[r]  # softmax / T
    for r in range(R):
        dz[y, r] -= inv_t
    for o in range(C):
        for r in range(R):
            gc[o, r] += dz[o, r]
        for k in range(H):
            for r in range(R):
                gV[k, o, r] += hs[t + 1, k, r] * dz[o, r]
    for k in range(H):
        acc[:] = ZERO
        for o in range(C):
            for r in range(R):
                acc[r] += dz[o, r] * V[k, o, r]
        for r in range(R):
            dh[k, r] += acc[r]


@inline
def _hidden_in(hs, t, U, q, acc):
    """acc = (h_{t-1} U)[q] (hs[t] is h_{t-1})."""
    acc[:] = ZERO
    for k in range(U.shape[0]):
        for r in range(U.shape[2]):
            acc[r] += hs[t, k, r] * U[k, q, r]


@inline
def _hidden_grad(U, dpre, dh, acc):
    """dh = U dpre: the gradient reaching h_{t-1} through the recurrent weights."""
    for k in range(U.shape[0]):
        acc[:] = ZERO
        for q in range(U.shape[1]):
            for r in range(U.shape[2]):
                acc[r] += U[k, q, r] * dpre[q, r]
        for r in range(U.shape[2]):
            dh[k, r] = acc[r]


@inline
def _input_grad(hs, t, x, dpre, gW, gU, gb):
    """gW[x_t] += dpre (one-hot input), gb += dpre, gU += h_{t-1} dpre."""
    for q in range(dpre.shape[0]):
        for r in range(dpre.shape[1]):
            gW[x, q, r] += dpre[q, r]
            gb[q, r] += dpre[q, r]
        for k in range(gU.shape[0]):
            for r in range(dpre.shape[1]):
                gU[k, q, r] += hs[t, k, r] * dpre[q, r]


@inline
def _srn_net(p, offs):
    """The SRN's H0, W, U, b, V, c as views of (n, R) parameters (or gradients)."""
    H = offs[1] - offs[0]
    C = (offs[2] - offs[1]) // H
    return (_part(p, offs, 0, (H,)), _part(p, offs, 1, (C, H)), _part(p, offs, 2, (H, H)),
            _part(p, offs, 3, (H,)), _part(p, offs, 4, (H, C)), _part(p, offs, 5, (C,)))


@inline
def _lstm_net(p, offs):
    """The LSTM's W, U, b, V, c as views of (n, R) parameters (or gradients)."""
    G = offs[3] - offs[2]
    H, C = G // 4, (offs[1] - offs[0]) // G
    return (_part(p, offs, 0, (C, G)), _part(p, offs, 1, (H, G)), _part(p, offs, 2, (G,)),
            _part(p, offs, 3, (H, C)), _part(p, offs, 4, (C,)))


@inline
def _srn_forward(x, T, net, hs, zs, acc):
    """h_{-1} = tanh(H0) in hs[0]; h_t = tanh(x_t W + h_{t-1} U + b) in hs[t + 1], logits
    h_t V + c in zs[t], for t < T.  x: symbol indices (one-hot inputs: a row of W); x[t] < 0
    is no input (padding of an evaluation batch)."""
    H0, W, U, b, V, c = net
    H, R = H0.shape
    for j in range(H):
        for r in range(R):
            hs[0, j, r] = tanh(H0[j, r])
    for t in range(T):
        s = x[t]  # held in a register: the stores below might alias x otherwise
        for j in range(H):
            _hidden_in(hs, t, U, j, acc)
            if s >= 0:
                for r in range(R):
                    hs[t + 1, j, r] = tanh(W[s, j, r] + acc[r] + b[j, r])
            else:
                for r in range(R):
                    hs[t + 1, j, r] = tanh(acc[r] + b[j, r])
        _readout(hs, t, V, c, zs, acc)


@inline
def _lstm_forward(x, T, net, hs, cs, tc, act, zs, acc):
    """hs[0] = cs[0] = 0; for t < T: gates x_t W + h_{t-1} U + b split i, f, g, o (chunks
    of H), their activations in act[t]; c_t = f c_{t-1} + i g in cs[t + 1], tanh(c_t) in
    tc[t], h_t = o tanh(c_t) in hs[t + 1], logits in zs[t]."""
    W, U, b, V, c = net
    G, R = b.shape
    H = G // 4
    hs[0] = ZERO
    cs[0] = ZERO
    for t in range(T):
        s = x[t]
        for q in range(G):
            _hidden_in(hs, t, U, q, acc)
            if s >= 0:
                for r in range(R):
                    acc[r] = W[s, q, r] + acc[r]
            if 2 * H <= q < 3 * H:
                for r in range(R):
                    act[t, q, r] = tanh(acc[r] + b[q, r])
            else:
                for r in range(R):
                    act[t, q, r] = sigmoid(acc[r] + b[q, r])
        for j in range(H):
            for r in range(R):
                cs[t + 1, j, r] = (act[t, H + j, r] * cs[t, j, r]
                                   + act[t, j, r] * act[t, 2 * H + j, r])
                tc[t, j, r] = tanh(cs[t + 1, j, r])
                hs[t + 1, j, r] = act[t, 3 * H + j, r] * tc[t, j, r]
        _readout(hs, t, V, c, zs, acc)


@jit
def _srn_span(symbols, starts, first, last, p, m, v, g, offs, opt, loss):
    """Epochs first..last-1 of the SRN; each epoch's mean NLL over time is added to ``loss``
    (float32, R), as train.train sums them."""
    net, grad = _srn_net(p, offs), _srn_net(g, offs)
    V, (gH0, gW, gU, gb, gV, gc) = net[4], grad
    (H, C, R), L = V.shape, np.max(starts[first + 1:last + 1] - starts[first:last])
    hs, zs = np.empty((L, H, R), np.float32), np.empty((L, C, R), np.float32)
    dz, dh, da = np.empty((C, R), np.float32), np.empty((H, R), np.float32), \
        np.empty((H, R), np.float32)
    acc, mx, nll = np.empty(R, np.float32), np.empty(R, np.float32), np.empty(R)
    for e in range(first, last):
        x, T = symbols[starts[e]:], starts[e + 1] - starts[e] - 1
        _srn_forward(x, T, net, hs, zs, acc)
        g[:] = ZERO  # backward through time
        dh[:] = ZERO
        nll[:] = 0.0
        inv_t = ONE / np.float32(T)
        for t in range(T - 1, -1, -1):
            _readout_grad(hs, zs, t, x[t + 1], inv_t, V, gV, gc, dz, dh, acc, mx, nll)
            for j in range(H):
                for r in range(R):
                    da[j, r] = dh[j, r] * (ONE - hs[t + 1, j, r] * hs[t + 1, j, r])
            _input_grad(hs, t, x[t], da, gW, gU, gb)
            _hidden_grad(net[2], da, dh, acc)
        for j in range(H):
            for r in range(R):
                gH0[j, r] = dh[j, r] * (ONE - hs[0, j, r] * hs[0, j, r])
        update(p.ravel(), m.ravel(), v.ravel(), g.ravel(), opt, e - first)
        for r in range(R):
            loss[r] += np.float32(nll[r] / T)


@jit
def _lstm_span(symbols, starts, first, last, p, m, v, g, offs, opt, loss):
    """The same for the LSTM."""
    net, grad = _lstm_net(p, offs), _lstm_net(g, offs)
    V, (gW, gU, gb, gV, gc) = net[3], grad
    (H, C, R), L = V.shape, np.max(starts[first + 1:last + 1] - starts[first:last])
    G = 4 * H
    hs, cs = np.empty((L, H, R), np.float32), np.empty((L, H, R), np.float32)
    tc, act, zs = np.empty((L, H, R), np.float32), np.empty((L, G, R), np.float32), \
        np.empty((L, C, R), np.float32)
    dz, dh, dc, dpre = np.empty((C, R), np.float32), np.empty((H, R), np.float32), \
        np.empty((H, R), np.float32), np.empty((G, R), np.float32)
    acc, mx, nll = np.empty(R, np.float32), np.empty(R, np.float32), np.empty(R)
    for e in range(first, last):
        x, T = symbols[starts[e]:], starts[e + 1] - starts[e] - 1
        _lstm_forward(x, T, net, hs, cs, tc, act, zs, acc)
        g[:] = ZERO  # backward through time
        dh[:] = ZERO
        dc[:] = ZERO
        nll[:] = 0.0
        inv_t = ONE / np.float32(T)
        for t in range(T - 1, -1, -1):
            _readout_grad(hs, zs, t, x[t + 1], inv_t, V, gV, gc, dz, dh, acc, mx, nll)
            for j in range(H):  # in torch's order of operations: sigmoid' = (1 - y) y
                for r in range(R):
                    i, f = act[t, j, r], act[t, H + j, r]
                    gg, o = act[t, 2 * H + j, r], act[t, 3 * H + j, r]
                    dcj = dc[j, r] + dh[j, r] * o * (ONE - tc[t, j, r] * tc[t, j, r])
                    dc[j, r] = dcj * f  # to step t - 1
                    dpre[j, r] = dcj * gg * (ONE - i) * i
                    dpre[H + j, r] = dcj * cs[t, j, r] * (ONE - f) * f
                    dpre[2 * H + j, r] = dcj * i * (ONE - gg * gg)
                    dpre[3 * H + j, r] = dh[j, r] * tc[t, j, r] * (ONE - o) * o
            _input_grad(hs, t, x[t], dpre, gW, gU, gb)
            _hidden_grad(net[1], dpre, dh, acc)
        update(p.ravel(), m.ravel(), v.ravel(), g.ravel(), opt, e - first)
        for r in range(R):
            loss[r] += np.float32(nll[r] / T)


@jit
def _srn_batch(xs, p, offs, hidden, logits):
    """The SRN's forward pass over a batch of sequences (evaluation): xs (N, T) symbol
    indices (-1: no input); out: hidden (N, T + 1, H, R), the initial state first, and
    logits (N, T, C, R)."""
    for n in range(len(xs)):
        _srn_forward(xs[n], xs.shape[1], _srn_net(p, offs), hidden[n], logits[n],
                     np.empty(p.shape[1], np.float32))


@jit
def _lstm_batch(xs, p, offs, hidden, logits):
    """The same for the LSTM."""
    (N, T), (H, R) = xs.shape, hidden.shape[2:]
    cs, tc = np.empty((T + 1, H, R), np.float32), np.empty((T, H, R), np.float32)
    act, acc = np.empty((T, 4 * H, R), np.float32), np.empty(R, np.float32)
    for n in range(N):
        _lstm_forward(xs[n], T, _lstm_net(p, offs), hidden[n], cs, tc, act, logits[n], acc)


def _layout(model) -> tuple[bool, list, np.ndarray]:
    """Whether it is the LSTM, its parameters, and where each starts in the (n, R) layout."""
    kind = type(model).__name__.lower()
    params = list(model.parameters())
    if [name for name, _ in model.named_parameters()] != list(NAMES[kind]):
        raise ValueError(f"unexpected parameters for the compiled {kind}")
    return kind == "lstm", params, np.cumsum([0] + [p[0].numel() for p in params])


def train_span(model, optimizer, symbols: np.ndarray, starts: np.ndarray, first: int,
               last: int, loss_sum: np.ndarray) -> None:
    """Train epochs first..last-1 (epoch e on ``symbols[starts[e]:starts[e + 1]]``), every
    restart, in place: the model's parameters and the optimiser's state advance as torch's
    would, to float32 rounding; each restart's per-epoch losses are added to ``loss_sum``
    (float32, R)."""
    if last <= first:
        return
    lstm, params, offs = _layout(model)
    first_state, second_state, real, opt = optimizer_side(optimizer, params, last - first)
    p, m, v = gather(params), gather(first_state), gather(second_state)
    span = _lstm_span if lstm else _srn_span
    span(symbols, starts, first, last, p, m, v, np.zeros_like(p), offs, opt, loss_sum)
    scatter(p, params)
    if real > 0:
        scatter(m, first_state)
    if real > 1:
        scatter(v, second_state)
    if opt[0]:
        for t in params:
            optimizer.state[t]["step"] += last - first


def forward(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden, logits) of every restart, (T, N, R, hid) and (T, N, R, C), for one-hot inputs
    x (T, N, C) (an all-zero row: no input, as padding), computed as training computes them:
    restart r's values are the same whatever runs beside it."""
    xs = x.detach().numpy()
    index = np.where(xs.any(-1), xs.argmax(-1), -1)
    if not np.array_equal(xs, (index[..., None] == np.arange(xs.shape[-1])).astype(xs.dtype)):
        raise ValueError("the compiled kernel takes one-hot inputs (or all-zero rows)")
    lstm, params, offs = _layout(model)
    (T, N), R = index.shape, model.restarts
    hidden = np.empty((N, T + 1, model.hid, R), np.float32)
    logits = np.empty((N, T, model.num_out, R), np.float32)
    run = _lstm_batch if lstm else _srn_batch
    run(np.ascontiguousarray(index.T, np.int8), gather(params), offs, hidden, logits)
    return (torch.from_numpy(hidden[:, 1:].transpose(1, 0, 3, 2)),
            torch.from_numpy(logits.transpose(1, 0, 3, 2)))
