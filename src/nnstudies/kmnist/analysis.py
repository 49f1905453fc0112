"""What a confusion matrix says, as records for the results file: per-class accuracy and the
most confused (true, predicted) pairs.  Rows are the true class, columns the predicted one."""

from __future__ import annotations

import numpy as np


def per_class(confusion: np.ndarray, names) -> list[dict]:
    """One record per class: its test images, how many were read right, and the share."""
    confusion = np.asarray(confusion)
    totals, correct = confusion.sum(axis=1), np.diag(confusion)
    return [{"class": names[i], "images": int(totals[i]), "correct": int(correct[i]),
             "accuracy": float(correct[i] / totals[i]) if totals[i] else None}
            for i in range(len(names))]


def confused_pairs(confusion: np.ndarray, names, top: int = 3) -> list[dict]:
    """The off-diagonal cells with the ``top`` largest counts, largest first, KEEPING TIES: every
    cell as large as the ``top``-th one is in (so 3 may give 4 pairs), none with count 0.

    ``share``: the part of the true class's test images taken for the predicted class.
    """
    off = np.asarray(confusion).astype(np.int64).copy()
    np.fill_diagonal(off, 0)
    counts = np.sort(off, axis=None)[::-1]
    if not len(counts) or counts[0] == 0:
        return []
    floor = max(int(counts[min(top, len(counts)) - 1]), 1)
    order = np.argsort(-off, axis=None, kind="stable")  # ties in row-major (true, predicted) order
    totals = np.asarray(confusion).sum(axis=1)
    pairs = []
    for flat in order:
        i, j = np.unravel_index(flat, off.shape)
        if off[i, j] < floor:
            break
        pairs.append({"true": names[i], "predicted": names[j], "count": int(off[i, j]),
                      "share": float(off[i, j] / totals[i])})
    return pairs


def mean_image_likeness(images: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """Correlation of the classes' mean images (classes x classes): how much ink two
    characters share on average, the visual reason a net may take one for the other."""
    means = np.stack([images[labels == c].reshape(-1, images[0].size).mean(axis=0)
                      for c in range(classes)])
    likeness = np.corrcoef(means)
    return (likeness + likeness.T) / 2  # exactly symmetric (corrcoef may differ in the last bit)


def likeness_summary(likeness: np.ndarray, pairs: list[dict], names) -> dict:
    """Each confused pair's likeness, and the median and range over all class pairs."""
    index = {name: i for i, name in enumerate(names)}
    for pair in pairs:
        pair["likeness"] = float(likeness[index[pair["true"]], index[pair["predicted"]]])
    upper = likeness[np.triu_indices(len(names), k=1)]
    ranked = np.sort(upper)[::-1]
    for pair in pairs:  # 1 = the most alike of all class pairs
        pair["likeness_rank"] = int(np.searchsorted(-ranked, -pair["likeness"], side="left")) + 1
    return {"median": float(np.median(upper)), "min": float(upper.min()), "max": float(upper.max()),
            "class_pairs": int(len(upper))}
