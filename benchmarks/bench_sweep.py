"""The same checkerboard sweep serial vs on a Dask LocalCluster of 2 workers, in one run.

    OMP_NUM_THREADS=1 python benchmarks/bench_sweep.py --json benchmarks/bench_sweep.json

1. serial: every point one after another in this process (cluster.run_serial, no Dask).
2. LocalCluster, 2 single-threaded worker processes: started (timed apart), warmed up as the
   serial process is (a tiny point each: torch and its optimiser's lazy imports), then the
   same points through cluster.run.  Ratio = serial wall / Dask wall (2 on 2 idle cores at
   best); the results must be identical.  The points' CPU time over their wall time on the
   workers says how much of the cores they got: on a shared machine, less than 100%.
3. Dask's cost per point: (a) the worker time a point costs beyond its own computation,
   (workers x wall - sum of the points' own seconds) / points, which includes scheduling,
   (de)serialisation, the result's trip back and any idle tail; (b) the round trip of no-op
   points through the same cluster.run (its latency per point, both workers busy).

Not a test: it prints a table (and writes the numbers as JSON with --json).  Run it on a quiet
machine: other jobs on the 2 cores show up as a lower ratio.
"""

import argparse
import json
import os
import platform
import time

from nnstudies import cli, params
from nnstudies.sweep import checker, cluster


def noop(point: dict) -> dict:
    return {"hid": point["hid"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hids", default="2,3,4,5,6,7,8")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--noop-points", type=int, default=500)
    parser.add_argument("--json")
    args = parser.parse_args()
    cli.torch_threads()
    p = params.load(checker.KEYS)  # the course settings of `checker.train`
    p["sweep"]["checker"] = {"hids": [int(h) for h in args.hids.split(",")], "seeds": args.seeds,
                           "max_epochs": args.max_epochs}
    jobs = checker.jobs(p)
    n = len(jobs)
    print(f"{n} points: hid {args.hids} x {args.seeds} seeds, max_epochs {args.max_epochs}", flush=True)

    load_before = os.getloadavg()[0]
    cluster.call(jobs[0].fn, {**jobs[0].point, "max_epochs": 2})  # warm, as the workers below
    clock = time.perf_counter()
    serial = cluster.run_serial(jobs, "serial")
    serial_s = time.perf_counter() - clock

    clock = time.perf_counter()
    with cluster.connect("local", args.workers) as client:
        startup_s = time.perf_counter() - clock
        # Warm each worker as the serial run's process is warm by then: torch imported, and its
        # optimiser's lazy imports done by a first (tiny) run.
        client.run(cluster.call, jobs[0].fn, {**jobs[0].point, "max_epochs": 2})
        clock = time.perf_counter()
        dask = cluster.run(client, jobs, "dask")
        dask_s = time.perf_counter() - clock
        noops = [cluster.Job("noop", {"hid": i}, noop) for i in range(args.noop_points)]
        clock = time.perf_counter()
        cluster.run(client, noops, "noop", every=1e9)
        noop_s = time.perf_counter() - clock
    assert [r for r, _ in serial] == [r for r, _ in dask], "the results differ"

    point_s = {"serial": sum(t["seconds"] for _, t in serial), "dask": sum(t["seconds"] for _, t in dask)}
    cpu_s = {"serial": sum(t["cpu_seconds"] for _, t in serial),
             "dask": sum(t["cpu_seconds"] for _, t in dask)}
    out = {
        "points": n, "hids": args.hids, "seeds": args.seeds, "max_epochs": args.max_epochs,
        "workers": args.workers, "cores": cluster.cores(), "cpu": platform.processor() or platform.machine(),
        "load_1min_before": load_before, "load_1min_after": os.getloadavg()[0],
        "serial_s": serial_s, "dask_s": dask_s, "ratio": serial_s / dask_s,
        "cluster_startup_s": startup_s,
        "points_own_s": point_s, "points_cpu_s": cpu_s,
        # What the ratio would be with the cores to itself: the points' CPU time over their
        # wall time on the workers says how much of the cores the workers got.
        "worker_cpu_share": cpu_s["dask"] / point_s["dask"],
        "overhead_per_point_ms": 1000 * (args.workers * dask_s - point_s["dask"]) / n,
        "noop_round_trip_ms": 1000 * noop_s / args.noop_points,
        "successes": sum(r["success"] for r, _ in serial),
    }
    rows = [("serial wall", f"{serial_s:.1f} s"), (f"LocalCluster ({args.workers} workers) wall", f"{dask_s:.1f} s"),
            ("ratio", f"{out['ratio']:.2f}x"), ("cluster startup (not in the wall)", f"{startup_s:.1f} s"),
            ("points' own wall time, serial / on workers", f"{point_s['serial']:.1f} s / {point_s['dask']:.1f} s"),
            ("points' CPU time, serial / on workers", f"{cpu_s['serial']:.1f} s / {cpu_s['dask']:.1f} s"),
            ("CPU share the workers got while in a point", f"{out['worker_cpu_share']:.0%}"),
            ("load average (1 min) before / after", f"{load_before:.1f} / {out['load_1min_after']:.1f}"),
            ("worker time per point beyond the point", f"{out['overhead_per_point_ms']:.0f} ms"),
            (f"no-op point round trip ({args.noop_points} points)", f"{out['noop_round_trip_ms']:.1f} ms")]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    cli.run(main)
