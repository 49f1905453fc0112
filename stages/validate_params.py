"""Stage validate_params: check all of params.yaml before any other stage runs.

Every other stage depends on its output, so a bad value stops `dvc repro` / `dvc exp run`
here, before DVC removes any other stage's outputs (DVC deletes a stage's outputs just before
running it): the last good results stay in place.  The output's content never changes, so a
valid edit reruns only the stages whose own params changed.

Reads: all of params.yaml.  Writes: data/params.ok.
"""

import argparse
from pathlib import Path

from nnstudies import atomic, cli, params
from nnstudies.errors import UserError
from nnstudies.kmnist.data import OFFICIAL
from nnstudies.kmnist.sizes import check_memory
from nnstudies.seq.languages import LANGUAGES
from nnstudies.seq.languages import check_memory as check_seq_memory

RESTORE = ("nothing was run or removed; fix params.yaml, or `git checkout params.yaml` for the "
           "committed values")


def check_across_keys(p: dict) -> None:
    """What one value alone cannot tell: sizes that do not fit, data that does not exist."""
    source = p["kmnist"]["source"]
    if source != OFFICIAL and not source.startswith(("http://", "https://")) \
            and not Path(source).is_dir():
        raise UserError(f"params.yaml: kmnist.source = {source!r}: no such directory (allowed: "
                        "'official', a directory or an http(s) URL with the four gz files and MD5SUMS)")
    train = p["kmnist"]["train"]
    for net in ("lin", "full", "conv"):
        sizes = {k: v for k, v in p["kmnist"][net].items() if k not in ("lr", "momentum")}
        check_memory(net, sizes, train["batch_size"], train["test_batch_size"])
    g = p["seq"]["grammar"]
    held_out = g["validation_sequences"] + g["test_sequences"]
    for lang in LANGUAGES:
        check_seq_memory(lang, g["train_sequences"], held_out, g["max_n"], g["reber_min_length"])
    for task, sweep in p["sweep"]["seq"].items():  # sweep_seq makes epochs + 1 sequences
        if task in LANGUAGES:
            try:
                check_seq_memory(task, sweep["epochs"] + 1, g["validation_sequences"] + 1,
                                 g["max_n"], g["reber_min_length"])
            except UserError as exc:
                raise UserError(f"params.yaml: sweep.seq.{task}.epochs = {sweep['epochs']} is too "
                                f"many for the sweep's sequences: {exc}") from None
    available = g["train_sequences"]
    for task in LANGUAGES:  # a train_seq task is its language
        epochs = p["seq"][task]["epochs"]
        if epochs + 1 > available:
            raise UserError(f"params.yaml: seq.{task}.epochs = {epochs} needs {epochs + 1} training "
                            f"sequences, seq.grammar.train_sequences is {available} (raise it)")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="data/params.ok")
    args = parser.parse_args()
    try:
        p = params.load(list(params.SCHEMA))
        check_across_keys(p)
    except UserError as exc:
        raise UserError(f"{exc} ({RESTORE})") from None
    atomic.write_text(args.out, "params.yaml passed the schema of src/nnstudies/params.py\n")


if __name__ == "__main__":
    cli.run(main, removes_outputs=False)
