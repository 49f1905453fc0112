"""Stage sweep_checker: success rate vs network size, one run per (size, seed), batched on Dask.

Reads: sweep.scheduler, sweep.workers, sweep.batch, sweep.seeds, sweep.threshold, sweep.checker and the
study's training settings (PARAMS).
Writes: metrics/ and results/sweep_checker.json (per size: runs, successes, rate, 95% Wilson
interval, epochs to success, the conclusion; results add the settings), plots/sweep_checker/ (points.csv,
rate*.csv, rate.png) and points/sweep_checker.jsonl, the point cache (committed): only points not in
it train.  Each batch trained is an MLflow run, child of the stage's run, with its timing.
"""

from nnstudies import stage
from nnstudies.sweep import checker, outputs

PARAMS = checker.KEYS


def produce(p, ctx):
    return outputs.stage(checker, "checker", ctx.stage, p, ctx.log_metrics)


if __name__ == "__main__":
    stage.main("sweep_checker", "checker", PARAMS, produce)
