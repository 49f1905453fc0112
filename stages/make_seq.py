"""Stage make_seq: one language's train, validation and test sequences, from a seed.

Reads: tracking, seq.grammar.  Writes: data/seq/<lang>.npz, metrics/ and results/make_seq_<lang>.json.
"""

from nnstudies import atomic, layout, stage
from nnstudies.seq import languages

PARAMS = ["tracking", "seq.grammar"]


def produce(p, ctx):
    grammar, out = languages.make(ctx.item, p["seq"]["grammar"])
    # The data file is neither a figure nor a torch object: written here, once generated.
    with atomic.atomic_path(ctx.path(layout.seq_data(ctx.item))) as tmp, open(tmp, "wb") as f:
        languages.save(grammar, f)
    return out


if __name__ == "__main__":
    stage.main("make_seq", "seq", PARAMS, produce, items=languages.LANGUAGES)
