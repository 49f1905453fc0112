"""Figures of a trained classifier: the confusion heatmap and the most confused examples."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def confusion_heatmap(confusion: np.ndarray, class_names, title: str):
    """Rows = true class, columns = predicted class; every cell annotated with its count."""
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    image = ax.imshow(confusion, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names)
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    threshold = confusion.max() / 2
    for (row, col), count in np.ndenumerate(confusion):
        ax.text(col, row, f"{int(count)}", ha="center", va="center", fontsize=7,
                color="white" if count > threshold else "black")
    fig.tight_layout()
    return fig


def most_confused_pairs(confusion: np.ndarray, top: int):
    """The ``top`` (true, predicted, count) off-diagonal cells, largest first (ties by index)."""
    off = confusion.astype(np.int64).copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:top]
    return [(int(i), int(j), int(off[i, j])) for i, j in zip(*np.unravel_index(order, off.shape))
            if off[i, j] > 0]


def most_confused_grid(images, actual, predicted, confusion, class_names, title: str,
                       pairs: int = 6, per_pair: int = 8):
    """One row per most-confused (true -> predicted) pair, showing its first test images."""
    rows = most_confused_pairs(confusion, pairs)
    fig, axes = plt.subplots(max(len(rows), 1), per_pair, figsize=(1.1 * per_pair, 1.25 * max(len(rows), 1)),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, (true, pred, count) in enumerate(rows):
        picks = np.flatnonzero((actual == true) & (predicted == pred))[:per_pair]
        for c, index in enumerate(picks):
            axes[r, c].imshow(images[index].reshape(28, 28), cmap="gray_r")
        axes[r, 0].text(-4, 14, f"{class_names[true]} -> {class_names[pred]}\n({count})",
                        ha="right", va="center", fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
