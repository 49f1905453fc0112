"""What a net does on the nine points: accuracy, margins, activations, dividing lines, the
hidden code of each point, and how the sigmoid net's margins grow with the weight scale."""

from __future__ import annotations

import numpy as np
import torch

from nnstudies.checker.hand import hand_net
from nnstudies.checker.model import StackedMLP


@torch.no_grad()
def evaluate(net: StackedMLP, x: torch.Tensor, t: torch.Tensor) -> dict:
    """Accuracy and margins of a one-net model on the points.

    output_margin: the smallest signed output pre-activation, (2t - 1) * (w2 . h + b2), over the
    points: > 0 is a robust decision, 0 means a point is right only because the step (or a
    rounded sigmoid) gives 1 at exactly 0, < 0 means a point is wrong.
    hidden_margin: the smallest |w1 . x + b1| over points and hidden units: how close a point
    comes to a dividing line (0: it sits on one).
    """
    out = net(x)
    correct = int(((out.output[0] >= 0.5).float() == t).sum())
    sign = 2 * t - 1
    return {
        "correct": correct,
        "accuracy": correct / len(x),
        "output_margin": float((sign * out.out_in[0]).min()),
        "hidden_margin": float(out.hid_in[0].abs().min()),
    }


@torch.no_grad()
def activations(net: StackedMLP, x: torch.Tensor, t: torch.Tensor) -> list[dict]:
    """Per point: x, y, target, every hidden unit's activation, the output pre-activation and
    the output (one net)."""
    out = net(x)
    return [{"x": float(x[n, 0]), "y": float(x[n, 1]), "target": int(t[n]),
             "hidden": out.hidden[0, n].tolist(), "output_in": float(out.out_in[0, n, 0]),
             "output": float(out.output[0, n, 0])} for n in range(len(x))]


def _term(coef: float, name: str, first: bool) -> str:
    sign = "-" if coef < 0 else ("" if first else "+")
    size = abs(coef)
    text = name if size == 1 else f"{size:.4g}{name}"
    return f"{sign}{text}" if first else f" {sign} {text}"


def line_equation(w: list[float], b: float) -> str:
    """'x + y - 1.5 = 0' for weights (1, 1) and bias -1.5 (zero terms left out)."""
    terms = [(c, n) for c, n in zip(w, ("x", "y")) if c != 0]
    text = "".join(_term(c, n, i == 0) for i, (c, n) in enumerate(terms))
    if b != 0 or not text:
        text += f"{b:.4g}" if not text else f" {'-' if b < 0 else '+'} {abs(b):.4g}"
    return f"{text} = 0"


@torch.no_grad()
def unit_lines(net: StackedMLP, x: torch.Tensor, t: torch.Tensor) -> list[dict]:
    """Hidden unit i's dividing line w_i . (x, y) + b_i = 0 and how it splits the nine points.

    ``active``: the points with w . p + b > 0 (the unit's output above 0.5), ``inactive``: < 0,
    ``on_line``: exactly 0; each point as [x, y, target].
    """
    w, b, _, _ = net.weights()
    pre = x @ w.T + b
    points = [[float(p[0]), float(p[1]), int(c)] for p, c in zip(x, t[:, 0])]
    lines = []
    for i in range(net.hid):
        side = torch.sign(pre[:, i]).tolist()
        lines.append({
            "unit": i, "w": w[i].tolist(), "b": float(b[i]),
            "equation": line_equation(w[i].tolist(), float(b[i])),
            "active": [p for p, s in zip(points, side) if s > 0],
            "inactive": [p for p, s in zip(points, side) if s < 0],
            "on_line": [p for p, s in zip(points, side) if s == 0],
        })
    return lines


@torch.no_grad()
def hidden_codes(net: StackedMLP, x: torch.Tensor, t: torch.Tensor) -> list[dict]:
    """Per point: which hidden units are on (activation >= 0.5), how many, and the output."""
    out = net(x)
    codes = (out.hidden[0] >= 0.5).int()
    return [{"x": float(x[n, 0]), "y": float(x[n, 1]), "target": int(t[n]),
             "code": codes[n].tolist(), "active": int(codes[n].sum()),
             "output": int(out.output[0, n, 0] >= 0.5)} for n in range(len(x))]


def scale_sweep(design: dict, x: torch.Tensor, t: torch.Tensor, scales) -> list[dict]:
    """The design under the sigmoid with every weight and bias times k, for each k in scales."""
    return [dict(evaluate(hand_net(design, "sig", float(k)), x, t), scale=float(k)) for k in scales]


def smallest_scale(design: dict, x: torch.Tensor, t: torch.Tensor, scales,
                   steps: int = 40) -> float | None:
    """The smallest k of ``scales`` (increasing) from which every larger k of the grid classifies
    all nine points, refined by bisection against the grid point below it; None if k = max
    fails."""
    def ok(k: float) -> bool:
        return evaluate(hand_net(design, "sig", k), x, t)["correct"] == len(x)

    scales = [float(k) for k in scales]
    good = [ok(k) for k in scales]
    if not good[-1]:
        return None
    first = len(good) - next(i for i, g in enumerate(reversed(good)) if not g) \
        if not all(good) else 0
    if first == 0:
        return scales[0]
    lo, hi = scales[first - 1], scales[first]
    for _ in range(steps):  # lo fails, hi works
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def geometric_scales(lo: float, hi: float, per_decade: int) -> list[float]:
    """k from lo to hi, ``per_decade`` values per factor of 10."""
    n = int(round(np.log10(hi / lo) * per_decade)) + 1
    return np.geomspace(lo, hi, n).tolist()
