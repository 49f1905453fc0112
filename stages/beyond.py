"""Stage beyond: does each counter net count past the n it was trained on?  Probes n = 1 ..
seq.beyond.probe_max_n through every restart of train_seq's SRNs (anbn, anbncn) and of the
seq.beyond nets, at their last epoch (nnstudies.seq.beyond).

Reads: tracking, seq.grammar.max_n, seq.anbn.epochs, seq.anbncn.epochs, seq.beyond,
seq.train.threads and cpu_path, models/seq_<net>/.  Writes: metrics/ and results/beyond.json,
plots/beyond/<net>.png.
"""

from nnstudies import layout, stage
from nnstudies.errors import UserError

PARAMS = ["tracking", "seq.grammar.max_n", "seq.anbn.epochs", "seq.anbncn.epochs", "seq.beyond",
          "seq.train.threads", "seq.train.cpu_path"]
TRAINED = ("anbn", "anbncn")  # train_seq's counter tasks: an SRN each, on seq.grammar.max_n


def produce(p, ctx):
    from nnstudies.seq import beyond, checkpoints  # after the stage pinned its CPU path

    s = p["seq"]
    specs = {task: {"language": task, "max_n": s["grammar"]["max_n"],
                    "epochs": s[task]["epochs"]} for task in TRAINED}
    specs.update({name: s["beyond"][name] for name in beyond.NETS})
    nets = []
    for name, spec in specs.items():
        path = ctx.path(layout.seq_models(name)) / f"epoch_{spec['epochs']}.pt"
        if not path.exists():
            stage_name = f"train_seq@{name}" if name in TRAINED else f"train_beyond@{name}"
            raise UserError(f"{path}: no checkpoint of the last epoch; run dvc repro {stage_name}")
        net, kept, info = checkpoints.load_all(path)
        nets.append(beyond.Net(name, spec["language"], info["model"], spec["max_n"],
                               spec["epochs"], net, kept))
    return beyond.study(nets, s["beyond"]["probe_max_n"])


if __name__ == "__main__":
    stage.main("beyond", "seq", PARAMS, produce, cpu_group="seq.train")
