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

import hashlib
import math
import os
from pathlib import Path

import numpy as np
import torch
from numba import njit
from numba.core import caching, types
from numba.extending import intrinsic

ONE, ZERO = np.float32(1.0), np.float32(0.0)
NAMES = {"srn": ("H0", "W", "U", "hid_bias", "V", "out_bias"),
         "lstm": ("W", "U", "hid_bias", "V", "out_bias")}
PACKAGE = Path(__file__).resolve().parents[1]  # src/nnstudies


# ---- numba's cache of the compiled code ------------------------------------------------------

def cache_root(py_file) -> Path | None:
    """Where the machine code of this package's compiled functions is kept (compiling it
    takes about half a minute): $NUMBA_CACHE_DIR/nnstudies when set, else
    <repo>/.numba_cache, where a DVC queue's temp copy (<repo>/.dvc/tmp/exps/<tmp>/) uses its
    main repo's; None outside a checkout (an installed package: numba's own places)."""
    if PACKAGE not in Path(py_file).resolve().parents:
        return None
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"]) / "nnstudies"
    repo = PACKAGE.parents[1]
    parts = repo.parts
    for i in range(len(parts) - 3, 0, -1):
        if parts[i:i + 3] == (".dvc", "tmp", "exps"):
            repo = Path(*parts[:i])
            break
    return repo / ".numba_cache" if (repo / "pyproject.toml").is_file() else None


class SharedCacheLocator(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):
    """Keys the cache by the source file's content, not its path (numba's default keeps it in
    __pycache__ beside the file, so each copy of the repo compiles anew): one folder per
    version of the file, so copies on different commits do not evict each other's code."""

    def __init__(self, py_func, py_file):
        self._py_file, self._lineno = py_file, py_func.__code__.co_firstlineno
        digest = hashlib.sha256(Path(py_file).read_bytes()).hexdigest()[:16]
        self._cache_path = str(cache_root(py_file) / f"{Path(py_file).stem}-{digest}")

    def get_cache_path(self):
        return self._cache_path

    @classmethod
    def from_function(cls, py_func, py_file):
        return super().from_function(py_func, py_file) if cache_root(py_file) else None


if SharedCacheLocator not in caching.CacheImpl._locator_classes:
    caching.CacheImpl._locator_classes.insert(0, SharedCacheLocator)

# No Python error checks (error_model="numpy"): their exception paths keep numba from pruning
# the reference counting of array arguments, and the atomic increments and decrements in a
# helper called every time step cost more than its arithmetic.  (T >= 1 always.)
jit = njit(cache=True, error_model="numpy")
inline = njit(cache=True, error_model="numpy", inline="always")  # helpers of the time loops


