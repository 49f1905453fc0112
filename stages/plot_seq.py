"""Stage plot_seq@<task>: what one task's trained net does, measured on the test sequences.

Reads: tracking, seq.plot.num_sequences, seq.plot.epoch.<task>, seq.train.threads and
cpu_path (it evaluates on the training's CPU path), the checkpoint of that epoch
(the restart best on validation), data/seq/<task>.npz.  Writes: metrics/ and
results/plot_seq_<task>.json, plots/plot_seq_<task>/*.png.
"""

from nnstudies import layout, stage
from nnstudies.seq import languages

PARAMS = ["tracking", "seq.plot.num_sequences", "seq.plot.epoch.{item}", "seq.train.threads",
          "seq.train.cpu_path"]


def produce(p, ctx):
    from nnstudies.seq import plots  # after the stage pinned its CPU path (nnstudies.cpu)

    grammar = languages.load(ctx.path(layout.seq_data(ctx.item)))
    return plots.stage(ctx.item, grammar, ctx.path(layout.seq_models(ctx.item)),
                       p["seq"]["plot"]["epoch"][ctx.item], p["seq"]["plot"]["num_sequences"])


if __name__ == "__main__":
    stage.main("plot_seq", "seq", PARAMS, produce, items=languages.LANGUAGES, cpu_group="seq.train")
