"""Restarts side by side vs one at a time, for the checkerboard MLP (course settings).

Restart r of seed s starts from generator seed s*10000 + r whatever R is, and a stacked
model trains each restart bit for bit as if it were alone (tests/test_checker.py).  So:

1. census: ONE stacked run of all seeds x R restarts, trained to the end (stop="all"), gives
   each restart's own outcome: the epoch it met the course rule (100% for `patience`
   consecutive epochs) or "stuck" (never, within max_epochs).  Restart 0 of each seed is the
   course's single run: the R = 1 success rate.  A seed succeeds with R restarts if any does.
2. batched (measured): per seed, R restarts side by side until the first meets the rule;
   its epochs must equal the census's earliest, a check of the bit-for-bit claim.
3. one at a time: restarts 0, 1, ... alone until one succeeds; each costs its census epochs
   (max_epochs when stuck) at the measured seconds per epoch of a lone net; --measure-alone N
   times the first N seeds for real, and --measure-stuck times one real stuck run.

    OMP_NUM_THREADS=1 python benchmarks/bench_check.py --seeds 20 --json bench_check.json

Not a test: it prints a table (and writes the numbers as JSON with --json).
"""

import argparse
import json
import statistics
import time

import torch

from nnstudies import cli
from nnstudies.checker import data, train
from nnstudies.checker.model import StackedMLP

X, T = data.points()


def run(seeds, s, stop="first", max_epochs=None):
    """Train these restarts side by side; (Result, wall seconds)."""
    model = StackedMLP.random(seeds, s.hid, 0.15)
    start = time.perf_counter()
    res = train.train(model, X, T, lr=0.01, weight_decay=1e-5, max_epochs=max_epochs or s.max_epochs,
                      patience=s.patience, log_every=10**9, stop=stop)
    return res, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--restarts", type=int, default=16)
    parser.add_argument("--hid", type=int, default=6)
    parser.add_argument("--max-epochs", type=int, default=200000)
    parser.add_argument("--patience", type=int, default=2000)
    parser.add_argument("--measure-alone", type=int, default=0, help="seeds timed one at a time for real")
    parser.add_argument("--measure-stuck", action="store_true", help="time one real stuck run")
    parser.add_argument("--json")
    s = parser.parse_args()
    cli.torch_threads()
    seeds = {seed: train.restart_seeds(seed, s.restarts) for seed in range(s.seeds)}

    census, census_s = run([x for rs in seeds.values() for x in rs], s, stop="all")
    met = {seed: census.met_rule[i * s.restarts:(i + 1) * s.restarts] for i, seed in enumerate(seeds)}
    per_epoch_alone = run([0], s, max_epochs=2000)[1] / 2000  # patience > 2000: never stops early

    rows = []
    for seed, rs in seeds.items():
        res, wall = run(rs, s)
        assert res.epochs == min((e for e in met[seed] if e), default=s.max_epochs), seed
        tried = next((r + 1 for r, e in enumerate(met[seed]) if e), s.restarts)
        epochs_alone = sum(e or s.max_epochs for e in met[seed][:tried])
        row = {"seed": seed, "batched_s": wall, "batched_epochs": res.epochs,
               "batched_ok": any(res.succeeded), "succeeded_of_R": sum(e is not None for e in met[seed]),
               "r1_ok": met[seed][0] is not None, "alone_tried": tried,
               "alone_epochs": epochs_alone, "alone_s_est": epochs_alone * per_epoch_alone}
        if seed < s.measure_alone:
            row["alone_s"] = sum(run([x], s)[1] for x in rs[:tried])
        rows.append(row)
        print(row, flush=True)
    stuck_s = s.max_epochs * per_epoch_alone
    measured_stuck = None
    if s.measure_stuck:
        stuck = next(((seed, r) for seed in seeds for r in range(s.restarts) if met[seed][r] is None), None)
        if stuck:
            measured_stuck = run([seeds[stuck[0]][stuck[1]]], s)[1]
    summary = {
        "settings": {k: v for k, v in vars(s).items() if k != "json"},
        "torch_threads": torch.get_num_threads(),
        "success_rate_R1": sum(r["r1_ok"] for r in rows) / len(rows),
        f"success_rate_R{s.restarts}": sum(r["batched_ok"] for r in rows) / len(rows),
        "restart_success_rate": sum(r["succeeded_of_R"] for r in rows) / (len(rows) * s.restarts),
        "batched_s": {"median": statistics.median(r["batched_s"] for r in rows),
                      "max": max(r["batched_s"] for r in rows)},
        "alone_s_est": {"median": statistics.median(r["alone_s_est"] for r in rows),
                        "max": max(r["alone_s_est"] for r in rows)},
        "alone_s_per_epoch": per_epoch_alone,
        "stuck_run_s_est": stuck_s, "stuck_run_s_measured": measured_stuck,
        "census_s": census_s, "census_restarts": len(census.met_rule),
        "rows": rows,
    }
    summary["goal_met"] = (summary[f"success_rate_R{s.restarts}"] == 1.0
                           and summary["batched_s"]["max"] < (measured_stuck or stuck_s))
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=1))
    if s.json:
        with open(s.json, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
