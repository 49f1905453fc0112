"""The sweeps in the report: how many hidden units does each task need?

Every sentence is computed from results/sweep_checker.json and results/sweep_seq.json: per
task the smallest size whose 95% Wilson lower bound clears the sweep's threshold, the size
below it, and which neighbouring sizes an exact test tells apart (sweep.stats.conclude).
"""

from __future__ import annotations

from pathlib import Path

from nnstudies.report import inputs
from nnstudies.report.document import Figure, Figures, Heading, Lead, Para, Table

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
    return f"; median epochs to success {q['median']:,.0f} (quartiles {q['q1']:,.0f}-{q['q3']:,.0f})"


def _pvalue(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def answer(task: str, sizes: dict, conclusion: dict) -> str:
    """The answer for one task, in sentences, from the sweep's conclusion: the smallest size
    whose 95% lower bound clears the threshold, and which neighbouring sizes differ."""
    rows = sorted(sizes.values(), key=lambda s: s["hid"])
    threshold = conclusion["threshold"]
    if conclusion.get("smallest") is not None:
        first = sizes[f"hid_{conclusion['smallest']}"]
        text = (f"**{task}**: **hid = {first['hid']}** is the smallest size shown to succeed in "
                f"at least {pct(threshold)} of runs (95% lower bound >= {threshold:g}): "
                f"{counted(first)}{epochs_text(first)}.")
        below = [s for s in rows if s["hid"] < first["hid"]]
        if below:
            text += f" Next smaller, hid = {below[-1]['hid']}: {counted(below[-1])}."
    else:
        best = max(rows, key=lambda s: (s["low"], -s["hid"]))
        text = (f"**{task}**: no size from hid = {rows[0]['hid']} to {rows[-1]['hid']} is shown to "
                f"succeed in {pct(threshold)} of runs at 95% confidence; the highest lower bound "
                f"is hid = {best['hid']}'s, {counted(best)}{epochs_text(best)}.")
    pairs = conclusion["neighbours"]
    apart = [n for n in pairs if n["distinguishable"]]
    same = [n for n in pairs if not n["distinguishable"]]
    if pairs:
        text += " Neighbours told apart (Fisher exact, Holm): " + (
            ", ".join(f"hid {n['smaller']} vs {n['larger']} (p = {_pvalue(n['p_holm'])})"
                      for n in apart) if apart else "none")
        if same and apart:
            text += "; not: " + ", ".join(f"{n['smaller']} vs {n['larger']}" for n in same)
        text += "."
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


def hand_text(sizes: dict, hand: dict) -> str:
    """A solution of the hand design's width exists; how often does one random run find one?"""
    width = len(hand["design"]["hid_bias"])
    size = sizes.get(f"hid_{width}")
    if size is None:
        return ""
    exists = ("a solution with that many units exists (the hand design classifies all nine "
              "points), yet" if hand["step"]["correct"] == 9 else "the hand design does not "
              "classify all nine points; and")
    return (f"At hid = {width}, the hand-designed net's width, {exists} single random runs reach "
            f"one in {counted(size)}.")


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
    threshold = check["conclusion"]["threshold"]
    blocks: list = [
        Heading(2, "How many hidden units does each task need?"),
        Para("The runs above keep the best of many restarts. Here each size is trained from "
             f"{check['seeds']} seeds, fixed in advance, **one run per seed** as the course runs "
             "it, at the course's budgets, and the share of runs that succeed is counted with "
             "its 95% Wilson interval (`sweep_checker`, `sweep_seq`). A size is said to learn a "
             f"task reliably when that interval's lower bound is at least {threshold:g}. "
             f"Checkerboard: at most {check['max_epochs']:,} epochs, success = the course's rule "
             f"(100% for {check['patience']:,} consecutive epochs). Recurrent nets (SRN): "
             + "; ".join(f"{label}: {seq[t]['epochs']:,} epochs, success = {_bounds(seq[t]['success'])}"
                         for t, label in SEQ_TASKS.items())
             + f" on the validation set at every evaluation (every {seq['eval_every']:,} epochs) "
               f"in the last {pct(seq['success_window'])} of the epochs, the rule of the "
               "trained nets above; epochs to success: the evaluation from which they held. "
               "Neighbouring sizes are compared by the two-sided Fisher exact test, "
               "Holm-adjusted over the pairs of one task, and told apart where p < 0.05."),
        Lead(Para(answer("Checkerboard MLP", check["sizes"], check["conclusion"]))),
        Para(single_run_text(check["sizes"], trained)),
        Para(hand_text(check["sizes"], inputs.read_json(Path(results_dir) / "hand_checker.json"))),
    ]
    blocks += [Lead(Para(answer(label, seq[t]["sizes"], seq[t]["conclusion"])))
               for t, label in SEQ_TASKS.items()]
    rows = table_rows("checkerboard", check["sizes"])
    for t in SEQ_TASKS:
        rows += table_rows(t, seq[t]["sizes"])
    blocks += [
        Table(["task", "hid", "succeeded", "rate", "95% interval", "epochs to success: median (quartiles)"],
              rows, caption="Success rate of one run per seed, per network size."),
        Lead(Figures([Figure(plots_dir / "sweep_checker" / "rate.png", "checkerboard MLP"),
                      Figure(plots_dir / "sweep_seq" / "rate.png", "SRNs on the three grammars")])),
    ]
    return blocks
