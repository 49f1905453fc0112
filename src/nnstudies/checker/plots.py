"""The course's region maps: each hidden unit and the output over a 300 x 300 grid on
[-1.5, 1.5), thresholded at 0.5, in Wistia, with the nine points coloured by target."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from nnstudies.checker.model import StackedMLP

GRID = torch.arange(-1.5, 1.5, 0.01)  # 300 values, as check_main.py
LINE_COLOURS = ["tab:blue", "tab:green", "tab:purple", "black", "tab:cyan", "tab:brown"]  # not on Wistia


def _points(ax, x, t):
    # brg_r with vmin -2, vmax 1: target 1 blue, target 0 crimson (the course's colours).
    ax.scatter(x[:, 0], x[:, 1], c=t[:, 0], cmap="brg_r", vmin=-2, vmax=1)
    ax.set_xlim(float(GRID[0]), float(GRID[-1]))
    ax.set_ylim(float(GRID[0]), float(GRID[-1]))
    ax.set_xlabel("x", fontsize=9)
    ax.set_ylabel("y", fontsize=9)


def _key(fig, what: str) -> None:
    """The colour key, once per figure: what the shading and the point colours mean."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    cmap = plt.get_cmap("Wistia")
    fig.legend(handles=[Patch(color=cmap(1.0), label=f"{what} > 0.5"),
                        Patch(color=cmap(0.0), label=f"{what} < 0.5"),
                        Line2D([], [], ls="", marker="o", color="blue", label="target 1"),
                        Line2D([], [], ls="", marker="o", color="crimson", label="target 0")],
               loc="lower center", ncol=4, fontsize=7, frameon=False)


def _line(ax, w, b, label, color):
    """Draw w . (x, y) + b = 0 across the grid."""
    (wx, wy), lo, hi = w, float(GRID[0]), float(GRID[-1])
    s = torch.linspace(lo, hi, 2)
    style = dict(ls="--", lw=1.5, color=color, label=label)
    if abs(wy) >= abs(wx) and wy != 0:
        ax.plot(s, -(wx * s + b) / wy, **style)
    elif wx != 0:
        ax.plot(-(wy * s + b) / wx, s, **style)


@torch.no_grad()
def region_maps(net: StackedMLP, x, t, lines: list[str] | None = None, hidden: bool = True,
                title: str = "output"):
    """Yield (name, figure): "hidden", every hidden unit's map on one grid (unless not
    ``hidden``), then "out", the output's map.  The names carry no param value, so another
    ``hid`` rewrites the same files and leaves none of an earlier width behind.  One figure
    at a time: a caller that saves and closes each keeps one open.

    With ``lines`` (one equation per hidden unit), each unit's dividing line is drawn and
    its equation written; the output map shows all of them.
    """
    gx, gy = torch.meshgrid(GRID, GRID, indexing="xy")  # x varies fastest, as the course
    out = net(torch.stack([gx.reshape(-1), gy.reshape(-1)], 1))
    w, b, _, _ = net.weights()

    def draw(ax, values, title, units):
        ax.pcolormesh(GRID, GRID, (values >= 0.5).float().reshape(len(GRID), len(GRID)),
                      cmap="Wistia", shading="auto", vmin=0, vmax=1)
        for i in units if lines else ():
            _line(ax, w[i].tolist(), float(b[i]), f"h{i}: {lines[i]}", LINE_COLOURS[i % len(LINE_COLOURS)])
        _points(ax, x, t)
        ax.set_title(title, fontsize=10)

    if hidden:
        cols = math.ceil(math.sqrt(net.hid))  # near square: 4 units 2 x 2, 6 units 3 x 2
        rows = math.ceil(net.hid / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
        for i, ax in enumerate(axes.flat):
            if i < net.hid:
                draw(ax, out.hidden[0, :, i], f"hidden unit {i}" + (f": {lines[i]}" if lines else ""), [i])
            else:
                ax.axis("off")
        fig.suptitle("each hidden unit (> 0.5 shaded)")
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        _key(fig, "unit")
        yield "hidden", fig
    fig, ax = plt.subplots(figsize=(5, 6.0) if lines else (5, 5.4))
    draw(ax, out.output[0, :, 0], title, range(net.hid))
    if lines:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize=7)
        fig.subplots_adjust(bottom=0.25)
    else:
        fig.subplots_adjust(bottom=0.16)
    _key(fig, "output")
    yield "out", fig


def data_figure(x, t):
    """The nine points alone (the data plot)."""
    fig, ax = plt.subplots(figsize=(5, 5))
    _points(ax, x, t)
    ax.set_title("check: target 1 (blue) where x + y is even")
    return fig


def history_figure(epochs, loss, accuracy, title: str):
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(6, 5), sharex=True)
    a1.plot(epochs, loss)
    a1.set_ylabel("BCE loss")
    a1.set_yscale("log")
    a2.plot(epochs, accuracy)
    a2.set_ylabel("accuracy (%)")
    a2.set_xlabel("epoch")
    a1.set_title(title)
    return fig


def lines_figure(lines: list[dict], x, t, title: str):
    """Every hidden unit's dividing line (records of analysis.unit_lines) over the nine points,
    the side where the unit is active marked by an arrow along its weight vector."""
    fig, ax = plt.subplots(figsize=(5.5, 6.2))
    for line in lines:
        colour = LINE_COLOURS[line["unit"] % len(LINE_COLOURS)]
        _line(ax, line["w"], line["b"], f"h{line['unit']}: {line['equation']}", colour)
        w = torch.tensor(line["w"])
        norm = float(w.norm())
        if norm > 0:  # from the line's point nearest the origin, towards the active side
            foot = -line["b"] * w / norm ** 2
            if float(foot.abs().max()) < 1.4:
                ax.annotate("", xy=(foot + 0.25 * w / norm).tolist(), xytext=foot.tolist(),
                            arrowprops=dict(arrowstyle="->", color=colour))
    _points(ax, x, t)
    ax.set_aspect("equal")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.07), ncol=2, fontsize=7)
    fig.subplots_adjust(bottom=0.25)
    ax.set_title(title)
    return fig


def scale_figure(sweeps: dict[str, list[dict]], marks: dict[str, float]):
    """Smallest output margin and points right against the scale k (log axis), one curve per
    design; vertical lines at ``marks`` (label -> k)."""
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(6, 5.5), sharex=True)
    for label, rows in sweeps.items():
        k = [r["scale"] for r in rows]
        a1.plot(k, [r["output_margin"] for r in rows], label=label)
        a2.plot(k, [r["correct"] for r in rows], label=label)
    a1.axhline(0, color="grey", lw=0.8)
    for ax in (a1, a2):
        for i, (label, k) in enumerate(marks.items()):
            ax.axvline(k, ls=":", color=LINE_COLOURS[i % len(LINE_COLOURS)],
                       label=label if ax is a1 else None)
    a1.set_xscale("log")
    a1.set_yscale("symlog", linthresh=0.1)
    a1.set_ylabel("smallest output margin")
    a2.set_ylabel("points right (of 9)")
    a2.set_xlabel("scale k (every weight and bias times k), sigmoid")
    a1.legend(fontsize=7)
    a1.set_title("The hand design under the sigmoid, rescaled")
    return fig
