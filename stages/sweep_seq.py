"""Stage sweep_seq: success rate vs network size, one run per (size, seed), batched on Dask.

Reads: sweep.scheduler, sweep.workers, sweep.batch, sweep.seeds, sweep.threshold, sweep.seq and the
study's training settings (PARAMS).
Writes: metrics/ and results/sweep_seq.json (per size: runs, successes, rate, 95% Wilson
interval, epochs to success, the conclusion; results add the settings), plots/sweep_seq/ (points.csv,
rate*.csv, rate.png) and points/sweep_seq.jsonl, the point cache (committed): only points not in
it train.  Each batch trained is an MLflow run, child of the stage's run, with its timing.
"""

from nnstudies import stage
from nnstudies.sweep import outputs, seq

PARAMS = seq.KEYS


def produce(p, ctx):
    return outputs.stage(seq, "seq", ctx.stage, p, ctx.log_metrics)


if __name__ == "__main__":
    stage.main("sweep_seq", "seq", PARAMS, produce)
