"""A sweep as one stage's outputs: its points run on Dask, counted per size.

Files: every point (points.csv), per series the rate vs size (rate.csv or rate_<name>.csv,
drawn by dvc.yaml's top-level plots) and one PNG.  Metrics: per series and size the runs,
successes, rate, its 95% Wilson interval and the epochs to success; results: the same with
the sweep's settings and the CPU paths the points ran on (one on the strict path; on the host
path, one per kind of worker machine).  Each point is an MLflow child run of the stage's run,
with its timing and its worker's machine (the files hold no clock reading and no host: the
same points give the same bytes).
"""

from __future__ import annotations

import json
from types import ModuleType

from nnstudies.outputs import Outputs, Table
from nnstudies.sweep import cluster

RATE_COLUMNS = ["hid", "runs", "successes", "rate", "low", "high", "epochs_median"]
TITLES = {"checker": "Checkerboard MLP: one run per seed", "seq": "SRNs: one run per seed"}


def stage(study: ModuleType, name: str, label: str, p: dict, log_metrics) -> Outputs:
    """Run every point of ``study`` (sweep.checker or sweep.seq) on the configured cluster."""
    with cluster.connect(p["sweep"]["scheduler"], p["sweep"]["workers"]) as client:
        jobs = study.jobs(p, cluster.sharer(client))
        print(f"{label}: {len(jobs)} points on {cluster.describe(client)}", flush=True)
        outcomes = cluster.run(client, jobs, label)
    results = [result for result, _ in outcomes]
    summary = study.summarize(p, results)
    series = study.series(summary)
    for key, sizes in series.items():
        for s in sizes.values():
            log_metrics({f"{key}.rate": s["rate"], f"{key}.low": s["low"],
                         f"{key}.high": s["high"]}, s["hid"])
    children = [{"name": f"{label} {job.name}", "params": job.point,
                 "metrics": {**{k: v for k, v in result.items()
                                if isinstance(v, (int, float)) and not isinstance(v, bool)},
                             "seconds": timing["seconds"], "cpu_seconds": timing["cpu_seconds"]},
                 "tags": {"dask.worker": timing["worker"], **timing["host"]},
                 "start_ms": timing["start_ms"], "end_ms": timing["end_ms"]}
                for job, (result, timing) in zip(jobs, outcomes)]
    files = {"points.csv": Table(study.COLUMNS, [["" if r[c] is None else r[c] for c in study.COLUMNS]
                                                 for r in results])}
    for key, sizes in series.items():
        files["rate.csv" if len(series) == 1 else f"rate_{key}.csv"] = Table(RATE_COLUMNS,
                                                                           rate_rows(sizes))
    files["rate.png"] = lambda: figure(series, TITLES[name])
    paths = {json.dumps(timing["cpu_path"], sort_keys=True) for _, timing in outcomes}
    return Outputs(metrics=rates(summary), files=files, children=children,
                   results={**summary, "cpu_paths": [json.loads(t) for t in sorted(paths)]})


def rates(summary: dict) -> dict:
    """The summary without the sweep's settings: per size (``sizes``), for each series."""
    return {k: v if k == "sizes" else rates(v) for k, v in summary.items()
            if isinstance(v, dict) and (k == "sizes" or "sizes" in v)}


def rate_rows(sizes: dict) -> list[list]:
    return [[s["hid"], s["runs"], s["successes"], s["rate"], s["low"], s["high"],
             s["epochs_to_success"]["median"] if s["epochs_to_success"] else ""]
            for s in sizes.values()]


def figure(series: dict, title: str):
    """Success rate vs hidden units with 95% Wilson intervals, one line per series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    offsets = [0.06 * (i - (len(series) - 1) / 2) for i in range(len(series))]  # bars apart
    for offset, (name, sizes) in zip(offsets, series.items()):
        s = list(sizes.values())
        x = [v["hid"] + offset for v in s]
        rate = [v["rate"] for v in s]
        ax.errorbar(x, rate, yerr=[[r - v["low"] for r, v in zip(rate, s)],
                                   [v["high"] - r for r, v in zip(rate, s)]],
                    marker="o", capsize=3, label=name)
    ax.set(xlabel="hidden units (hid)", ylabel="success rate (95% Wilson interval)",
           ylim=(-0.03, 1.03), title=title)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    return fig
