"""Sweep points of Study 2: the checkerboard MLP, one course-style run per (hid, seed).

Point (hid, seed) is ``checker.train.train`` on a one-restart StackedMLP started from
generator seed ``seed * 10000``: exactly `train_checker` with ``checker.train.seed = seed``,
``checker.train.restarts = 1`` and ``hid``, with the `checker.train` settings and the sweep's
epoch budget.
"""

from __future__ import annotations

from nnstudies.sweep import stats
from nnstudies.sweep.cluster import Job

KEYS = ["sweep.scheduler", "sweep.workers", "sweep.checker", "checker.train.act",
        "checker.train.init", "checker.train.lr", "checker.train.weight_decay",
        "checker.train.patience", "checker.train.cpu_path", "tracking"]
COLUMNS = ["hid", "seed", "success", "epochs_to_success", "epochs_to_100", "epochs_run", "loss",
           "correct"]


def point(pt: dict) -> dict:
    """One run: did it meet the course's rule (100% for `patience` consecutive epochs) within
    `max_epochs`, and when."""
    # Imported here, on the worker: the stage's process only submits points (no torch there).
    from nnstudies.checker import data, train
    from nnstudies.checker.model import StackedMLP

    x, t = data.points()
    model = StackedMLP.random(train.restart_seeds(pt["seed"], 1), pt["hid"], pt["init"], pt["act"])
    res = train.train(model, x, t, lr=pt["lr"], weight_decay=pt["weight_decay"],
                      max_epochs=pt["max_epochs"], patience=pt["patience"],
                      log_every=pt["max_epochs"])
    return {"hid": pt["hid"], "seed": pt["seed"], "success": res.succeeded[0],
            "epochs_to_success": res.met_rule[0], "epochs_to_100": res.first_full[0],
            "epochs_run": res.epochs, "loss": res.final_loss[0], "correct": res.final_correct[0]}


def jobs(p: dict, share=None) -> list[Job]:
    """Sizes in increasing order (the small ones get stuck most, run longest: first)."""
    c, sweep = p["checker"]["train"], p["sweep"]["checker"]
    settings = {"act": c["act"], "init": c["init"], "lr": c["lr"], "weight_decay": c["weight_decay"],
                "patience": c["patience"], "max_epochs": sweep["max_epochs"],
                "cpu_path": c["cpu_path"]}
    return [Job(f"checker hid={hid} seed={seed}", {"hid": hid, "seed": seed, **settings}, point,
                rerun=f"python -m nnstudies.sweep checker --hid {hid} --seed {seed}")
            for hid in sorted(set(sweep["hids"])) for seed in range(sweep["seeds"])]


def summarize(p: dict, results: list[dict]) -> dict:
    """The metrics file: the budget, then per size the rate and its interval."""
    sweep = p["sweep"]["checker"]
    return {"points": len(results), "seeds": sweep["seeds"], "max_epochs": sweep["max_epochs"],
            "patience": p["checker"]["train"]["patience"], "sizes": stats.summarize(results)}


def series(summary: dict) -> dict:
    """{name: per-size summary}: what the plot draws, one CSV per name."""
    return {"checkerboard": summary["sizes"]}
