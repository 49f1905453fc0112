"""Stage sweep_checker: success rate vs network size, one run per (size, seed), on Dask.

Reads: sweep.scheduler, sweep.workers, sweep.checker and the study's training settings (PARAMS).
Writes: metrics/ and results/sweep_checker.json (per size: runs, successes, rate, 95% Wilson
interval, epochs to success; results add the settings), plots/sweep_checker/ (points.csv,
rate*.csv, rate.png).  Each point is an MLflow run, child of the stage's run, with its timing.
"""

from nnstudies import stage
from nnstudies.sweep import checker, outputs

PARAMS = checker.KEYS


def produce(p, ctx):
    return outputs.stage(checker, "checker", ctx.stage, p, ctx.log_metrics)


if __name__ == "__main__":
    stage.main("sweep_checker", "checker", PARAMS, produce)
