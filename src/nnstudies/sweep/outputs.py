"""A sweep's files: every point (CSV), per series the rate vs size (CSV, a DVC plot), one PNG.

Nothing here holds a clock reading: the same points give the same bytes.
"""

from __future__ import annotations

from pathlib import Path

from nnstudies import atomic

RATE_COLUMNS = ["hid", "runs", "successes", "rate", "low", "high", "epochs_median"]


def rate_rows(sizes: dict) -> list[list]:
    return [[s["hid"], s["runs"], s["successes"], s["rate"], s["low"], s["high"],
             s["epochs_to_success"]["median"] if s["epochs_to_success"] else ""]
            for s in sizes.values()]


def write(plots: Path, metrics_path: Path, columns: list[str], results: list[dict],
          summary: dict, series: dict, title: str) -> None:
    """Plots first, the metrics file last: a sweep that fails on the way leaves no new metrics."""
    atomic.write_csv(plots / "points.csv", columns,
                     [["" if r[c] is None else r[c] for c in columns] for r in results])
    for name, sizes in series.items():
        csv = "rate.csv" if len(series) == 1 else f"rate_{name}.csv"
        atomic.write_csv(plots / csv, RATE_COLUMNS, rate_rows(sizes))
    atomic.save_figure(figure(series, title), plots / "rate.png",
                       metadata={"Software": None})  # no matplotlib version in the bytes
    atomic.write_json(metrics_path, summary)


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
