"""Batched sweep points against the per-point computation they replaced, side by side in one run.

    OMP_NUM_THREADS=1 python benchmarks/bench_sweep.py --json benchmarks/bench_sweep.json

The same points, in this process, one thread, one after another:
1. checkerboard: per point, the torch loop (checker.train.train, one restart: how the sweep
   computed a point before) against all seeds of a size as lanes of the compiled kernel
   (sweep.checker.train_batch).  The torch loop costs about a millisecond an epoch, so this
   comparison runs at --checker-epochs (default 20,000), not the course's 200,000.
2. recurrent: per point, one lane of the compiled kernel with its evaluations (how the sweep
   computed a point before) against all seeds of a size as lanes (sweep.seq.train_batch), at
   --seq-epochs of anbncn.
Ratio = per-point seconds / batched seconds.  Both must give the same successes (the lanes
bit for bit as alone; the torch loop to float32 rounding, so its epochs may differ a little).
Not a test: it prints a table (and the numbers as JSON with --json).  Run it on a quiet machine.
"""

import argparse
import json
import os
import platform
import time

import torch

from nnstudies.checker import data, train
from nnstudies.checker.model import StackedMLP
from nnstudies.sweep import checker, cluster, seq

COURSE = {"init": 0.15, "lr": 0.01, "weight_decay": 1e-5, "patience": 2000, "cpu_path": "host"}


def timed(fn):
    clock = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - clock


def checker_pair(hids, seeds, epochs) -> dict:
    x, t = data.points()
    per_point, batched = [], []

    def torch_points():
        for hid in hids:
            for seed in range(seeds):
                model = StackedMLP.random(train.restart_seeds(seed, 1), hid, COURSE["init"])
                res = train.train(model, x, t, lr=COURSE["lr"], weight_decay=COURSE["weight_decay"],
                                  max_epochs=epochs, patience=COURSE["patience"], log_every=epochs)
                per_point.append(res.succeeded[0])

    def lanes():
        for hid in hids:
            batch = {"hid": hid, "seeds": list(range(seeds)), **COURSE, "max_epochs": epochs}
            batched.extend(r["success"] for r in checker.train_batch(batch))

    checker.train_batch({"hid": 2, "seeds": [0], **COURSE, "max_epochs": 2})  # compile, warm
    _, per_s = timed(torch_points)
    _, lane_s = timed(lanes)
    return {"points": len(per_point), "epochs": epochs, "per_point_s": per_s, "batched_s": lane_s,
            "ratio": per_s / lane_s, "successes": [sum(per_point), sum(batched)]}


def seq_pair(hid, seeds, epochs) -> dict:
    p = {"sweep": {"seeds": seeds, "threshold": 0.9, "seq": {t: {"hids": [hid]} for t in seq.TASKS}},
         "seq": {"grammar": {"seed": 0, "validation_sequences": 200, "max_n": 8,
                             "reber_min_length": 0},
                 "train": {"optim": "adam", "lr": 0.001, "momentum": 0.0, "weight_decay": 1e-5,
                           "init": 0.001, "log_every": 1000, "success_window": 0.1,
                           "cpu_path": "host"},
                 **{t: {"epochs": epochs, "success": {"error": 0.03}} for t in seq.TASKS}}}
    p["seq"]["reber"]["success"] = {"error": 0.01, "separation": 0.9}
    points = [pt for pt in seq.points(p) if pt["task"] == "anbncn"]
    grammar = seq.make_sequences("anbncn", points[0]["grammar"], epochs)
    share = lambda fn, *args: grammar  # noqa: E731 - made once, above
    seq.train_batch({**points[0], "seeds": [0], "epochs": 10}, grammar)  # compile, warm
    alone, per_s = timed(lambda: [r for pt in points for r in seq.train_batch(
        seq.batches([pt], 1, share)[0].point, grammar)])
    together, lane_s = timed(lambda: seq.train_batch(seq.batches(points, seeds, share)[0].point,
                                                     grammar))
    assert alone == together, "a lane differs from its point alone"
    return {"points": len(points), "task": "anbncn", "hid": hid, "epochs": epochs,
            "per_point_s": per_s, "batched_s": lane_s, "ratio": per_s / lane_s,
            "successes": sum(r["success"] for r in together)}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hids", default="2,6,12,24")
    parser.add_argument("--seeds", type=int, default=35)
    parser.add_argument("--checker-seeds", type=int, default=5)
    parser.add_argument("--checker-epochs", type=int, default=20000)
    parser.add_argument("--seq-epochs", type=int, default=20000)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    out = {"cpu": platform.processor() or platform.machine(), "cores": cluster.cores(),
           "load_1min_before": load_before,
           "checker": checker_pair([int(h) for h in args.hids.split(",")], args.checker_seeds,
                                   args.checker_epochs),
           "seq": seq_pair(3, args.seeds, args.seq_epochs)}
    out["load_1min_after"] = os.getloadavg()[0]
    for name in ("checker", "seq"):
        r = out[name]
        print(f"{name}: {r['points']} points, {r['epochs']:,} epochs: per point {r['per_point_s']:.1f} s, "
              f"batched {r['batched_s']:.2f} s, ratio {r['ratio']:.1f}x; successes {r['successes']}")
    print(f"load (1 min) before/after: {load_before:.1f}/{out['load_1min_after']:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
