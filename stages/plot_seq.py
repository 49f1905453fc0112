"""Stage plot_seq: hidden-unit figures and measured dynamics of one task's trained net.

Reads: seq.plot.num_sequences, seq.plot.epoch.<task>, the checkpoint of that epoch,
data/grammar/<task>.npz.  Writes: plots/plot_seq_<task>/*.png, metrics/plot_seq_<task>.json.
"""

from pathlib import Path

from nnstudies import atomic, cli, params, tracking
from nnstudies.errors import UserError
from nnstudies.seq import checkpoints, languages, plots, stage_args


def main():
    args = stage_args.parse(__doc__)
    p = params.load(["tracking", "seq.plot.num_sequences", f"seq.plot.epoch.{args.task}"])
    stage_args.one_thread()  # tiny nets: one thread (measured there)
    epoch = p["seq"]["plot"]["epoch"][args.task]
    path = Path(args.models) / f"epoch_{epoch}.pt"
    if not path.exists():
        have = sorted(int(f.stem.split("_")[1]) for f in Path(args.models).glob("epoch_*.pt"))
        raise UserError(f"seq.plot.epoch.{args.task} = {epoch}: no checkpoint {path} "
                        f"(available epochs: {', '.join(map(str, have)) or 'none'})")
    net, info = checkpoints.load_best(path)
    grammar = languages.load(args.data)
    with tracking.start("seq", f"plot_seq@{args.task}", p) as run:
        name = f"{args.task} {info['epoch']} epochs, restart {info['best_restart']}"
        runs = plots.collect(net, grammar, len(grammar.eval))
        metrics = plots.measure(runs, grammar)
        for fig_name, fig in plots.figures(net, runs, grammar, p["seq"]["plot"]["num_sequences"],
                                           name):
            target = Path(args.plots) / f"{fig_name}.png"
            atomic.save_figure(fig, target, dpi=100)
            run.log_artifact(target, "figures")
        metrics = {"epoch": info["epoch"], "restart": info["best_restart"], **metrics}
        atomic.write_json(args.metrics, metrics)
        run.log_metrics(params.flatten(metrics))


if __name__ == "__main__":
    cli.run(main)
