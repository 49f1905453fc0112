"""Figures: the classes (fetch), a trained classifier's confusion heatmap and its most confused
pairs, and the three nets compared with their intervals (compare_kmnist)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


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


def confused_pairs_figure(images, actual, predicted, pairs: list[dict], class_names, title: str,
                          per_side: int = 4):
    """One row per confused pair (true a taken for b): test images of a that the net read as b,
    beside test images of b that it read right (what it took them for); then the mean test
    image of a, of b, and their difference (red: ink of a only, blue: ink of b only; the
    strokes the two share cancel to white)."""
    index = {name: i for i, name in enumerate(class_names)}
    rows = max(len(pairs), 1)
    cols = 2 * per_side + 3
    fig, axes = plt.subplots(rows, cols, figsize=(0.95 * cols, 1.2 * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    flat = images.reshape(len(images), 28, 28)
    for r, pair in enumerate(pairs):
        a, b = index[pair["true"]], index[pair["predicted"]]
        misread = np.flatnonzero((actual == a) & (predicted == b))[:per_side]
        other = np.flatnonzero((actual == b) & (predicted == b))[:per_side]
        for c, i in enumerate(misread):
            axes[r, c].imshow(flat[i], cmap="gray_r")
        for c, i in enumerate(other):
            axes[r, per_side + c].imshow(flat[i], cmap="gray_r")
        mean_a, mean_b = flat[actual == a].mean(axis=0), flat[actual == b].mean(axis=0)
        axes[r, 2 * per_side].imshow(mean_a, cmap="gray_r")
        axes[r, 2 * per_side + 1].imshow(mean_b, cmap="gray_r")
        diff = mean_a - mean_b
        limit = float(np.abs(diff).max()) or 1.0
        axes[r, 2 * per_side + 2].imshow(diff, cmap="bwr", vmin=-limit, vmax=limit)
        labels = {0: f"{pair['true']} read as {pair['predicted']}", per_side: f"{pair['predicted']} (right)",
                  2 * per_side: f"mean {pair['true']}", 2 * per_side + 1: f"mean {pair['predicted']}",
                  2 * per_side + 2: f"{pair['true']} - {pair['predicted']}"}
        for c, text in labels.items():
            axes[r, c].set_title(text, fontsize=7, loc="left")
        axes[r, 0].text(-4, 14, f"{pair['count']}x", ha="right", va="center", fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def class_examples(images, labels, class_names, title: str, per_class: int = 10):
    """One row per class: its first ``per_class`` images, the class name on the left."""
    rows = len(class_names)
    fig, axes = plt.subplots(rows, per_class, figsize=(0.8 * per_class, 0.8 * rows + 0.5),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for row, name in enumerate(class_names):
        for col, index in enumerate(np.flatnonzero(labels == row)[:per_class]):
            axes[row, col].imshow(images[index], cmap="gray_r")
        axes[row, 0].text(-4, 14, name, ha="right", va="center", fontsize=10)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def comparison_figure(accuracy: dict, steps: list[dict], classes: list[str], alpha: float):
    """Left: each net's test accuracy with its 95% interval.  Right: the per-class change of
    each step up, the changes Holm's correction supports filled, the others hollow."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), width_ratios=(1, 2.4))
    for x, a in enumerate(accuracy.values()):
        low, high = a["interval"]
        left.errorbar([x], [100 * a["accuracy"]], yerr=[[100 * (a["accuracy"] - low)],
                                                        [100 * (high - a["accuracy"])]],
                      fmt="o", capsize=4, color="C0")
    left.set_xticks(range(len(accuracy)), [a["title"] for a in accuracy.values()])
    left.set_ylabel("test accuracy, % (95% Wilson interval)")
    left.set_title("accuracy on the same test images")
    positions = np.arange(len(classes))
    for k, step in enumerate(steps):
        change = [100 * (r["to_accuracy"] - r["from_accuracy"]) for r in step["classes"]]
        filled = [r["supported"] for r in step["classes"]]
        x = positions + (k - (len(steps) - 1) / 2) * 0.3
        label = f"{accuracy[step['from']]['title']} -> {accuracy[step['to']]['title']}"
        right.scatter(x, change, s=36, label=label, color=f"C{k + 1}",
                      facecolors=[f"C{k + 1}" if f else "none" for f in filled])
    right.axhline(0, color="grey", lw=0.8)
    right.set_xticks(positions, classes)
    right.set_xlabel("true class")
    right.set_ylabel("change in class accuracy, points")
    right.set_title(f"per class (filled: Holm-adjusted McNemar p < {alpha})")
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig
