"""Comparing the floats of two different kernels: within a stated bound, and a failure that
says by how much and where.

Bit equality is promised only by one kernel on one CPU path against itself; two kernels
(numba's and torch's, or torch's on another CPU path, where MKL and oneDNN pick other code)
agree to rounding, so their tests compare with a bound derived from the arithmetic.
"""

from __future__ import annotations

import numpy as np
import torch

EPS = 2.0 ** -24  # float32's unit roundoff: half an ulp of 1


def _tensor(x) -> torch.Tensor:
    x = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return x.to(torch.float64)


def ulp(x) -> torch.Tensor:
    """The float32 spacing at |x| (at the larger neighbour's side), elementwise, in float64."""
    a = _tensor(x).abs().to(torch.float32)
    return (torch.nextafter(a, torch.tensor(float("inf"))) - a).to(torch.float64)


def largest_difference(got, want) -> tuple[float, tuple[int, ...]]:
    """max |got - want| and its index (NaN where only one side is NaN counts as infinite)."""
    g, w = _tensor(got), _tensor(want)
    diff = (g - w).abs()
    diff = torch.where(g.isnan() & w.isnan(), 0.0, diff.nan_to_num(nan=float("inf")))
    if diff.numel() == 0:
        return 0.0, ()
    flat = int(diff.argmax())
    return float(diff.flatten()[flat]), tuple(int(i) for i in np.unravel_index(flat, diff.shape))


def assert_within(got, want, bound, what: str = "values") -> float:
    """|got - want| <= bound elementwise (bound: a number or an array broadcast to them);
    returns the largest difference.  The failure names how many values are out, the
    largest difference and where, and the value furthest beyond its bound."""
    g, w = _tensor(got), _tensor(want)
    assert g.shape == w.shape, f"{what}: shapes {tuple(g.shape)} and {tuple(w.shape)}"
    b = torch.broadcast_to(_tensor(bound), g.shape)
    diff = (g - w).abs()
    diff = torch.where(g.isnan() & w.isnan(), 0.0, diff.nan_to_num(nan=float("inf")))
    out = ~(diff <= b)
    largest, where = largest_difference(g, w)
    if out.any():
        ratio = torch.where(out, diff / b.clamp_min(1e-300), 0.0)
        worst = np.unravel_index(int(ratio.argmax()), ratio.shape)
        w_idx = tuple(int(i) for i in worst)
        raise AssertionError(
            f"{what}: {int(out.sum())} of {g.numel()} values differ by more than their bound; "
            f"largest difference {largest:.3g} at {where} (got {float(g[where]):.9g}, want "
            f"{float(w[where]):.9g}, bound {float(b[where]):.3g}); furthest beyond its bound: "
            f"{float(diff[w_idx]):.3g} > {float(b[w_idx]):.3g} at {w_idx}")
    return largest
