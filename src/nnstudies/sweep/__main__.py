"""Rerun sweep points alone, with the settings of ./params.yaml.

    python -m nnstudies.sweep checker --hid 4 --seed 7          # one point: its result (JSON)
    python -m nnstudies.sweep seq --task anbn --hid 2 --seed 3
    python -m nnstudies.sweep check --points 3                  # is the point cache stale?

One point: the same function, settings and seed as in the sweep, so the same result as its
line in points/sweep_<study>.jsonl (each lane of a batch trains as if alone); an error shows
its full traceback.  ``check`` recomputes a few cached points of each sweep (one that
succeeded, one that did not, the last) and of the KMNIST seeds (NetLin's), and fails, one line
per point, where one moved by more than its kind's tolerance (gates.yaml ``tolerance``,
``points/*`` rules): a stale cache.
"""

from __future__ import annotations

import argparse
import json

from nnstudies import cli, gates, layout, params
from nnstudies.errors import UserError
from nnstudies.sweep import cache, checker, cluster, seq

STUDIES = {"checker": (checker, "sweep_checker"), "seq": (seq, "sweep_seq")}


def alone(study, pt: dict) -> dict:
    """One point trained in a batch of its own, here (no Dask)."""
    (job,) = study.batches([pt], 1, cluster.sharer())  # no Dask: shared inputs made here
    results, _ = cluster.call(job.fn, job.point, *job.args)
    return results[0]


def find(study, p: dict, hid: int, seed: int, task: str | None) -> dict:
    p["sweep"]["seeds"] = max(p["sweep"]["seeds"], seed + 1)
    for pt in study.points(p):
        if pt["hid"] == hid and pt["seed"] == seed and pt.get("task") == task:
            return pt
    return {**next(pt for pt in study.points(p) if pt.get("task") == task), "hid": hid,
            "seed": seed}  # a size the sweep does not list: the same settings


def picks(entries: list[tuple[dict, dict]], count: int) -> list[tuple[dict, dict]]:
    """Up to ``count`` cached (point, result) pairs: the first success, the first failure (the
    longest task comes first), then the last point."""
    chosen = []
    for want, order in ((lambda r: r.get("success"), entries),
                        (lambda r: not r.get("success", True), entries),
                        (lambda r: True, entries[::-1])):
        pair = next((e for e in order if want(e[1]) and e not in chosen), None)
        if pair and len(chosen) < count:
            chosen.append(pair)
    return chosen


def _studies(path: str):
    """(study, stage, params, points to pick from, fields compared) of every cached study:
    the sweeps (every field), and the KMNIST seeds (NetLin only: seconds, not minutes)."""
    for study, stage in STUDIES.values():
        yield study, stage, params.load(study.KEYS, path), lambda pt: True, None
    from nnstudies.kmnist import data, seeds

    if layout.KMNIST_DATA.is_dir():
        study = seeds.Study(str(layout.KMNIST_DATA.resolve()), data.md5s(layout.KMNIST_DATA))
        yield (study, "seeds_kmnist", params.load(["kmnist", "sweep"], path),
               lambda pt: pt["net"] == "lin", ("test_accuracy", "test_loss", "train_loss"))


def check(path: str, count: int) -> int:
    contract, failed = gates.tolerances("gates.yaml"), 0
    for study, stage, p, wanted, fields in _studies(path):
        store = cache.PointCache(layout.sweep_points(stage), cache.code_hash(study.CODE))
        entries = [(pt, store.get(pt)) for pt in study.points(p)
                   if wanted(pt) and store.get(pt) is not None]
        if not entries:
            print(f"{stage}: no cached point of the current params to check")
            continue
        for pt, old in picks(entries, count):
            new = alone(study, pt)
            file = str(layout.sweep_points(stage))
            diff = {file: {k: {"old": old[k], "new": new[k]} for k in fields or old}}
            _, moves = gates.compare(diff, contract)
            bad = [m for m in moves if not m.ok]
            where = " ".join(f"{k}={pt[k]}" for k in ("task", "net", "hid", "seed") if k in pt)
            if bad:
                failed += 1
                print(f"{stage} {where}: stale: " + "; ".join(
                    f"{m.metric} {m.old} -> {m.new} ({m.change}, tolerance {m.tolerance})"
                    for m in bad))
            else:
                print(f"{stage} {where}: recomputed, within tolerance "
                      f"({len(moves)} value(s) moved)")
    if failed:
        raise UserError(f"{failed} cached sweep point(s) differ from a recomputation beyond "
                        "tolerance: delete their points/*.jsonl file and rerun the stage")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nnstudies.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", choices=[*STUDIES, "check"])
    parser.add_argument("--task", choices=seq.TASKS, help="seq only")
    parser.add_argument("--hid", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--points", type=int, default=3, help="check: points per sweep")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    if args.study == "check":
        return check(args.params, args.points)
    if args.hid is None or args.seed is None:
        parser.error("a point needs --hid and --seed")
    if args.study == "seq" and not args.task:
        parser.error("seq needs --task")
    if not 1 <= args.hid <= 64 or args.seed < 0:
        parser.error("--hid must be 1..64 and --seed >= 0")
    study = STUDIES[args.study][0]
    p = params.load(study.KEYS, args.params)
    print(json.dumps(alone(study, find(study, p, args.hid, args.seed, args.task))))
    return 0


if __name__ == "__main__":
    cli.run(main)
