"""Stage sweep_seq: success rate vs network size, one run per (size, seed), on Dask.

Reads: sweep.scheduler, sweep.workers, sweep.seq and the study's training settings (PARAMS).
Writes: metrics/ and results/sweep_seq.json (per size: runs, successes, rate, 95% Wilson
interval, epochs to success; results add the settings), plots/sweep_seq/ (points.csv,
rate*.csv, rate.png).  Each point is an MLflow run, child of the stage's run, with its timing.
"""

from nnstudies import stage
from nnstudies.sweep import outputs, seq

PARAMS = seq.KEYS


def produce(p, ctx):
    return outputs.stage(seq, "seq", ctx.stage, p, ctx.log_metrics)


if __name__ == "__main__":
    stage.main("sweep_seq", "seq", PARAMS, produce)
