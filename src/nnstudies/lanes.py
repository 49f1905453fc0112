"""numba kernels over lanes: many independent small nets trained in lockstep, one per SIMD lane.

Shared by the compiled kernels of Study 3 (seq/compiled.py) and of the checkerboard sweep
(checker/compiled.py): numba's cache of their machine code, elementwise exp/tanh/sigmoid that
give every lane the same bits wherever it sits, and torch's single-tensor Adam / SGD update
repeated operation by operation, with the torch side that carries parameters and optimiser
state in and out of the (n, lanes) layout.  Arrays end in the lane axis and the innermost
loops run over lanes, elementwise: a lane's arithmetic is the same whatever runs beside it.
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
PACKAGE = Path(__file__).resolve().parent  # src/nnstudies

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
def exp(x):
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
def tanh(x):
    """tanh of a float32, rounded from float64: (e - 1) / (e + 1) with e = exp(2x), or the
    series x - x^3/3 near 0, where e - 1 would cancel."""
    d = np.float64(x)
    e = exp(2.0 * d)
    return np.float32(d - d * d * d / 3.0 if abs(d) < 2.0 ** -12 else (e - 1.0) / (e + 1.0))


@jit
def sigmoid(x):
    return np.float32(1.0 / (1.0 + exp(-np.float64(x))))


@jit
def update(p, m, v, g, opt, i):
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

def flat(t: torch.Tensor) -> np.ndarray:
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


def optimizer_side(optimizer, params, n: int):
    """(first states, second states, how many are real, opt for ``update``), the state
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
            for p in params:  # torch copies the first gradient into it; update does
                state[p].setdefault("momentum_buffer", torch.zeros_like(p.detach()))
            first, real = [state[p]["momentum_buffer"] for p in params], 1
        scale, root = np.full(n, -group["lr"], np.float32), np.ones(n, np.float32)
    return first, second, real, (adam, scale, root, hp, fresh)


def gather(tensors) -> np.ndarray:
    """(R, ...) tensors -> one (n, R) float32 array, restarts innermost (the SIMD lanes)."""
    return np.ascontiguousarray(np.concatenate([flat(t).T for t in tensors]))


def scatter(a: np.ndarray, tensors) -> None:
    start = 0
    for t in tensors:
        view = flat(t)
        view[:] = a[start:start + view.shape[1]].T
        start += view.shape[1]
