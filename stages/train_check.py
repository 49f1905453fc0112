"""Stage train_check: train the 2 -> hid -> 1 checkerboard MLP, R restarts side by side.

Reads: hid, check, tracking.  Writes: models/check.pt, metrics/train_check.json,
plots/train_check/figures/ (hid_<hid>_<i>.png, out_<hid>.png, init_<hid>.png, check.png,
history.png), plots/train_check/{history.csv, restarts.csv, activations.csv, activations.md,
train.log} (train.log: the course's log for the kept net).
"""

import argparse
import shutil
from pathlib import Path

import torch

from nnstudies import atomic, cli, params, runinfo, tracking
from nnstudies.checker import analysis, data, plots, train
from nnstudies.checker.model import StackedMLP


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="models/check.pt")
    parser.add_argument("--metrics", default="metrics/train_check.json")
    parser.add_argument("--plots", default="plots/train_check")
    args = parser.parse_args()
    p = params.load(["hid", "check", "tracking"])
    cli.torch_threads()
    hid, c = p["hid"], p["check"]
    torch.manual_seed(c["seed"])
    x, t = data.points()
    seeds = train.restart_seeds(c["seed"], c["restarts"])
    model = StackedMLP.random(seeds, hid, c["init"], c["act"])
    starts = [w.detach().clone() for w in model.parameters()]  # to draw the kept net's start

    with tracking.start("check", "train_check", p) as run:
        res = train.train(model, x, t, lr=c["lr"], weight_decay=c["weight_decay"],
                          max_epochs=c["max_epochs"], patience=c["patience"],
                          log_every=c["log_every"])
        k, net = res.kept, res.model.pick(res.kept)
        initial = StackedMLP(*(s[k:k + 1] for s in starts), act=c["act"])
        final = analysis.evaluate(net, x, t)
        log = [train.course_log(e, loss[k], ok[k], len(x)) for e, loss, ok in res.history]
        log += ["Final Weights:", *map(repr, net.weights()),
                f"Final Accuracy:  {100.0 * final['correct'] / len(x)}"]
        n_ok = sum(res.succeeded)
        print(f"kept restart {k} (seed {seeds[k]}): {n_ok}/{len(seeds)} restarts met the rule "
              f"within {res.epochs} epochs")

        for e, loss, ok in res.history:
            run.log_metrics({"loss": loss[k], "accuracy": ok[k] / len(x),
                             "restarts_at_100": sum(o == len(x) for o in ok)}, step=e)
        metrics = {
            "accuracy": final["accuracy"], "correct": final["correct"],
            "loss": res.final_loss[k], "output_margin": final["output_margin"],
            "epochs_to_100": res.first_full[k], "epochs_run": res.epochs,
            "restarts": len(seeds), "restarts_succeeded": n_ok,
            "restarts_reached_100": sum(e is not None for e in res.first_full),
            "kept_restart": k, "kept_seed": seeds[k], "hid": hid, **runinfo.environment(),
        }
        run.log_metrics({m: v for m, v in metrics.items()
                         if isinstance(v, (int, float)) and not isinstance(v, bool)}, step=res.epochs)

        out = Path(args.plots)
        shutil.rmtree(out / "figures", ignore_errors=True)  # no hid_<old>_* maps from another width
        epochs = [e for e, _, _ in res.history]

        def figures():  # one open figure at a time: every map is saved and closed in turn
            yield from plots.region_maps(net, x, t)
            yield "check", plots.data_figure(x, t)
            yield f"init_{hid}", next(plots.region_maps(initial, x, t, hidden=False))[1]
            yield "history", plots.history_figure(
                epochs, [loss[k] for _, loss, _ in res.history],
                [100 * ok[k] / len(x) for _, _, ok in res.history], f"kept restart {k}, hid {hid}")

        for name, fig in figures():
            atomic.save_figure(fig, out / "figures" / f"{name}.png")
        atomic.write_csv(out / "history.csv", ["epoch", "loss", "accuracy", "restarts_at_100"],
                         [(e, loss[k], 100 * ok[k] / len(x), sum(o == len(x) for o in ok))
                          for e, loss, ok in res.history])
        atomic.write_csv(out / "restarts.csv",
                         ["restart", "seed", "succeeded", "first_epoch_at_100", "loss", "correct"],
                         [(r, seeds[r], res.succeeded[r], res.first_full[r] or "",
                           res.final_loss[r], res.final_correct[r]) for r in range(len(seeds))])
        header, rows = analysis.activation_table(net, x, t)
        atomic.write_csv(out / "activations.csv", header, rows)
        atomic.write_text(out / "activations.md", analysis.markdown_table(header, rows))
        atomic.write_text(out / "train.log", "\n".join(log) + "\n")
        atomic.save_torch({"state_dict": net.state_dict(), "act": c["act"], "hid": hid,
                           "seed": seeds[k]}, args.model)
        atomic.write_json(args.metrics, metrics)
        for f in sorted(out.rglob("*.*")):
            run.log_artifact(f, str(Path("plots") / f.parent.relative_to(out)))


if __name__ == "__main__":
    cli.run(main)
