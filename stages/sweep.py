"""Stage sweep_<study>: success rate vs network size, one run per (size, seed), on Dask.

Reads: sweep.scheduler, sweep.workers, sweep.<study>, the study's training settings (as
dvc.yaml lists them), tracking.  Writes: metrics/sweep_<study>.json (per size: runs,
successes, rate, 95% Wilson interval, epochs to success), plots/sweep_<study>/points.csv
(every point), rate.csv or rate_<task>.csv (DVC plots), rate.png.  Each point is an MLflow
run, child of the stage's run, with its timing (the files hold none).
"""

import argparse
import importlib
from pathlib import Path

from nnstudies import cli, params, tracking
from nnstudies.sweep import cluster, outputs

TITLES = {"check": "Checkerboard MLP: one run per seed", "seq": "SRNs: one run per seed"}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("study", choices=sorted(TITLES))
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--plots", required=True)
    args = parser.parse_args()
    study = importlib.import_module(f"nnstudies.sweep.{args.study}")  # only its own imports
    p = params.load(study.KEYS)
    label = f"sweep_{args.study}"
    with tracking.start(args.study, label, p) as run:
        with cluster.connect(p["sweep"]["scheduler"], p["sweep"]["workers"]) as client:
            jobs = study.jobs(p, cluster.sharer(client))
            print(f"{label}: {len(jobs)} points on {cluster.describe(client)}", flush=True)
            outcomes = cluster.run(client, jobs, label)
        results = [result for result, _ in outcomes]
        summary = study.summarize(p, results)
        for job, (result, timing) in zip(jobs, outcomes):
            numbers = {k: v for k, v in result.items() if isinstance(v, (int, float))}
            run.log_child(f"{label} {job.name}", job.point,
                          {**numbers, "seconds": timing["seconds"], "cpu_seconds": timing["cpu_seconds"]},
                          {"dask.worker": timing["worker"]}, timing["start_ms"], timing["end_ms"])
        for name, sizes in study.series(summary).items():
            for s in sizes.values():
                run.log_metrics({f"{name}.rate": s["rate"], f"{name}.low": s["low"],
                                 f"{name}.high": s["high"]}, step=s["hid"])
        outputs.write(Path(args.plots), Path(args.metrics), study.COLUMNS, results, summary,
                      study.series(summary), TITLES[args.study])
        for name in sorted(Path(args.plots).iterdir()):
            run.log_artifact(name, "sweep")


if __name__ == "__main__":
    cli.run(main)
