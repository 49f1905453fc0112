"""Rerun one sweep point alone, with the settings of ./params.yaml; prints its result (JSON).

    python -m nnstudies.sweep checker --hid 4 --seed 7
    python -m nnstudies.sweep seq --task anbn --hid 2 --seed 3

The same function, settings and seed as in the sweep, so the same result as the sweep's
plots/sweep_<study>/points.csv row (timings aside); an error shows its full traceback.
"""

from __future__ import annotations

import argparse
import json

from nnstudies import cli, params
from nnstudies.sweep import checker, cluster, seq


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nnstudies.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", choices=["checker", "seq"])
    parser.add_argument("--task", choices=seq.TASKS, help="seq only")
    parser.add_argument("--hid", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    if args.study == "seq" and not args.task:
        parser.error("seq needs --task")
    if not 1 <= args.hid <= 64 or args.seed < 0:
        parser.error("--hid must be 1..64 and --seed >= 0")
    study = checker if args.study == "checker" else seq
    p = params.load(study.KEYS, args.params)
    # The sweep's own job list, restricted to the one point: nothing is rebuilt by hand.
    if args.study == "checker":
        p["sweep"]["checker"].update(hids=[args.hid], seeds=args.seed + 1)
    else:
        p["sweep"]["seq"][args.task]["hids"] = [args.hid]
        p["sweep"]["seq"]["seeds"] = args.seed + 1
    share = cluster.sharer()  # no Dask: the grammar is made here
    todo = checker.jobs(p) if study is checker else seq.jobs(p, share, tasks=[args.task])
    job = next(j for j in todo if j.point["hid"] == args.hid and j.point["seed"] == args.seed)
    result, _ = cluster.call(job.fn, job.point, *job.args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    cli.run(main)
