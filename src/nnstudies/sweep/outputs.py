"""A sweep as one stage's outputs: its points, from the point cache (sweep.cache) or trained in
batches on Dask, counted per size, with what the counts support (sweep.stats.conclude).

Files: every point (points.csv), per series the rate vs size (rate.csv or rate_<name>.csv,
drawn by dvc.yaml's top-level plots) and one PNG.  Metrics: per series and size the runs,
successes, rate, its 95% Wilson interval and the epochs to success; results: the same with
the sweep's settings and the CPU paths the points ran on (one on the strict path; on the host
path, one per kind of worker machine).  Each batch trained is an MLflow child run of the
stage's run, with its timing and its worker's machine (the files hold no clock reading and no
host: the same points give the same bytes).
"""

from __future__ import annotations

from types import ModuleType

from nnstudies.outputs import Outputs, Table
from nnstudies.sweep import engine

RATE_COLUMNS = ["hid", "runs", "successes", "rate", "low", "high", "epochs_median"]
TITLES = {"checker": "Checkerboard MLP: one run per seed", "seq": "SRNs: one run per seed"}


def stage(study: ModuleType, name: str, label: str, p: dict, log_metrics) -> Outputs:
    """Every point of ``study`` (sweep.checker or sweep.seq) through the points engine, counted
    per size, with what the counts support."""
    done = engine.run(study, label, p, p["sweep"]["batch"])
    summary = study.summarize(p, done.results)
    series = study.series(summary)
    for key, sizes in series.items():
        for s in sizes.values():
            log_metrics({f"{key}.rate": s["rate"], f"{key}.low": s["low"],
                         f"{key}.high": s["high"]}, s["hid"])
    trained = sum(len(job.points) for job, _ in done.trained)
    log_metrics({"points_trained": trained, "points_cached": len(done.points) - trained}, 0)
    children = [{**child, "metrics": {**child["metrics"],
                                      "successes": sum(r["success"] for r in batch)}}
                for child, (_, (batch, _)) in zip(done.children, done.trained)]
    files = {"points.csv": Table(study.COLUMNS, [["" if r[c] is None else r[c] for c in study.COLUMNS]
                                                 for r in done.results])}
    for key, sizes in series.items():
        files["rate.csv" if len(series) == 1 else f"rate_{key}.csv"] = Table(RATE_COLUMNS,
                                                                           rate_rows(sizes))
    files["rate.png"] = lambda: figure(series, TITLES[name], _budget(summary))
    return Outputs(metrics=rates(summary), files=files, children=children,
                   results={**summary, "cpu_paths": done.cpu_paths})


def _budget(summary: dict) -> str:
    """'35 seeds per size; 200,000 epochs' for the plot's subtitle."""
    epochs = summary.get("max_epochs") or ", ".join(
        f"{k} {v['epochs']:,}" for k, v in summary.items() if isinstance(v, dict) and "epochs" in v)
    return f"{summary['seeds']} seeds per size; epochs: {epochs}" if not isinstance(epochs, int) \
        else f"{summary['seeds']} seeds per size; {epochs:,} epochs each"


def rates(summary: dict) -> dict:
    """The summary without the sweep's settings: per size (``sizes``) and what they support
    (``conclusion``), for each series."""
    return {k: v if k in ("sizes", "conclusion") else rates(v) for k, v in summary.items()
            if isinstance(v, dict) and (k in ("sizes", "conclusion") or "sizes" in v)}


def rate_rows(sizes: dict) -> list[list]:
    return [[s["hid"], s["runs"], s["successes"], s["rate"], s["low"], s["high"],
             s["epochs_to_success"]["median"] if s["epochs_to_success"] else ""]
            for s in sizes.values()]


def figure(series: dict, title: str, budget: str):
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
           ylim=(-0.03, 1.03), title=f"{title}\n{budget}")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    return fig
