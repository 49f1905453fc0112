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
    return task.run(ctx.item, p["seq"]["train"], t, ctx.path(layout.seq_data(ctx.item)),
                    ctx.path(layout.seq_models(ctx.item)), log_metrics=ctx.log_metrics,
                    progress=ctx.progress(t["epochs"]))


if __name__ == "__main__":
    # Tiny nets: one thread.  Measured on a 2-core machine shared with other jobs (anbncn,
    # 16 restarts): the compiled kernel took 2.7 s for 20,000 epochs at 1 torch thread and
    # 10.5 s at 2, the fused one 11.9 s and 95 s for 2,000; with a busy process beside it
    # 5.8 vs 11.5 s and 35 vs 207 s.  A second thread has only its synchronisation to add.
    stage.main("train_seq", "seq", PARAMS, produce, items=languages.LANGUAGES, threads=1)
