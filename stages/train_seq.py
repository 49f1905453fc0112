"""Stage train_seq: train R restarts of one task's recurrent net side by side; keep the
restart best on the validation split and report it on the test split.

Reads: tracking, seq.train, seq.<task>, data/seq/<task>.npz.  Writes: models/seq_<task>/
(epoch_<k>.pt every checkpoint_every epochs and the last, progress.pt for seq.train.resume),
plots/train_seq_<task>/{curve.csv (the best restart per evaluation), restarts.csv},
logs/train_seq_<task>/train.log,
metrics/ and results/train_seq_<task>.json.
"""

from nnstudies import layout, stage
from nnstudies.seq import languages, task

PARAMS = ["tracking", "seq.train", "seq.{item}"]


def produce(p, ctx):
    t = p["seq"][ctx.item]
    grammar = languages.load(ctx.path(layout.seq_data(ctx.item)))
    return task.run(ctx.item, p["seq"]["train"], t, grammar,
                    ctx.path(layout.seq_models(ctx.item)), log_metrics=ctx.log_metrics,
                    progress=ctx.progress(t["epochs"]))


if __name__ == "__main__":
    stage.main("train_seq", "seq", PARAMS, produce, items=languages.LANGUAGES, cpu_group="seq.train")
