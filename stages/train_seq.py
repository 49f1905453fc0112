"""Stage train_seq: train R restarts of one task's recurrent net side by side.

Reads: seq.train, seq.<task>, data/grammar/<task>.npz.  Writes: models/seq_<task>/epoch_<k>.pt
(every checkpoint_every epochs and the last) and progress.pt (for seq.train.resume),
plots/train_seq_<task>/{train.log, curve.csv (the best restart per evaluation),
restarts.csv (every restart)}, metrics/train_seq_<task>.json.
"""

from pathlib import Path

import numpy as np

from nnstudies import atomic, cli, params, runinfo, tracking
from nnstudies.errors import UserError
from nnstudies.progress import Progress
from nnstudies.seq import checkpoints, languages, models, stage_args, train


def main():
    args = stage_args.parse(__doc__)
    p = params.load(["tracking", "seq.train", f"seq.{args.task}"])
    stage_args.one_thread()  # tiny nets: one thread (measured there)
    s, task = p["seq"]["train"], p["seq"][args.task]
    grammar = languages.load(args.data)
    if len(grammar.train) < task["epochs"] + 1:
        raise UserError(f"seq.{args.task}.epochs = {task['epochs']} needs {task['epochs'] + 1} "
                        f"training sequences, {args.data} has {len(grammar.train)} "
                        "(raise grammar.train_sequences)")
    net = models.build(task["model"], grammar.classes, task["hid"], s["restarts"])
    net.init_restarts(s["seed"], s["init"])
    settings = train.Settings(task["epochs"], s["optim"], s["lr"], s["momentum"],
                              s["weight_decay"], s["log_every"], s["checkpoint_every"],
                              s["kernel"])
    # What a resumed run must share with the saved one (more epochs may be asked for).
    identity = {"task": {"model": task["model"], "hid": task["hid"]},
                "train": {k: v for k, v in s.items() if k != "resume"}}
    resume = None
    if s["resume"]:
        resume, why = checkpoints.resumable(args.models, identity, grammar, task["epochs"])
        print(why, flush=True)
    if resume is None:
        checkpoints.clear(args.models)

    stage = f"train_seq@{args.task}"
    progress = Progress(stage, task["epochs"])  # the diagnostic prints go to train.log

    with tracking.start("seq", stage, p) as run:
        def on_eval(epoch, m):
            run.log_metrics(m, step=epoch)
            progress.update(epoch, f"best error {m['error']:.4f}")

        result = train.train(
            net, grammar, settings, log=lambda text: None,
            checkpoint=lambda epoch, state: checkpoints.save(args.models, identity, grammar, net,
                                                             epoch, state),
            on_eval=on_eval, resume=resume)
        m = {k: np.asarray(v) for k, v in result.metrics.items()}
        ok = train.succeeded(m, task["success"])
        best = int(np.argmin(train.selection_score(m)))
        per_1000 = result.seconds / (task["epochs"] + 1) * 1000
        metrics = {
            "epochs": task["epochs"], "restarts": s["restarts"], "best_restart": best,
            **{k: float(v[best]) for k, v in m.items()},
            "entropy_floor": train.entropy_floor(train.eval_batch(grammar)),
            "success_count": int(ok.sum()), "success_rate": float(ok.mean()),
            "restart": {k: [float(x) for x in v] for k, v in m.items()},
            **runinfo.environment(),
        }
        # Clock readings go to MLflow only: the metrics file is what code + params determine.
        timing = {"seconds": result.seconds, "sec_per_1000_epochs": per_1000,
                  "sec_per_1000_epochs_per_restart": per_1000 / s["restarts"]}
        plots = Path(args.plots)
        atomic.write_text(plots / "train.log", "".join(result.log))
        header = list(result.curve[0])
        atomic.write_csv(plots / "restarts.csv", header,
                         [[row[k] for k in header] for row in result.curve])
        atomic.write_csv(plots / "curve.csv", header,
                         [[row[k] for k in header] for row in train.best_rows(result.curve)])
        atomic.write_json(args.metrics, metrics)
        run.log_metrics({k: v for k, v in {**metrics, **timing}.items()
                         if isinstance(v, (int, float))}, step=task["epochs"])
        for name in ("train.log", "curve.csv", "restarts.csv"):
            run.log_artifact(plots / name, "train")


if __name__ == "__main__":
    cli.run(main)
