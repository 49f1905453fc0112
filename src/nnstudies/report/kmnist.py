"""Study 1 of the report: the three KMNIST classifiers, from their stage outputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from nnstudies.report.document import Code, Figure, Figures, Heading, Para, Table
from nnstudies.report.targets import Targets, verdict

NETS = {"lin": "NetLin (linear)", "full": "NetFull (one tanh hidden layer)",
        "conv": "NetConv (two conv layers)"}


def last_epoch_log(log_text: str) -> str:
    """The last epoch's block of the course log: its Train Epoch lines to the Test set line."""
    lines = log_text.rstrip("\n").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Train Epoch:") and " [0/" in line]
    return "\n".join(lines[starts[-1]:] if starts else lines[-30:])


def read_confusion(path: Path) -> tuple[list[str], list[list[int]]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    classes = rows[0][1:]
    return classes, [[int(float(v)) for v in row[1:]] for row in rows[1:]]


def most_confused(classes: list[str], matrix: list[list[int]], top: int = 3) -> list[tuple]:
    """(true, predicted, count) for the largest off-diagonal entries."""
    pairs = [(classes[i], classes[j], matrix[i][j]) for i in range(len(classes))
             for j in range(len(classes)) if i != j and matrix[i][j] > 0]
    return sorted(pairs, key=lambda p: -p[2])[:top]


def section(metrics_dir: Path, plots_dir: Path, targets: Targets) -> list:
    """``targets``: metric file -> metric -> (bound text, met) from the course gates."""
    blocks: list = [Heading(2, "Part 1: Japanese character recognition (KMNIST)")]
    summary_rows, confused_rows = [], []
    for net, title in NETS.items():
        metrics = json.loads((metrics_dir / f"train_kmnist_{net}.json").read_text())
        plots = plots_dir / f"train_kmnist_{net}"
        classes, matrix = read_confusion(plots / "confusion_matrix.csv")
        correct = sum(matrix[i][i] for i in range(len(matrix)))
        total = sum(map(sum, matrix))
        met = verdict(targets, f"metrics/train_kmnist_{net}.json", "test_accuracy")
        blocks += [
            Heading(3, title),
            Para(f"After {metrics['epochs']} epochs on {metrics['train_images']:,} training images: "
                 f"**test accuracy {100 * metrics['test_accuracy']:.2f}%** ({correct}/{total}), "
                 f"average test loss {metrics['test_loss']:.4f}. Course target: {met}."),
            Para("The last epoch's console output, in the course format:"),
            Code(last_epoch_log((plots / "train.log").read_text())),
            Table(["true \\ predicted", *classes], [[c, *row] for c, row in zip(classes, matrix)],
                  caption="Confusion matrix of the last epoch: rows are the true class, columns "
                          "the predicted class."),
            Figure(plots / "confusion.png", f"{title}: confusion matrix"),
            Para(f"Independent parameters: **{metrics['parameters']:,}** counted from the model; "
                 f"by formula `{metrics['formula']}` = {metrics['parameters_formula']:,}."),
        ]
        summary_rows.append([title, f"{100 * metrics['test_accuracy']:.2f}%",
                             f"{metrics['test_loss']:.4f}", f"{metrics['parameters']:,}", met])
        pairs = most_confused(classes, matrix)
        confused_rows.append([title, "; ".join(f"{t} taken for {p} ({n}x)" for t, p, n in pairs)])
    blocks += [
        Heading(3, "Comparison of the three nets"),
        Table(["net", "test accuracy", "test loss", "parameters", "course target"],
              summary_rows),
        Heading(3, "Most confused characters"),
        Table(["net", "most frequent confusions (true taken for predicted)"], confused_rows),
        Figures([Figure(plots_dir / f"train_kmnist_{net}" / "most_confused.png",
                        f"{NETS[net]}: the most confused pairs, with test images") for net in NETS]),
    ]
    return blocks

