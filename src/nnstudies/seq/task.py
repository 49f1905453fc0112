"""train_seq's study function: one task's restarts trained side by side, the kept restart
chosen on the validation split, its numbers reported on the held-out test split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nnstudies.errors import UserError
from nnstudies.outputs import LogMetrics, Outputs, Served
from nnstudies.seq import checkpoints, models, train
from nnstudies.seq.languages import Grammar


def keep(validation: dict, test: dict, ok: np.ndarray) -> dict:
    """Per-restart metrics (arrays of R values) on both splits and which restarts succeeded
    (``train.held``) -> the restart kept (the best on validation among those that succeeded),
    its numbers on each split.  The test split plays no part in any choice."""
    kept = train.choose(validation, ok)
    return {"kept": kept, "success": ok,
            "validation": {k: float(v[kept]) for k, v in validation.items()},
            "test": {k: float(v[kept]) for k, v in test.items()}}


def window_worst(curve: list[dict], restart: int, start: int) -> dict:
    """A restart's worst validation scores over the evaluations from epoch ``start`` on (the
    success window): how far from its bounds a kept net strays, its instability disclosed."""
    rows = [r for r in curve if r["restart"] == restart and r["epoch"] >= start]
    worst = {k: max(r[k] for r in rows) for k in ("error", "final") if k in rows[0]}
    if "separation" in rows[0]:
        worst["separation"] = min(r["separation"] for r in rows)
    return {"evaluations": len(rows), **worst}


def _example(x) -> np.ndarray:
    """The first three test sequences (repeated if fewer), cut to the longest of them but at
    least 2 steps: (T, 3, classes).  torch.export fixes a dimension of size 1 to 1, so
    neither may be 1 for the MLflow model to take any batch and length."""
    picked = x[:, [i % x.shape[1] for i in range(3)]].numpy()
    steps = max(int(picked.any(-1).sum(0).max()), 2)
    example = np.zeros((steps, 3, x.shape[2]), np.float32)
    example[:min(steps, len(picked))] = picked[:steps]
    return example


def run(task: str, s: dict, t: dict, grammar: Grammar, folder: Path, *,
        log_metrics: LogMetrics, progress, group: str | None = None) -> Outputs:
    """Train task ``task`` (params ``seq.train`` = ``s``, ``seq.<task>`` = ``t``: model, hid,
    epochs, success) on ``grammar``'s sequences, checkpoints in ``folder``; ``progress``: a
    Progress over epochs; ``group``: where ``t`` is in params.yaml (``seq.<task>``)."""
    if len(grammar.train) < t["epochs"] + 1:
        raise UserError(f"{group or f'seq.{task}'}.epochs = {t['epochs']} needs {t['epochs'] + 1} training "
                        f"sequences, the data has {len(grammar.train)} "
                        "(raise seq.grammar.train_sequences)")
    net = models.build(t["model"], grammar.classes, t["hid"], s["restarts"])
    net.init_restarts(s["seed"], s["init"])
    settings = train.Settings(t["epochs"], s["optim"], s["lr"], s["momentum"], s["weight_decay"],
                              s["log_every"], s["checkpoint_every"], s["kernel"], t["success"],
                              s["success_window"])
    # What a resumed run must share with the saved one (more epochs may be asked for).
    identity = {"task": {"model": t["model"], "hid": t["hid"]},
                "train": {k: v for k, v in s.items() if k != "resume"}}
    resume, why = None, "seq.train.resume is false: starting at epoch 0"
    if s["resume"]:
        resume, why = checkpoints.resumable(folder, identity, grammar, t["epochs"])
        print(why, flush=True)
    if resume is None:
        checkpoints.clear(folder)

    def on_eval(epoch, m):
        log_metrics(m, epoch)
        progress.update(epoch, f"best validation error {m['error']:.4f}")

    result = train.train(
        net, grammar, settings, log=lambda text: None,
        checkpoint=lambda epoch, state: checkpoints.save(folder, identity, grammar, net, epoch,
                                                         state),
        on_eval=on_eval, resume=resume)
    loss = np.asarray(result.metrics.pop("loss"))  # training loss since the last evaluation
    validation = {k: np.asarray(v) for k, v in result.metrics.items()}
    test_batch = train.eval_batch(grammar, "test")
    test = train.evaluate(net, test_batch, settings.kernel)
    chosen = keep(validation, test, train.held(result.curve, t["success"], t["epochs"],
                                               s["success_window"]))
    start = train.window_start(t["epochs"], s["success_window"])

    per_restart = [{"restart": r, "success": bool(chosen["success"][r]), "train_loss": loss[r],
                    "validation": {k: v[r] for k, v in validation.items()},
                    "test": {k: v[r] for k, v in test.items()}} for r in range(net.restarts)]
    final = grammar.language.final is not None
    results = {
        "task": task, "language": grammar.lang, "max_n": grammar.max_n, "model": t["model"],
        "hid": t["hid"], "epochs": t["epochs"],
        "settings": identity["train"], "restarts": net.restarts,
        "kept_restart": chosen["kept"],
        "selection": "lowest validation error" + (" + final" if final else ""),
        "success_bounds": t["success"], "success_split": "validation",
        "success_window": {"share": s["success_window"], "from_epoch": start,
                           "kept_worst": window_worst(result.curve, chosen["kept"], start)},
        "succeeded": int(chosen["success"].sum()),
        "data": {"train_sequences": len(grammar.train), "train_sequences_used": t["epochs"] + 1,
                 "validation_sequences": len(grammar.validation),
                 "test_sequences": len(grammar.test)},
        "entropy_floor": {"validation": train.entropy_floor(train.eval_batch(grammar)),
                          "test": train.entropy_floor(test_batch)},
        "per_restart": per_restart,
        "diagnostic": result.diagnostic,
        "resume": why, "resumed_from": resume["progress"]["epoch"] if resume else None,
    }
    metrics = {"test": chosen["test"], "validation": chosen["validation"],
               "success_count": results["succeeded"], "restarts": net.restarts}
    curve = pd.DataFrame(result.curve)  # every restart at every evaluation, on validation
    per_1000 = result.seconds / (t["epochs"] + 1) * 1000
    kept = net.select(chosen["kept"])
    served = Served(f"seq_{task}", f"seq_{t['model']}",
                    {"num_in": kept.num_in, "hid": kept.hid, "num_out": kept.num_out},
                    kept.state_dict(), _example(test_batch.x))
    return Outputs(
        metrics=metrics, results=results, step=t["epochs"], served=[served],
        files={"train.log": "".join(result.log), "restarts.csv": curve,
               "curve.csv": pd.DataFrame(train.best_rows(result.curve))},
        timings={"seconds": result.seconds, "sec_per_1000_epochs": per_1000,
                 "sec_per_1000_epochs_per_restart": per_1000 / net.restarts})
