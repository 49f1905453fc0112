"""Sweep points of Study 2: the checkerboard MLP, one course-style run per (hid, seed).

Point (hid, seed) is one run started from generator seed ``seed * 10000`` (restart 0 of
`train_checker` at ``checker.train.seed = seed``), trained with the `checker.train` settings
at the course's budget (``checker.train.max_epochs``) and judged by the course's rule: 100%
of the nine points for ``patience`` consecutive epochs.  Points of one size train together
as lanes of the compiled kernel (nnstudies.checker.compiled), each lane exactly as if alone.
"""

from __future__ import annotations

from nnstudies.errors import UserError
from nnstudies.sweep import cluster, stats
from nnstudies.sweep.cluster import Job

NAME = "checker"
KEYS = ["sweep.scheduler", "sweep.workers", "sweep.batch", "sweep.seeds", "sweep.threshold",
        "sweep.checker", "checker.train.act", "checker.train.init", "checker.train.lr",
        "checker.train.weight_decay", "checker.train.max_epochs", "checker.train.patience",
        "checker.train.cpu_path", "tracking"]
# What a point's result depends on besides its settings: the modules its training runs.
CODE = ("sweep/checker.py", "checker/compiled.py", "checker/data.py", "checker/model.py",
        "checker/train.py", "lanes.py")
COLUMNS = ["hid", "seed", "success", "epochs_to_success", "epochs_to_100", "epochs_run", "loss",
           "correct"]


def points(p: dict) -> list[dict]:
    """Every point, sizes in increasing order: coordinates and the settings it trains with."""
    c, sweep = p["checker"]["train"], p["sweep"]
    if c["act"] != "sig":
        raise UserError("params.yaml: checker.train.act = step: a step net has no gradient, "
                        "there is nothing to sweep; sweep_checker needs act: sig")
    settings = {k: c[k] for k in ("init", "lr", "weight_decay", "max_epochs", "patience",
                                  "cpu_path")}
    return [{"hid": hid, "seed": seed, **settings}
            for hid in sorted(set(sweep["checker"]["hids"])) for seed in range(sweep["seeds"])]


def train_batch(batch: dict) -> list[dict]:
    """The points of one size, seeds ``batch["seeds"]``, trained as lanes."""
    # Imported here, on the worker: the stage's process only submits points (no numba there).
    from nnstudies.checker import compiled, data, train
    from nnstudies.checker.model import StackedMLP

    x, t = data.points()
    starts = [train.restart_seeds(seed, 1)[0] for seed in batch["seeds"]]
    model = StackedMLP.random(starts, batch["hid"], batch["init"], "sig")
    res = compiled.train(model, x, t, lr=batch["lr"], weight_decay=batch["weight_decay"],
                         max_epochs=batch["max_epochs"], patience=batch["patience"])
    return [{"hid": batch["hid"], "seed": seed, "success": res.met_rule[i] is not None,
             "epochs_to_success": res.met_rule[i], "epochs_to_100": res.first_full[i],
             "epochs_run": res.epochs[i], "loss": res.final_loss[i],
             "correct": res.final_correct[i]}
            for i, seed in enumerate(batch["seeds"])]


def batches(todo: list[dict], size: int, share=None) -> list[Job]:
    """The points to train, by size, in jobs of at most ``size`` seeds; the small sizes (stuck
    most, they run longest) first, as ``points`` orders them."""
    return [Job(f"checker {name}", batch, train_batch, points=part,
                rerun=f"python -m nnstudies.sweep checker --hid {batch['hid']} "
                      f"--seed {batch['seeds'][0]}")
            for name, batch, part in cluster.grouped(todo, ("hid",), size)]


def summarize(p: dict, results: list[dict]) -> dict:
    """The metrics file: the budget, then per size the rate and its interval, and what they
    support at the threshold."""
    sweep, c = p["sweep"], p["checker"]["train"]
    sizes = stats.summarize(results)
    return {"points": len(results), "seeds": sweep["seeds"], "max_epochs": c["max_epochs"],
            "patience": c["patience"], "sizes": sizes,
            "conclusion": stats.conclude(sizes, sweep["threshold"])}


def series(summary: dict) -> dict:
    """{name: per-size summary}: what the plot draws, one CSV per name."""
    return {"checkerboard": summary["sizes"]}
