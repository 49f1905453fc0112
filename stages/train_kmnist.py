"""Stage train_kmnist@<net>: train one KMNIST classifier (lin, full or conv) as the course does.

Reads: tracking, kmnist.train, kmnist.<net>, data/kmnist.  Writes: models/kmnist_<net>.pt,
metrics/ and results/train_kmnist_<net>.json, logs/train_kmnist_<net>/train.log (the course
console log), and under plots/train_kmnist_<net>/: history.csv, confusion.csv (per test image),
confusion_matrix.csv, confusion.png, confused_pairs.png.
"""

from nnstudies import layout, stage
from nnstudies.kmnist import train

PARAMS = ["tracking", "kmnist.train", "kmnist.{item}"]


def produce(p, ctx):
    settings = p["kmnist"]["train"]
    return train.stage(ctx.item, settings, p["kmnist"][ctx.item], ctx.path(layout.KMNIST_DATA),
                       layout.kmnist_model(ctx.item), log_metrics=ctx.log_metrics,
                       progress=ctx.progress(settings["epochs"]))


if __name__ == "__main__":
    stage.main("train_kmnist", "kmnist", PARAMS, produce, items=tuple(train.TITLES),
               cpu_group="kmnist.train")