@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c rounded once (LLVM's fma), as torch's vectorised CPU kernels compute it (its
    DEFAULT-capability kernels round twice)."""
    if not all(t == types.float32 for t in (a, b, c)):
        return None
    return types.float32(a, b, c), lambda context, builder, sig, args: builder.fma(*args)


@intrinsic
def _as_float64(typingctx, bits):
    """The float64 whose bit pattern is the int64 ``bits``."""
    if bits != types.int64:
        return None
    return types.float64(bits), lambda context, builder, sig, args: builder.bitcast(
        args[0], context.get_value_type(types.float64))


# ---- elementwise functions -----------------------------------------------------------------
# exp, tanh and sigmoid are evaluated in float64 from basic arithmetic, so that the loops
# over restarts vectorise (libm's are calls, one restart at a time) and every restart gets
# the same bits whether it sits in a SIMD lane or in the scalar remainder.  Rounded to
# float32 they are within an ulp of libm's (almost always the correctly rounded value).

LOG2E, LN2_HI, LN2_LO = 1.4426950408889634, 0.6931471803691238, 1.9082149292705877e-10
EXP_TAYLOR = tuple(1.0 / math.factorial(k) for k in range(11, -1, -1))  # r^11/11! .. 1


@jit
def _exp(x):
    """e**x for float64 x, to be rounded to float32: x = n ln2 + r, |r| <= ln2/2, e**r by its
    Taylor series to r^11 (relative error < 1e-14), times 2**n made from its bits.  x is held
    to [-110, 110], where float32 results are 0 and inf already (NaN stays NaN)."""
    x = min(max(x, -110.0), 110.0)
    n = np.rint(x * LOG2E)
    r = (x - n * LN2_HI) - n * LN2_LO
    p = EXP_TAYLOR[0]
    for k in range(1, len(EXP_TAYLOR)):
        p = p * r + EXP_TAYLOR[k]
    return p * _as_float64((np.int64(n) + 1023) << 52)


@jit
def _tanh(x):
    """tanh of a float32, rounded from float64: (e - 1) / (e + 1) with e = exp(2x), or the
    series x - x^3/3 near 0, where e - 1 would cancel."""
    d = np.float64(x)
    e = _exp(2.0 * d)
    return np.float32(d - d * d * d / 3.0 if abs(d) < 2.0 ** -12 else (e - 1.0) / (e + 1.0))


@jit
def _sigmoid(x):
    return np.float32(1.0 / (1.0 + _exp(-np.float64(x))))


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
            dz[o, r] = np.float32(_exp(np.float64(zs[t, o, r] - mx[r])))
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
            hs[0, j, r] = _tanh(H0[j, r])
    for t in range(T):
        s = x[t]  # held in a register: the stores below might alias x otherwise
        for j in range(H):
            _hidden_in(hs, t, U, j, acc)
            if s >= 0:
                for r in range(R):
                    hs[t + 1, j, r] = _tanh(W[s, j, r] + acc[r] + b[j, r])
            else:
                for r in range(R):
                    hs[t + 1, j, r] = _tanh(acc[r] + b[j, r])
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
                    act[t, q, r] = _tanh(acc[r] + b[q, r])
            else:
                for r in range(R):
                    act[t, q, r] = _sigmoid(acc[r] + b[q, r])
        for j in range(H):
            for r in range(R):
                cs[t + 1, j, r] = (act[t, H + j, r] * cs[t, j, r]
                                   + act[t, j, r] * act[t, 2 * H + j, r])
                tc[t, j, r] = _tanh(cs[t + 1, j, r])
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
        _step(p.ravel(), m.ravel(), v.ravel(), g.ravel(), opt, e - first)
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
        _step(p.ravel(), m.ravel(), v.ravel(), g.ravel(), opt, e - first)
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


@jit
def _step(p, m, v, g, opt, i):
    """torch's single-tensor Adam or SGD update after the span's epoch i, element by element,
    operation by operation; it agrees with torch's to about an ulp a step, not bit for bit
    (torch takes the square root from MKL's vsSqrt, which is not correctly rounded).

    opt = (adam, scale, root, hp, fresh): scale[i] = -lr / bias_correction1 (SGD: -lr) and
    root[i] = sqrt(bias_correction2), torch's Python floats rounded to float32 as its kernels
    take them; hp = (1 - beta1, beta2, 1 - beta2, eps, weight_decay, momentum); fresh: SGD's
    momentum buffer starts at this span's first epoch.  m, v: Adam's exp_avg, exp_avg_sq;
    SGD's momentum buffer is m."""
    adam, scale, root, hp, fresh = opt
    w1, b2, w2, eps, wd, mom = hp[0], hp[1], hp[2], hp[3], hp[4], hp[5]
    for j in range(len(p)):
        gj = fma(p[j], wd, g[j]) if wd != ZERO else g[j]  # grad.add(param, alpha=wd)
        if adam:
            m[j] = fma(w1, gj - m[j], m[j])  # exp_avg.lerp_(grad, 1 - beta1)
            v[j] = fma(w2 * gj, gj, v[j] * b2)  # exp_avg_sq.mul_(b2).addcmul_(grad, grad, 1 - b2)
            p[j] = p[j] + (scale[i] * m[j]) / (math.sqrt(v[j]) / root[i] + eps)  # addcdiv_
        else:
            if mom != ZERO:  # buf = grad at first, then buf.mul_(momentum).add_(grad)
                m[j] = gj if fresh and i == 0 else fma(gj, ONE, m[j] * mom)
                gj = m[j]
            p[j] = fma(gj, scale[i], p[j])  # param.add_(grad, alpha=-lr)


# ---- the torch side --------------------------------------------------------------------

def _flat(t: torch.Tensor) -> np.ndarray:
    """A (R, n) numpy view of a (R, ...) tensor: writes go to the tensor."""
    a = t.detach().numpy()
    view = a.reshape(len(a), -1)
    assert np.shares_memory(a, view) and view.flags.c_contiguous
    return view


def _is_adam(optimizer, params) -> bool:
    """True for Adam, False for SGD; what the compiled update does not do is refused."""
    group = optimizer.param_groups[0]
    if len(optimizer.param_groups) != 1 or list(map(id, group["params"])) != list(map(id, params)):
        raise ValueError("the compiled kernel needs one parameter group: the model's parameters")
    if type(optimizer) is torch.optim.Adam and not (
            group["amsgrad"] or group["maximize"] or group["decoupled_weight_decay"]):
        return True
    if type(optimizer) is torch.optim.SGD and not (
            group["nesterov"] or group["dampening"] or group["maximize"]):
        return False
    raise ValueError("the compiled kernel does plain Adam, or SGD with plain momentum, only")


def _optimizer_side(optimizer, params, n: int):
    """(first states, second states, how many are real, opt for ``_step``), the state
    tensors made as torch's first step makes them where there are none yet."""
    group, state = optimizer.param_groups[0], optimizer.state
    adam, fresh = _is_adam(optimizer, params), False
    hp = np.array([0.0, 0.0, 0.0, 0.0, group["weight_decay"], group.get("momentum", 0.0)],
                  np.float32)
    if adam:
        for p in params:
            if not state[p]:
                state[p].update(step=torch.tensor(0.0), exp_avg=torch.zeros_like(p.detach()),
                                exp_avg_sq=torch.zeros_like(p.detach()))
        (b1, b2), done = group["betas"], state[params[0]]["step"].item()
        steps = [done + 1 + i for i in range(n)]  # bias corrections as torch's Python floats
        scale = np.array([-(group["lr"] / (1 - b1 ** s)) for s in steps], np.float32)
        root = np.array([(1 - b2 ** s) ** 0.5 for s in steps], np.float32)
        hp[:4] = 1 - b1, b2, 1 - b2, group["eps"]
        first, second = [state[p]["exp_avg"] for p in params], [state[p]["exp_avg_sq"]
                                                               for p in params]
        real = 2
    else:
        first = second = params  # placeholders, never read
        real = 0
        if group["momentum"]:
            fresh = "momentum_buffer" not in state[params[0]]
            for p in params:  # torch copies the first gradient into it; _step does
                state[p].setdefault("momentum_buffer", torch.zeros_like(p.detach()))
            first, real = [state[p]["momentum_buffer"] for p in params], 1
        scale, root = np.full(n, -group["lr"], np.float32), np.ones(n, np.float32)
    return first, second, real, (adam, scale, root, hp, fresh)


def _gather(tensors) -> np.ndarray:
    """(R, ...) tensors -> one (n, R) float32 array, restarts innermost (the SIMD lanes)."""
    return np.ascontiguousarray(np.concatenate([_flat(t).T for t in tensors]))


def _scatter(a: np.ndarray, tensors) -> None:
    start = 0
    for t in tensors:
        view = _flat(t)
        view[:] = a[start:start + view.shape[1]].T
        start += view.shape[1]


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
    first_state, second_state, real, opt = _optimizer_side(optimizer, params, last - first)
    p, m, v = _gather(params), _gather(first_state), _gather(second_state)
    span = _lstm_span if lstm else _srn_span
    span(symbols, starts, first, last, p, m, v, np.zeros_like(p), offs, opt, loss_sum)
    _scatter(p, params)
    if real > 0:
        _scatter(m, first_state)
    if real > 1:
        _scatter(v, second_state)
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
    run(np.ascontiguousarray(index.T, np.int8), _gather(params), offs, hidden, logits)
    return (torch.from_numpy(hidden[:, 1:].transpose(1, 0, 3, 2)),
            torch.from_numpy(logits.transpose(1, 0, 3, 2)))
