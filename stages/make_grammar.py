"""Stage make_grammar: generate one language's train and eval sequences from a seed.

Reads: grammar.  Writes: data/grammar/<lang>.npz, metrics/make_grammar_<lang>.json.
"""

import argparse

import numpy as np

from nnstudies import atomic, cli, params
from nnstudies.seq import languages


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("lang", choices=languages.LANGUAGES)
    parser.add_argument("--out", required=True)
    parser.add_argument("--metrics", required=True)
    args = parser.parse_args()
    g = params.load(["grammar"])["grammar"]
    languages.check_memory(args.lang, g["train_sequences"], g["eval_sequences"], g["max_n"],
                           g["reber_min_length"])
    grammar = languages.generate(args.lang, g["seed"], g["train_sequences"], g["eval_sequences"],
                                 g["max_n"], g["reber_min_length"])
    with atomic.atomic_path(args.out) as tmp, open(tmp, "wb") as f:
        languages.save(grammar, f)
    lengths = np.diff(grammar.train.starts)
    atomic.write_json(args.metrics, {
        "train_sequences": len(grammar.train), "eval_sequences": len(grammar.eval),
        "mean_length": float(lengths.mean()), "max_length": int(lengths.max()),
        "min_length": int(lengths.min()), "max_state": int(grammar.train.states.max())})


if __name__ == "__main__":
    cli.run(main)
