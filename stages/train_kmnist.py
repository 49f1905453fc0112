"""Stage train_kmnist@<net>: train one KMNIST classifier (lin, full or conv) as the course does.

Reads: tracking, kuzu.train, kuzu.<net>.  Writes: the model weights, metrics JSON, and under
the plots folder: train.log (the course console log), history.csv, confusion.csv (per test
image), confusion_matrix.csv, confusion.png, most_confused.png.
"""

import argparse
from pathlib import Path

from nnstudies import atomic, cli, kmnist, params, runinfo, tracking
from nnstudies.progress import Progress
from nnstudies.kuzu import models, plots
from nnstudies.kuzu.sizes import check_memory
from nnstudies.kuzu.train import fit, pick_device, tensor_batches


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("net", choices=sorted(models.NETS))
    parser.add_argument("--data", default="data/kmnist")
    parser.add_argument("--model", required=True)
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--plots", required=True, help="folder for the log, tables and figures")
    args = parser.parse_args()
    p = params.load(["tracking", "kuzu.train", f"kuzu.{args.net}"])
    cli.torch_threads()
    train, net = p["kuzu"]["train"], p["kuzu"][args.net]
    sizes = {k: v for k, v in net.items() if k not in ("lr", "momentum")}
    check_memory(args.net, sizes, train["batch_size"], train["test_batch_size"])
    device = pick_device(train["device"])
    train_data = kmnist.load_split(args.data, train=True)
    test_data = kmnist.load_split(args.data, train=False)
    out = Path(args.plots)
    stage = f"train_kmnist@{args.net}"
    lines = []  # the course's console log: train.log (the terminal shows progress only)
    progress = Progress(stage, train["epochs"])

    def on_epoch(row):
        run.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])
        progress.update(row["epoch"], f"test accuracy {row['test_accuracy']:.2%}")

    with tracking.start("kmnist", stage, p) as run:
        shuffle_seed = train["seed"] if train["shuffle"] else None
        result = fit(args.net, sizes,
                     tensor_batches(train_data, train["batch_size"], device, shuffle_seed),
                     tensor_batches(test_data, train["test_batch_size"], device),
                     lr=net["lr"], momentum=net["momentum"], epochs=train["epochs"],
                     seed=train["seed"], device=device, log_interval=train["log_interval"],
                     log=lines.append, on_epoch=on_epoch)
        last = result.history[-1]
        formula_text, formula_count = result.model.formula()
        metrics = {
            "net": args.net,
            "test_accuracy": last["test_accuracy"],
            "test_loss": last["test_loss"],
            "train_loss": last["train_loss"],
            "parameters": models.count_parameters(result.model),
            "parameters_formula": formula_count,
            "formula": formula_text,
            "epochs": train["epochs"],
            "train_images": len(train_data[1]),
            "test_images": len(test_data[1]),
            **runinfo.environment(device),
        }
        # What the clock says goes to MLflow only: the metrics file holds what the code, params
        # and data determine, so a rerun of the same commit reproduces it byte for byte.
        timing = {"seconds_per_epoch": result.train_seconds / train["epochs"],
                  "images_per_second": len(train_data[1]) * train["epochs"] / result.train_seconds}
        # The last epoch's values are already in the per-epoch history: log only the rest.
        run.log_metrics({k: v for k, v in {**metrics, **timing}.items()
                         if isinstance(v, (int, float)) and k not in last})
        run.set_tags({"device": metrics["device"], "torch": metrics["torch"]})

        names = kmnist.CLASS_NAMES
        actual, predicted = test_data[1].numpy(), result.predictions.numpy()
        atomic.write_text(out / "train.log", "\n".join(lines) + "\n")
        atomic.write_csv(out / "history.csv", ["epoch", "train_loss", "test_loss", "test_accuracy"],
                         [[r["epoch"], r["train_loss"], r["test_loss"], r["test_accuracy"]]
                          for r in result.history])
        atomic.write_csv(out / "confusion.csv", ["actual", "predicted"],
                         [[names[a], names[b]] for a, b in zip(actual, predicted)])
        atomic.write_csv(out / "confusion_matrix.csv", ["true\\predicted", *names],
                         [[names[i], *map(int, row)] for i, row in enumerate(result.confusion)])
        title = f"{stage}: test accuracy {last['test_accuracy']:.2%}"
        atomic.save_figure(plots.confusion_heatmap(result.confusion, names, title), out / "confusion.png", dpi=120)
        atomic.save_figure(plots.most_confused_grid(test_data[0].numpy(), actual, predicted,
                                                    result.confusion, names, f"{stage}: most confused"),
                           out / "most_confused.png", dpi=120)
        state = {k: v.detach().cpu().contiguous() for k, v in result.model.state_dict().items()}
        atomic.save_torch({"net": args.net, "sizes": sizes, "state_dict": state}, args.model)
        atomic.write_json(args.metrics, metrics)
        for name in ("confusion.png", "most_confused.png", "confusion.csv", "confusion_matrix.csv",
                     "history.csv", "train.log"):
            run.log_artifact(out / name, "plots")


if __name__ == "__main__":
    cli.run(main)
