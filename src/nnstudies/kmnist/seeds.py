"""Part 1 over seeds: each net trained from seeds 0..kmnist.seeds-1, one point per (net, seed).

A seed sets the initialisation and the batch order (the training images shuffled each epoch
by a generator of that seed), nothing else: the data, sizes, optimiser and epochs are those of
`train_kmnist@<net>`, which keeps the course's fixed order (kmnist.train.shuffle).  Points run on
the sweeps' engine (nnstudies.sweep.engine): Dask, one thread each, and the point cache in
points/seeds_kmnist.jsonl, committed, so a fresh clone's `dvc repro` trains none.  One thread
adds in another order than train_kmnist's two, so a net at its stage's seed is that stage's
run only where its order is shuffled too.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from nnstudies.outputs import Outputs, Table
from nnstudies.sweep.cluster import Job

NETS = ("lin", "full", "wide", "conv")  # the report's order (points run conv, the longest, first)
# What a point's result depends on besides its settings: the modules its training runs.
CODE = ("kmnist/seeds.py", "kmnist/train.py", "kmnist/models.py", "kmnist/data.py",
        "kmnist/sizes.py", "errors.py", "outputs.py", "cpu.py")
COLUMNS = ["net", "seed", "test_accuracy", "correct", "test_loss", "train_loss"]


class Study:
    """This study for the points engine: its points read the KMNIST files in ``data_dir``
    (their checksums are part of each point, the path is not: it is where, not what)."""

    CODE = CODE

    def __init__(self, data_dir: str, md5: dict):
        self.data_dir, self.md5 = data_dir, md5

    def points(self, p: dict) -> list[dict]:
        """Every point: coordinates, the training settings and the data's checksums."""
        t = p["kmnist"]["train"]
        settings = {k: t[k] for k in ("epochs", "batch_size", "test_batch_size", "cpu_path")}
        return [{"net": net, "seed": seed, "net_params": p["kmnist"][net], "data": self.md5,
                 **settings}
                for net in sorted(NETS, key=NETS.index, reverse=True)
                for seed in range(p["kmnist"]["seeds"])]

    def batches(self, todo: list[dict], size: int, share) -> list[Job]:
        """One job per point (a net trains alone); the data loaded once, a shared task."""
        splits = share(load, self.data_dir, todo[0]["cpu_path"])
        return [Job(f"kmnist {pt['net']} seed={pt['seed']}", pt, train_point, (splits,),
                    points=[pt]) for pt in todo]


def load(data_dir: str, cpu_path: str) -> tuple:
    """Both splits as tensors, on the points' CPU path (a worker keeps the path of its first
    torch computation, and this may be it)."""
    from nnstudies import cpu
    from nnstudies.kmnist import data

    cpu.pin(cpu_path, "kmnist.train.cpu_path")
    return data.load_split(data_dir, train=True), data.load_split(data_dir, train=False)


def train_point(pt: dict, splits: tuple) -> list[dict]:
    """One net from one seed, on the CPU, as train_kmnist trains it."""
    import torch

    from nnstudies.kmnist import train

    device = torch.device("cpu")
    sizes = {k: v for k, v in pt["net_params"].items() if k not in ("lr", "momentum")}
    result = train.fit(
        pt["net"], sizes,
        train.tensor_batches(splits[0], pt["batch_size"], device, shuffle_seed=pt["seed"]),
        train.tensor_batches(splits[1], pt["test_batch_size"], device),
        lr=pt["net_params"]["lr"], momentum=pt["net_params"]["momentum"], epochs=pt["epochs"],
        seed=pt["seed"], device=device, log_interval=10**9, log=lambda text: None)
    last = result.history[-1]
    return [{"net": pt["net"], "seed": pt["seed"], "test_accuracy": last["test_accuracy"],
             "correct": int(result.confusion.trace()), "images": int(result.confusion.sum()),
             "test_loss": last["test_loss"], "train_loss": last["train_loss"],
             "per_class_correct": [int(c) for c in result.confusion.diagonal()]}]


def summarize(results: list[dict]) -> dict:
    """Per net: the seeds, mean, sample standard deviation, min and max test accuracy, and
    per seed its value; and for each pair of nets in how many seeds the first was ahead."""
    from nnstudies.kmnist.train import TITLES

    per_net = {}
    for net in NETS:
        rows = sorted((r for r in results if r["net"] == net), key=lambda r: r["seed"])
        acc = [r["test_accuracy"] for r in rows]
        per_net[net] = {"title": TITLES[net], "seeds": len(acc), "mean": statistics.fmean(acc),
                        "sd": statistics.stdev(acc) if len(acc) > 1 else 0.0,
                        "min": min(acc), "max": max(acc),
                        "per_seed": {str(r["seed"]): r["test_accuracy"] for r in rows}}
    ahead = {}
    for a, b in (("full", "lin"), ("conv", "full"), ("conv", "wide"), ("wide", "full")):
        seeds = per_net[a]["per_seed"].keys() & per_net[b]["per_seed"].keys()
        ahead[f"{a}_vs_{b}"] = {"seeds": len(seeds), "ahead": sum(
            per_net[a]["per_seed"][s] > per_net[b]["per_seed"][s] for s in seeds)}
    return {"nets": per_net, "ahead": ahead}


def stage(p: dict, label: str, data_dir: Path, log_metrics) -> Outputs:
    """The seeds_kmnist stage: every (net, seed) from the point cache or trained, summarised."""
    from nnstudies.kmnist import data
    from nnstudies.sweep import engine

    done = engine.run(Study(str(Path(data_dir).resolve()), data.md5s(data_dir)), label, p,
                      batch=1)
    summary = summarize(done.results)
    for net, s in summary["nets"].items():
        log_metrics({f"{net}.mean": s["mean"], f"{net}.sd": s["sd"]}, 0)
    log_metrics({"points_trained": sum(len(job.points) for job, _ in done.trained),
                 "points_cached": len(done.points) - sum(len(j.points) for j, _ in done.trained)}, 0)
    t = p["kmnist"]["train"]
    results = {"seeds": p["kmnist"]["seeds"],
               "varies": "initialisation and batch order (shuffled by the seed)",
               "settings": {"epochs": t["epochs"], "batch_size": t["batch_size"],
                            "threads": 1, "cpu_path": t["cpu_path"]},
               **summary, "points": done.results, "cpu_paths": done.cpu_paths}
    files = {"points.csv": Table(COLUMNS, [[r[c] for c in COLUMNS] for r in done.results]),
             "seeds.png": lambda: figure(summary)}
    return Outputs(metrics={"nets": {net: {k: s[k] for k in ("seeds", "mean", "sd", "min", "max")}
                                     for net, s in summary["nets"].items()},
                            "ahead": summary["ahead"]},
                   results=results, files=files, children=done.children)


def figure(summary: dict):
    """Each net's test accuracy per seed (dots) and their mean with +-1 sd (bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    for i, s in enumerate(summary["nets"].values()):
        values = [100 * v for v in s["per_seed"].values()]
        ax.scatter([i] * len(values), values, s=18, color="tab:blue", alpha=0.7, zorder=3)
        ax.errorbar([i + 0.15], [100 * s["mean"]], yerr=[100 * s["sd"]], fmt="s", color="black",
                    capsize=4, zorder=4)
    ax.set_xticks(range(len(summary["nets"])), [s["title"] for s in summary["nets"].values()])
    ax.set(ylabel="test accuracy (%)", title=f"Part 1 over {next(iter(summary['nets'].values()))['seeds']} "
           "seeds (dots); mean +- 1 sd (black)")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig
