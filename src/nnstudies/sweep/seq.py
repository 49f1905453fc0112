"""Sweep points of Study 3: SRNs on reber, anbn and anbncn, one run per (task, hid, seed).

Point (task, hid, seed) is ``seq.train.train`` with the compiled kernel on a one-restart SRN
initialised from generator (seed, 0): exactly restart 0 of `train_seq@<task>` with
``seq.train.seed = seed``, ``restarts = 1`` and ``hid``, for the sweep's epochs.  The sequences
are generated where the points run, with the ``seq.grammar`` settings: its first epochs + 1
training sequences and its validation split are those of data/seq/<task>.npz (each split is
drawn from its own seeded stream, sequence by sequence; the sweep makes no test split).
Success: the task's bounds ``seq.<task>.success`` on the validation split after the last
epoch, as train_seq counts it.
"""

from __future__ import annotations

import numpy as np

from nnstudies.errors import UserError
from nnstudies.seq import languages
from nnstudies.sweep import stats
from nnstudies.sweep.cluster import Job

TASKS = ("reber", "anbn", "anbncn")
KEYS = ["sweep.scheduler", "sweep.workers", "sweep.seq", "seq.train.optim", "seq.train.lr",
        "seq.train.momentum", "seq.train.weight_decay", "seq.train.init", "seq.train.cpu_path",
        *(f"seq.{task}.success" for task in TASKS),
        "seq.grammar.seed", "seq.grammar.validation_sequences", "seq.grammar.max_n",
        "seq.grammar.reber_min_length",
        "tracking"]
COLUMNS = ["task", "hid", "seed", "success", "epochs_to_success", "error", "separation", "nll",
           "det_accuracy", "loss"]


def make_sequences(task: str, g: dict, epochs: int) -> languages.Grammar:
    """Its test split holds one sequence: nothing of the sweep reads it."""
    return languages.generate(task, g["seed"], epochs + 1, g["validation_sequences"], 1,
                              g["max_n"], g["reber_min_length"])


def point(pt: dict, grammar: languages.Grammar) -> dict:
    """One run; ``epochs_to_success``: the first evaluation (every ``eval_every`` epochs) that
    met the bounds, for a run that meets them at the end."""
    from nnstudies.seq import models, train  # on the worker: no torch in the stage's process

    net = models.build("srn", grammar.classes, pt["hid"], 1)
    net.init_restarts(pt["seed"], pt["init"])
    settings = train.Settings(pt["epochs"], pt["optim"], pt["lr"], pt["momentum"],
                              pt["weight_decay"], log_every=pt["eval_every"],
                              checkpoint_every=pt["epochs"], kernel="compiled")
    met = []

    def on_eval(epoch, m):
        if not met and train.succeeded({k: np.array([v]) for k, v in m.items()}, pt["success"])[0]:
            met.append(epoch)

    res = train.train(net, grammar, settings, log=lambda text: None, on_eval=on_eval)
    final = {k: np.asarray(v) for k, v in res.metrics.items()}
    success = bool(train.succeeded(final, pt["success"])[0])
    return {"task": pt["task"], "hid": pt["hid"], "seed": pt["seed"], "success": success,
            "epochs_to_success": met[0] if success else None,
            **{k: float(final[k][0]) for k in ("error", "separation", "nll", "det_accuracy", "loss")}}


def check_memory(p: dict) -> None:
    """validate_params checks it too; this is for a stage run by hand."""
    g = p["seq"]["grammar"]
    for task in TASKS:
        epochs = p["sweep"]["seq"][task]["epochs"]
        try:
            languages.check_memory(task, epochs + 1, g["validation_sequences"] + 1, g["max_n"],
                                   g["reber_min_length"])
        except UserError as exc:
            raise UserError(f"params.yaml: sweep.seq.{task}.epochs = {epochs} is too many for the "
                            f"sweep's sequences: {exc}") from None


def jobs(p: dict, share, tasks=TASKS) -> list[Job]:
    """The longest task first (anbncn: long sequences), so that no long point starts last."""
    check_memory(p)
    s, sweep = p["seq"]["train"], p["sweep"]["seq"]
    out = []
    for task in sorted(tasks, key=TASKS.index, reverse=True):
        epochs = sweep[task]["epochs"]
        grammar = share(make_sequences, task, p["seq"]["grammar"], epochs)
        settings = {"epochs": epochs, "eval_every": sweep["eval_every"], "optim": s["optim"],
                    "lr": s["lr"], "momentum": s["momentum"], "weight_decay": s["weight_decay"],
                    "init": s["init"], "success": p["seq"][task]["success"],
                    "cpu_path": s["cpu_path"]}
        out += [Job(f"seq {task} hid={hid} seed={seed}",
                    {"task": task, "hid": hid, "seed": seed, **settings}, point, (grammar,),
                    rerun=f"python -m nnstudies.sweep seq --task {task} --hid {hid} --seed {seed}")
                for hid in sorted(set(sweep[task]["hids"])) for seed in range(sweep["seeds"])]
    return out


def summarize(p: dict, results: list[dict]) -> dict:
    sweep = p["sweep"]["seq"]
    out = {"points": len(results), "seeds": sweep["seeds"], "eval_every": sweep["eval_every"]}
    for task in TASKS:
        rows = [r for r in results if r["task"] == task]
        out[task] = {"epochs": sweep[task]["epochs"], "success": p["seq"][task]["success"],
                     "sizes": stats.summarize(rows)}
    return out


def series(summary: dict) -> dict:
    return {task: summary[task]["sizes"] for task in TASKS}

