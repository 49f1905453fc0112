"""Stage compare_kmnist: the three KMNIST nets on the same test images, with their
uncertainty: Wilson intervals, McNemar's exact test per pair of nets and, per class, for each
step up (Holm-corrected) (nnstudies.kmnist.comparison).

Reads: tracking, results/train_kmnist_<net>.json (class names, title) and
plots/train_kmnist_<net>/confusion.csv (each test image's true and predicted class).
Writes: metrics/ and results/compare_kmnist.json, plots/compare_kmnist/accuracy.png.
"""

import csv

import numpy as np

from nnstudies import layout, stage
from nnstudies.errors import UserError
from nnstudies.report import inputs

PARAMS = ["tracking"]
NETS = ("lin", "full", "conv", "wide")


def produce(p, ctx):
    from nnstudies.kmnist import comparison

    scored, classes = [], None
    for net in NETS:
        trained = inputs.read_json(ctx.path(layout.results(f"train_kmnist@{net}")))
        classes = classes or trained["classes"]
        index = {name: i for i, name in enumerate(classes)}
        path = ctx.path(layout.plots(f"train_kmnist@{net}")) / "confusion.csv"
        try:
            with open(path, newline="") as f:
                rows = [(index[r["actual"]], index[r["predicted"]]) for r in csv.DictReader(f)]
        except (OSError, KeyError, csv.Error) as exc:
            raise UserError(f"{path}: unreadable or not the classes of {layout.results(f'train_kmnist@{net}')} "
                            f"({exc!r}); rerun dvc repro train_kmnist@{net}") from None
        if not rows:
            raise UserError(f"{path}: holds no test image; rerun dvc repro train_kmnist@{net}")
        actual, predicted = np.array(rows, dtype=int).T
        scored.append(comparison.Scored(net, trained["title"], actual, predicted))
    return comparison.study(scored, classes)


if __name__ == "__main__":
    stage.main("compare_kmnist", "kmnist", PARAMS, produce)
