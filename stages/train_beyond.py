"""Stage train_beyond@<net>: a counter net of seq.beyond, trained as train_seq trains its
tasks (seq.train's optimiser, restarts and seed; the restart best on validation kept), on
seq.grammar's sequences with the net's language and max_n (generated here: at seq.grammar's
max_n they are the sequences of data/seq/<language>.npz).

Reads: tracking, seq.grammar, seq.train, seq.beyond.<net>.  Writes: models/seq_<net>/,
plots/train_beyond_<net>/{curve.csv, restarts.csv}, logs/train_beyond_<net>/train.log,
metrics/ and results/train_beyond_<net>.json.
"""

from nnstudies import layout, params, stage
from nnstudies.seq import languages, task

PARAMS = ["tracking", "seq.grammar", "seq.train", "seq.beyond.{item}"]


def produce(p, ctx):
    net = p["seq"]["beyond"][ctx.item]
    # seq.grammar's sequences with the net's own max_n: the same as make_seq's at the same max_n
    grammar, _ = languages.make(net["language"], dict(p["seq"]["grammar"], max_n=net["max_n"]))
    return task.run(ctx.item, p["seq"]["train"], net, grammar,
                    ctx.path(layout.seq_models(ctx.item)), log_metrics=ctx.log_metrics,
                    progress=ctx.progress(net["epochs"]), group=f"seq.beyond.{ctx.item}")


if __name__ == "__main__":
    stage.main("train_beyond", "seq", PARAMS, produce, items=params.BEYOND_NETS, cpu_group="seq.train")
