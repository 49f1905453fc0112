"""Stage train_checker: train the 2 -> hid -> 1 checkerboard MLP, R restarts side by side.

Reads: hid, checker.train, tracking.  Writes: metrics/train_checker.json (what is gated),
results/train_checker.json (settings, restarts table, final weights, dividing lines,
activations), plots/train_checker/ (region maps, lines.png, history.csv/png), logs/train_checker/train.log,
models/checker.pt.
"""

from nnstudies import stage

PARAMS = ["hid", "checker.train", "tracking"]


def produce(p, ctx):
    # Imported here, after the stage pinned its CPU path: the study's modules compute at
    # import (checker.plots' grid), and torch fixes its kernels at the first computation.
    from nnstudies.checker import study

    s = p["checker"]["train"]
    return study.trained(p["hid"], s, ctx.log_metrics, ctx.progress(s["max_epochs"]))


if __name__ == "__main__":
    stage.main("train_checker", "checker", PARAMS, produce, cpu_group="checker.train")
