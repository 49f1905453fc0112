"""The sweeps in the report: how many hidden units does each task need?

Every sentence is computed from results/sweep_checker.json and results/sweep_seq.json: the
smallest size whose measured success rate reaches RELIABLE, with its 95% Wilson interval,
the size below it, and the smallest size that ever succeeded.
"""

from __future__ import annotations

from pathlib import Path

from nnstudies.report import inputs
from nnstudies.report.document import Figure, Figures, Heading, Para, Table

RELIABLE = 0.9  # "reliably learns": at least 90% of single runs succeed
SEQ_TASKS = {"reber": "Reber grammar", "anbn": "a^n b^n", "anbncn": "a^n b^n c^n"}


def pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def interval(size: dict) -> str:
    return f"{100 * size['low']:.0f}-{pct(size['high'])}"


def counted(size: dict) -> str:
    """'7 of 10 (70%, 95% interval 40-89%)'."""
    return f"{size['successes']} of {size['runs']} ({pct(size['rate'])}, 95% interval {interval(size)})"


def chance(x: float) -> str:
    return "<0.01%" if x < 1e-4 else f"{100 * x:.2g}%"


def epochs_text(size: dict) -> str:
    q = size["epochs_to_success"]
    if not q:
        return ""
    return f"; its successful runs took a median of {q['median']:,.0f} epochs (quartiles {q['q1']:,.0f}-{q['q3']:,.0f})"


def answer(task: str, sizes: dict) -> str:
    """The measured answer for one task, in sentences."""
    rows = sorted(sizes.values(), key=lambda s: s["hid"])
    reliable = [s for s in rows if s["rate"] >= RELIABLE]
    if reliable:
        first = reliable[0]
        text = (f"**{task}**: the smallest size that succeeded in at least {pct(RELIABLE)} of runs "
                f"is **hid = {first['hid']}**, {counted(first)}{epochs_text(first)}.")
        below = [s for s in rows if s["hid"] < first["hid"]]
        mentioned = below[-1:]
        if below:
            text += f" The next smaller size, hid = {below[-1]['hid']}: {counted(below[-1])}."
        dips = [s for s in rows if s["hid"] > first["hid"] and s["rate"] < RELIABLE]
        if dips:
            text += (" Not every larger size did as well: "
                     + "; ".join(f"hid = {s['hid']}: {counted(s)}" for s in dips) + ".")
    else:
        best = max(rows, key=lambda s: (s["rate"], -s["hid"]))
        text = (f"**{task}**: no size from hid = {rows[0]['hid']} to {rows[-1]['hid']} succeeded in "
                f"{pct(RELIABLE)} of runs; the best was hid = {best['hid']}, {counted(best)}"
                f"{epochs_text(best)}.")
        mentioned = [best]
    ever = [s for s in rows if s["successes"]]
    never = [s for s in rows if s["hid"] < ever[0]["hid"]] if ever else rows
    if never and never != mentioned:
        sizes = f"{never[0]['hid']}" + (f" to {never[-1]['hid']}" if len(never) > 1 else "")
        text += f" No run with hid {sizes} succeeded ({sum(s['runs'] for s in never)} runs)."
    return text


def single_run_text(sizes: dict, trained: dict) -> str:
    """The trained net of Part 2 against the sweep: one run at its size, and R restarts."""
    size = sizes.get(f"hid_{trained['hid']}")
    if size is None:
        return ""
    r = trained["restarts"]
    stuck = lambda p: (1 - p) ** r  # noqa: E731 - P(r independent runs all fail)
    return (f"The trained net of Part 2 has hid = {trained['hid']}: one run there succeeds in "
            f"{counted(size)}, so the chance that all its {r} restarts fail within this budget "
            f"is {chance(stuck(size['rate']))} ({chance(stuck(size['high']))} to "
            f"{chance(stuck(size['low']))} over the interval).")


def table_rows(task: str, sizes: dict) -> list[list]:
    rows = []
    for s in sorted(sizes.values(), key=lambda s: s["hid"]):
        q = s["epochs_to_success"]
        rows.append([task, s["hid"], f"{s['successes']}/{s['runs']}", pct(s["rate"]),
                     interval(s),
                     f"{q['median']:,.0f} ({q['q1']:,.0f}-{q['q3']:,.0f})" if q else "-"])
    return rows


def _bounds(success: dict) -> str:
    return " and ".join(f"{k} {'>=' if k == 'separation' else '<='} {v:g}" for k, v in success.items())


def section(metrics_dir: Path, results_dir: Path, plots_dir: Path) -> list:
    check = inputs.read_json(Path(results_dir) / "sweep_checker.json")
    seq = inputs.read_json(Path(results_dir) / "sweep_seq.json")
    trained = inputs.read_json(Path(results_dir) / "train_checker.json")["settings"]
    blocks: list = [
        Heading(2, "How many hidden units does each task need?"),
        Para("The runs above keep the best of many restarts. Here each size is trained from "
             "many seeds, **one run per seed** as the course runs it, and the share of runs "
             "that succeed is counted, with its 95% Wilson interval (`sweep_checker`, "
             "`sweep_seq`; each run is an MLflow run, child of its sweep's run). "
             f"Checkerboard: {check['seeds']} seeds per size, at most {check['max_epochs']:,} "
             f"epochs, success = the course's rule (100% for {check['patience']:,} consecutive "
             f"epochs). Recurrent nets (SRN): {seq['seeds']} seeds per size; "
             + "; ".join(f"{label}: {seq[t]['epochs']:,} epochs, success = {_bounds(seq[t]['success'])}"
                         for t, label in SEQ_TASKS.items())
             + f" on the evaluation set after the last epoch; epochs to success: the first "
               f"evaluation (every {seq['eval_every']:,} epochs) at which they held."),
        Para(answer("Checkerboard MLP", check["sizes"]) + " "
             + single_run_text(check["sizes"], trained)),
    ]
    blocks += [Para(answer(label, seq[t]["sizes"])) for t, label in SEQ_TASKS.items()]
    rows = table_rows("checkerboard", check["sizes"])
    for t in SEQ_TASKS:
        rows += table_rows(t, seq[t]["sizes"])
    blocks += [
        Table(["task", "hid", "succeeded", "rate", "95% interval", "epochs to success: median (quartiles)"],
              rows, caption="Success rate of one run per seed, per network size."),
        Figures([Figure(plots_dir / "sweep_checker" / "rate.png", "checkerboard MLP"),
                 Figure(plots_dir / "sweep_seq" / "rate.png", "SRNs on the three grammars")]),
    ]
    return blocks
