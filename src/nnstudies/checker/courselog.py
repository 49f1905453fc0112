"""The course's logs (check_main.py's prints), built in one place: the trained net's progress
lines and final weights, the hand-designed net's weights and accuracy."""

from __future__ import annotations


def progress_line(epoch: int, loss: float, correct: int, n_points: int = 9) -> str:
    """The course's progress line, e.g. 'ep:  100 loss: 0.6858 acc: 55.56'."""
    return f"ep:{epoch:5d} loss: {loss:6.4f} acc: {100.0 * correct / n_points:5.2f}"


def train_log(history: list[tuple[int, float, int]], weights, correct: int,
              n_points: int = 9) -> str:
    """train.log: (epoch, loss, points right) lines, then the final weights and accuracy."""
    lines = [progress_line(e, loss, ok, n_points) for e, loss, ok in history]
    lines += ["Final Weights:", *map(repr, weights), f"Final Accuracy:  {100.0 * correct / n_points}"]
    return "\n".join(lines) + "\n"


def hand_log(runs: list[tuple[str, float, list, int]], n_points: int = 9) -> str:
    """hand.log: per (act, scale, weights, points right) the course's --set_weights print."""
    lines = []
    for act, scale, weights, correct in runs:
        lines += [f"--act {act} --hid 4 --set_weights (scale {scale:g})", "Initial Weights:",
                  *map(repr, weights), f"Initial Accuracy:  {100.0 * correct / n_points}"]
    return "\n".join(lines) + "\n"
