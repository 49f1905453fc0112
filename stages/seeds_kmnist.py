"""Stage seeds_kmnist: Part 1's nets over seeds 0..kmnist.seeds-1 (initialisation and batch order).

Reads: tracking, sweep.scheduler, sweep.workers, kmnist.seeds, kmnist.train and each net's
settings, data/kmnist.  Writes: metrics/ and results/seeds_kmnist.json (per net the mean,
sample sd, min and max test accuracy; results add every seed's), plots/seeds_kmnist/
(points.csv, seeds.png) and points/seeds_kmnist.jsonl, the point cache (committed).
"""

from nnstudies import layout, stage
from nnstudies.kmnist import seeds

PARAMS = ["tracking", "sweep.scheduler", "sweep.workers", "kmnist.seeds", "kmnist.train",
          *(f"kmnist.{net}" for net in seeds.NETS)]


def produce(p, ctx):
    return seeds.stage(p, ctx.stage, ctx.path(layout.KMNIST_DATA), ctx.log_metrics)


if __name__ == "__main__":
    stage.main("seeds_kmnist", "kmnist", PARAMS, produce)
