"""Sweep points of Study 3: SRNs on reber, anbn and anbncn, one run per (task, hid, seed).

Point (task, hid, seed) is restart 0 of `train_seq@<task>` at ``seq.train.seed = seed`` with
``hid`` units: the compiled kernel, seq.train's optimiser and init, the task's epochs
(``seq.<task>.epochs``, the course's budget).  Its sequences are generated where the points
run, with the ``seq.grammar`` settings: the first epochs + 1 training sequences and the
validation split of data/seq/<task>.npz (each split is its own seeded stream; the sweep makes
no test split).  Success is train_seq's rule (``train.held``): the validation scores meet
``seq.<task>.success`` at every evaluation (every ``seq.train.log_every`` epochs) in the last
``seq.train.success_window`` of the epochs.  Points of one task and size train together as
lanes of the compiled kernel, each lane exactly as if alone.
"""

from __future__ import annotations

from nnstudies.errors import UserError
from nnstudies.seq import languages
from nnstudies.sweep import cluster, stats
from nnstudies.sweep.cluster import Job

NAME = "seq"
TASKS = ("reber", "anbn", "anbncn")
GRAMMAR = ("seed", "validation_sequences", "max_n", "reber_min_length")
KEYS = ["sweep.scheduler", "sweep.workers", "sweep.batch", "sweep.seeds", "sweep.threshold",
        "sweep.seq", "seq.train.optim", "seq.train.lr", "seq.train.momentum",
        "seq.train.weight_decay", "seq.train.init", "seq.train.log_every",
        "seq.train.success_window", "seq.train.cpu_path",
        *(f"seq.{task}.{key}" for task in TASKS for key in ("epochs", "success")),
        *(f"seq.grammar.{key}" for key in GRAMMAR), "tracking"]
# What a point's result depends on besides its settings: the modules its training runs.
CODE = ("sweep/seq.py", "seq/compiled.py", "seq/models.py", "seq/train.py", "seq/languages.py",
        "seq/dynamics.py", "seq/diagnostics.py", "lanes.py")
COLUMNS = ["task", "hid", "seed", "success", "epochs_to_success", "error", "separation", "nll",
           "det_accuracy", "loss"]


def make_sequences(task: str, g: dict, epochs: int) -> languages.Grammar:
    """Its test split holds one sequence: nothing of the sweep reads it."""
    return languages.generate(task, g["seed"], epochs + 1, g["validation_sequences"], 1,
                              g["max_n"], g["reber_min_length"])


def points(p: dict) -> list[dict]:
    """Every point, the longest task first (anbncn: long sequences, most epochs), so that no
    long batch starts last."""
    s, g, sweep = p["seq"]["train"], p["seq"]["grammar"], p["sweep"]
    settings = {k: s[k] for k in ("optim", "lr", "momentum", "weight_decay", "init", "log_every",
                                  "success_window", "cpu_path")}
    out = []
    for task in sorted(TASKS, key=TASKS.index, reverse=True):
        epochs = p["seq"][task]["epochs"]
        _check_memory(task, g, epochs)
        out += [{"task": task, "hid": hid, "seed": seed, "epochs": epochs,
                 "success": p["seq"][task]["success"], "grammar": {k: g[k] for k in GRAMMAR},
                 **settings}
                for hid in sorted(set(sweep["seq"][task]["hids"])) for seed in range(sweep["seeds"])]
    return out


def _check_memory(task: str, g: dict, epochs: int) -> None:
    """validate_params checks it too; this is for a stage run by hand."""
    try:
        languages.check_memory(task, epochs + 1, g["validation_sequences"] + 1, g["max_n"],
                               g["reber_min_length"])
    except UserError as exc:
        raise UserError(f"params.yaml: seq.{task}.epochs = {epochs} is too many for the "
                        f"sweep's sequences: {exc}") from None


def train_batch(batch: dict, grammar: languages.Grammar) -> list[dict]:
    """The points of one task and size, seeds ``batch["seeds"]``, trained as lanes."""
    import numpy as np

    from nnstudies.seq import models, train  # on the worker: no torch in the stage's process

    net = models.build("srn", grammar.classes, batch["hid"], len(batch["seeds"]))
    net.init_from([(seed, 0) for seed in batch["seeds"]], batch["init"])
    settings = train.Settings(batch["epochs"], batch["optim"], batch["lr"], batch["momentum"],
                              batch["weight_decay"], log_every=batch["log_every"],
                              checkpoint_every=batch["epochs"], kernel="compiled",
                              success=batch["success"], window=batch["success_window"])
    run = train.train(net, grammar, settings, log=lambda text: None)
    ok = train.held(run.curve, batch["success"], batch["epochs"], batch["success_window"])
    final = {k: np.asarray(v) for k, v in run.metrics.items()}
    return [{"task": batch["task"], "hid": batch["hid"], "seed": seed, "success": bool(ok[r]),
             "epochs_to_success": train.held_since(run.curve, batch["success"], r) if ok[r] else None,
             **{k: float(final[k][r]) for k in ("error", "separation", "nll", "det_accuracy", "loss")}}
            for r, seed in enumerate(batch["seeds"])]


def batches(todo: list[dict], size: int, share) -> list[Job]:
    """The points to train, by task and size, in jobs of at most ``size`` seeds; each task's
    sequences made once (``share``: a Dask task that every job of the task reads)."""
    grammars = {}
    for pt in todo:
        if pt["task"] not in grammars:
            grammars[pt["task"]] = share(make_sequences, pt["task"], pt["grammar"], pt["epochs"])
    return [Job(f"seq {name}", batch, train_batch, (grammars[batch["task"]],), points=part,
                rerun=f"python -m nnstudies.sweep seq --task {batch['task']} "
                      f"--hid {batch['hid']} --seed {batch['seeds'][0]}")
            for name, batch, part in cluster.grouped(todo, ("task", "hid"), size)]


def summarize(p: dict, results: list[dict]) -> dict:
    sweep, s = p["sweep"], p["seq"]["train"]
    out = {"points": len(results), "seeds": sweep["seeds"], "eval_every": s["log_every"],
           "success_window": s["success_window"]}
    for task in TASKS:
        sizes = stats.summarize([r for r in results if r["task"] == task])
        out[task] = {"epochs": p["seq"][task]["epochs"], "success": p["seq"][task]["success"],
                     "sizes": sizes, "conclusion": stats.conclude(sizes, sweep["threshold"])}
    return out


def series(summary: dict) -> dict:
    return {task: summary[task]["sizes"] for task in TASKS}
