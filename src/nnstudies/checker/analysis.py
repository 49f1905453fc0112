"""What a net does on the nine points: accuracy, margins, the activation table, dividing lines."""

from __future__ import annotations

import torch

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
def activation_table(net: StackedMLP, x: torch.Tensor, t: torch.Tensor):
    """Header and rows: x, y, target, every hidden unit's activation, the output (one net)."""
    out = net(x)
    header = ["x", "y", "target"] + [f"h{i}" for i in range(net.hid)] + ["output"]
    rows = [[*map(float, x[n]), int(t[n]), *map(float, out.hidden[0, n]), float(out.output[0, n])]
            for n in range(len(x))]
    return header, rows


def _term(coef: float, name: str, first: bool) -> str:
    sign = "-" if coef < 0 else ("" if first else "+")
    size = abs(coef)
    text = name if size == 1 else f"{size:g}{name}"
    return f"{sign}{text}" if first else f" {sign} {text}"


def line_equation(w: list[float], b: float) -> str:
    """'x + y - 1.5 = 0' for weights (1, 1) and bias -1.5 (zero terms left out)."""
    terms = [(c, n) for c, n in zip(w, ("x", "y")) if c != 0]
    text = "".join(_term(c, n, i == 0) for i, (c, n) in enumerate(terms))
    if b != 0 or not text:
        text += f"{b:g}" if not text else f" {'-' if b < 0 else '+'} {abs(b):g}"
    return f"{text} = 0"


def dividing_lines(net: StackedMLP) -> list[str]:
    """Hidden unit i's dividing line w_i . (x, y) + b_i = 0, one equation per unit."""
    w, b, _, _ = net.weights()
    return [line_equation(w[i].tolist(), float(b[i])) for i in range(net.hid)]


def markdown_table(header, rows, digits: int = 4) -> str:
    def cell(v):
        if isinstance(v, float) and not v.is_integer():
            return f"{v:.{digits}f}"
        return f"{v:g}"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
