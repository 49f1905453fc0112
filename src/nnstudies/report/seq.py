"""Study 3 of the report: hidden-unit dynamics of the recurrent nets (the seed's Part 3).

Every sentence is computed from ``results/`` and ``metrics/`` of train_seq and plot_seq (and
shows figures under ``plots/``); where the data disagrees with the seed report's reading,
the sentence says so.  The seed's readings are quoted in ``SEED`` (they are what is checked,
not knobs).
"""

from __future__ import annotations

from pathlib import Path

from nnstudies.report import inputs
from nnstudies.report.document import Figure, Figures, Heading, Lead, Para, Table
from nnstudies.report.targets import Targets, verdict

TASKS = {  # task -> (the seed's question, title)
    "reber": ("Q1", "SRN on the Reber grammar"),
    "anbn": ("Q2", "SRN on a^n b^n"),
    "anbncn": ("Q3", "SRN on a^n b^n c^n"),
    "ereber": ("Q4", "LSTM on the embedded Reber grammar"),
}

# What the seed report read off its plots and prints, checked below against the measurements.
SEED = {
    # Q1: "State 1 is associated with the color 'Blue'", ...
    "legend": {1: "blue", 2: "light blue", 3: "green", 4: "yellow", 5: "orange", 6: "brown"},
    # Q2: a's "clustered around the point (-1,-1)", b's "around the point (1,1)": opposite
    # corners; Q3: a's and c's activations "generally clustered around negative values": the
    # same side.  (phase, phase, same side?)
    "sides": {"anbn": ("A", "B", False), "anbncn": ("A", "C", True)},
    "seed_words": {"anbn": "the A's around (-1, -1) and the B's around (1, 1)",
                   "anbncn": "the A's and the C's both around negative values"},
    # Q4: "The changes between B and P are not too drastic ... changes between ... S and S
    # have higher magnitudes".
    "small_change": "BP", "large_change": "SS",
    # Q4: "I decided to use 5 hidden units instead of 4"
    "lstm_hid": 5,
}
PHASE_WORD = {"read so far": "counts the {ch}'s read so far",
              "still to come": "counts down the {ch}'s still to come"}
# The report says "unit k counts" only where that unit alone follows the count this closely
# (|r| >= 0.9, a wording rule of this report); below it, the count is not one unit's.
ONE_UNIT_R = 0.9


def read(folder: Path, name: str) -> dict:
    return inputs.read_json(Path(folder) / f"{name}.json")


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def num(x, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def vec(values, digits: int = 2) -> str:
    return "(" + ", ".join(f"{v:+.{digits}f}" for v in values) + ")"


def section(metrics_dir: Path, results_dir: Path, plots_dir: Path, targets: Targets) -> list:
    blocks: list = [Heading(2, "Part 3: Hidden-unit dynamics of recurrent networks")]
    runs = {t: {"train": read(results_dir, f"train_seq_{t}"),
                "train_m": read(metrics_dir, f"train_seq_{t}"),
                "plot": read(results_dir, f"plot_seq_{t}"),
                "plot_m": read(metrics_dir, f"plot_seq_{t}")} for t in TASKS}
    blocks += overview(runs, targets)
    for task, (question, title) in TASKS.items():
        r = runs[task]
        blocks += [Heading(3, f"{question}. {title}"),
                   Lead(Para(training(r["train"], r["train_m"], r["plot"])))]
        figures = plots_dir / f"plot_seq_{task}"
        if task == "reber":
            blocks += reber(r["plot"], r["plot_m"], figures)
        elif task == "ereber":
            blocks += ereber(r["train"], r["plot"], r["plot_m"], figures)
        else:
            blocks += counter(task, r["plot"], r["plot_m"], figures)
            blocks += gating_note(task, r["plot_m"], targets)
        blocks += diagnostic(r["train"])
    return blocks


def overview(runs: dict, targets: Targets) -> list:
    rows = []
    for task, r in runs.items():
        t, m = r["train"], r["train_m"]
        file = f"metrics/train_seq_{task}.json"
        rows.append([TASKS[task][1], f"{t['model']} {t['hid']}", f"{t['epochs']:,}",
                     f"{t['succeeded']}/{t['restarts']}", t["kept_restart"],
                     num(m["test"].get("error")), num(m["test"].get("final")),
                     verdict(targets, file, "test.final" if "final" in m["test"] else "test.error")])
    first = next(iter(runs.values()))["train"]
    s = first["settings"]
    data = first["data"]
    text = (f"Every task trains **{first['restarts']} restarts** side by side (random "
            f"initialisations, seed {s['seed']}), each on one fresh sequence per epoch, with "
            f"{s['optim']} at learning rate {s['lr']:g} and weight decay {s['weight_decay']:g}; "
            f"SRN weights start from N(0, {s['init']:g}) and the LSTM's from "
            f"U(-1/sqrt(hid), 1/sqrt(hid)), as in the course. A restart succeeds when it meets its "
            f"task's bounds on the {first['success_split']} split ({data['validation_sequences']} "
            f"sequences) at every evaluation (every {s['log_every']:,} epochs) in the last "
            f"{first['success_window']['share']:.0%} of its epochs, the course's \"consistently\" "
            f"(the sweeps use the same rule); the kept restart is the one with the "
            f"{first['selection']} among those that succeeded; errors are "
            f"measured on {data['test_sequences']} held-out test sequences, drawn apart from the "
            f"training and validation ones (held out as draws, not as strings: a short Reber "
            f"string such as BTXSE also occurs in training) (error: mean squared difference "
            f"between the predicted and the true next-symbol probabilities).")
    return [Para(text), Table(["task", "net, hidden units", "epochs", "restarts succeeded",
                               "kept restart", "test error", "test final", "bound (course or project)"],
                              rows, caption="Part 3 at a glance (test split).")]


def training(train: dict, metrics: dict, plot: dict) -> str:
    bounds = ", ".join(f"{k} {'>=' if k == 'separation' else '<='} {v:g}"
                       for k, v in train["success_bounds"].items())
    window = train["success_window"]
    worst = window["kept_worst"]
    text = (f"{train['model'].upper()} with {train['hid']} hidden units, {train['epochs']:,} "
            f"epochs: **{train['succeeded']} of {train['restarts']} restarts** met the bounds "
            f"({bounds}) on {train['success_split']} at every evaluation from epoch "
            f"{window['from_epoch']:,} on; restart {train['kept_restart']} is kept"
            + (f" (over those {worst['evaluations']} evaluations its validation "
               + ", ".join(f"{k} was at worst {num(v)}" for k, v in worst.items()
                           if k in train["success_bounds"])
               + ")" if worst.get("evaluations") else "")
            + f". On the test split its error is **{num(metrics['test'].get('error'))}**")
    if metrics["test"].get("final") is not None:
        text += f" and its final error (the closing T/P) **{num(metrics['test']['final'])}**"
    if train["model"] == "lstm":
        seed_hid = SEED["lstm_hid"]
        text += (f". The seed chose {seed_hid} hidden units, one more than the course's LSTM "
                 "example of 4, because the embedded grammar \"may need a higher network "
                 "capacity\"" + ("; this run keeps that" if train["hid"] == seed_hid else
                                 f"; this run uses {train['hid']}"))
    text += (f". The analysis below runs the net of epoch {plot['epoch']:,} (restart "
             f"{plot['restart']}, the kept one there) over all {plot['sequences']} test "
             f"sequences; figures show the first {plot['shown_sequences']}.")
    return text


# ---- Q1 ------------------------------------------------------------------------------------

def _same_colour(ours: str, seed: str) -> bool:
    """'orange' names 'orange-red', 'brown' names 'dark red (brown)'."""
    words = ours
    for c in "()-":
        words = words.replace(c, " ")
    return set(seed.split()) <= set(words.split())


def reber(plot: dict, metrics: dict, figures: Path) -> list:
    legend = plot["legend"]
    seed = SEED["legend"]
    named = [row for row in legend if row["state"] in seed]
    agree = [row["state"] for row in named if _same_colour(row["name"], seed[row["state"]])]
    differ = [f"state {row['state']} is {row['name']}, the seed says {seed[row['state']]}"
              for row in named if row["state"] not in agree]
    colours = "; ".join(f"state {row['state']}: {row['name']} ({row['colour']})" for row in legend)
    text = (f"**Colour to state** (the colour scale runs over states 0 to 6): {colours}. "
            f"This matches the seed's legend for {len(agree)} of {len(named)} states"
            + (f"; it differs where {', '.join(differ)}." if differ else "."))
    sep = metrics["separation"]
    text2 = (f"The seed assumes that points clustered together belong to the same state: "
             f"measured, {pct(sep)} of the test hidden vectors lie nearest their own state's "
             f"centroid (silhouette {num(plot['silhouette'], 2)}), so the assumption "
             + ("holds." if sep >= 0.99 else "holds only in part." if sep >= 0.8 else
                "does not hold."))
    trans = plot["transitions"]
    wrong = [t for t in trans if t["read_back"] != t["to"]]
    loops = [t for t in trans if t["from"] == t["to"]]
    loops_ok = [t for t in loops if t["read_back"] == t["to"]]
    self_loops = ", ".join(f"{t['symbol']} on state {t['from']}" for t in loops)
    exits = "; ".join(f"{e['symbol']} from state {e['from']} ({e['times']} strings)"
                      for e in plot["exits"])
    text3 = (f"**The machine read back from the hidden space** (each hidden vector assigned "
             f"its nearest state centroid; for every state and symbol, the cluster reached most "
             f"often) reproduces **{pct(metrics['machine_agreement'])}** of the "
             f"{sum(t['times'] for t in trans):,} transitions of the test strings: "
             f"{len(trans) - len(wrong)} of its {len(trans)} arrows are the true machine's"
             + (", " + ", ".join(f"{t['from']} -{t['symbol']}-> {t['read_back']} instead of "
                                 f"{t['to']}" for t in wrong) + " differ" if wrong else "")
             + f". The self-loops ({self_loops}) read back as loops for {len(loops_ok)} of "
             f"{len(loops)}; the exit is {exits}, drawn as an arrow out of the machine (no "
             "hidden vector follows the last symbol).")
    return [Lead(Para(text3)), Para(text), Para(text2),
            Table(["state", "colour", "name", "seed's colour", "centroid (unit 0, unit 1)",
                   "test vectors"],
                  [[row["state"], row["colour"], row["name"], seed.get(row["state"], "-"),
                    vec(row["centroid"]), row["points"]] for row in legend]),
            Lead(Figures([Figure(figures / "states.png", "Reber: hidden units coloured by state"),
                          Figure(figures / "machine.png",
                                 "Reber: the state machine read back from the hidden space")]))]


# ---- Q2, Q3 --------------------------------------------------------------------------------

def gating_note(task: str, metrics: dict, targets: Targets) -> list:
    """Where a counter's readings carry no bound, say so and why, with the numbers that a
    one-unit reading's bounds (those set for another task) would judge."""
    file = f"metrics/plot_seq_{task}.json"
    if file in targets:
        return []
    bounded = {(f, m): t.row.gate.bound_text() for f, ms in targets.items() for m, t in ms.items()
               if f.startswith("metrics/plot_seq_") and m in ("phase_separation", "end_accuracy.B")}
    if not bounded:
        return [Para(f"`plot_seq_{task}` is not gated: no bound is set for its readings.")]
    other = next(iter(bounded))[0]
    bounds = ", ".join(f"{m} {b}" for (_, m), b in bounded.items())
    return [Para(f"`plot_seq_{task}` is not gated. Its readings are phase separation "
                 f"{pct(metrics['phase_separation'])} and a one-unit end-of-B threshold right for "
                 f"{pct(metrics['end_accuracy']['B'])}; the project bounds of `{other}` ({bounds}) "
                 f"assume one unit per count, which the measurements above test rather than "
                 f"assume, and the course sets no bound on either.")]


def counter(task: str, plot: dict, metrics: dict, figures: Path) -> list:
    found = plot["counting"]
    phases, switches = found["phases"], found["switches"]
    parts = []
    for ch, e in phases.items():
        if abs(e["r"]) >= ONE_UNIT_R:
            parts.append(f"while reading {ch}'s, **hidden unit {e['unit']} "
                         f"{PHASE_WORD[e['count']].format(ch=ch)}** (r = {e['r']:+.2f} between its "
                         f"activation and the count, slope {e['slope']:+.3f} per {ch})")
        else:
            what = PHASE_WORD[e["count"]].format(ch=ch).replace("counts down ", "").replace(
                "counts ", "")
            parts.append(f"while reading {ch}'s, **no single unit follows {what}** (the closest, "
                         f"unit {e['unit']}, at r = {e['r']:+.2f}, below {ONE_UNIT_R}); "
                         f"a least-squares fit on all {len(e['mean'])} units together follows it "
                         f"at r = {e['joint_r']:.2f}")
    text = "**The counter.** Measured over every test sequence: " + "; ".join(parts) + "."
    flips = [f"at {k.replace('->', ' to ')} unit {s['unit']} moves from {s['before']:+.2f} to "
             f"{s['after']:+.2f}" for k, s in switches.items()]
    text2 = ("**The phase switch**: " + "; ".join(flips) + " (means over the test blocks).")
    ends = []
    for ch, e in phases.items():
        if "end" not in e:
            continue
        side = "above" if e["end"]["above"] else "below"
        ends.append(f"unit {e['unit']} {side} {e['end']['threshold']:+.2f} means no {ch} follows: "
                    f"this one threshold is right for {pct(e['end']['accuracy'])} of the "
                    f"{e['points']:,} {ch}-phase steps, a threshold on a line through all "
                    f"{len(e['mean'])} units for {pct(e['end_joint']['accuracy'])}")
    det = metrics["det_accuracy"]
    positions = plot["det_positions"]
    after = {"anbn": "the A after the B's", "anbncn": "the first C and the A after the C's"}[task]
    text3 = ("**How the deterministic predictions are read off**: " + "; ".join(ends)
             + f". The net itself predicts every B after the first right for {pct(det['B'])} "
               f"({positions['B']['right']:,} of {positions['B']['of']:,}), the last B for "
               f"{pct(det['last_B'])}, " + (f"the C's for {pct(det['C'])}, " if "C" in det else "")
             + f"and {after} for {pct(det['A'])}.")
    text4 = (f"The nearest-state-centroid measure used for Reber reads {pct(plot['state_separation'])} "
             f"here, which is not a failure: a count's state label is shared by the A-branch "
             f"(counting up) and the B-branch (counting down), which the net keeps apart. Labelled "
             f"by (phase, count) the hidden vectors separate at {pct(metrics['phase_separation'])}"
             + "; by phase: " + ", ".join(f"{ch} {pct(v)}" for ch, v in plot["separation_by_phase"].items())
             + (f": the {min(plot['separation_by_phase'], key=plot['separation_by_phase'].get)}-phase "
                f"states are where counts overlap." if min(plot["separation_by_phase"].values()) < 1 else "."))
    first, second, same = SEED["sides"][task]
    a, b = phases[first]["mean"], phases[second]["mean"]
    agree = sum(((x > 0) == (y > 0)) == same for x, y in zip(a, b))
    checks = [f"the seed places {SEED['seed_words'][task]}. A unit's sign is arbitrary (flip it "
              f"and its outgoing weights and the net computes the same), so what carries over to "
              f"this net is whether the {first}'s and the {second}'s lie on "
              f"{'the same side' if same else 'opposite sides'} of zero: their mean hidden "
              f"vectors are {vec(a)} and {vec(b)}, which "
              + (f"**agrees** (every one of the {len(a)} units)" if agree == len(a) else
                 f"**disagrees** in {len(a) - agree} of {len(a)} units")]
    text5 = "**The seed's reading**: " + "; ".join(checks) + "."
    if task == "anbncn":
        b = phases["B"]
        held = (f"unit {b['unit']} alone holds it (r = {b['r']:+.2f} with the B's still to come)"
                if abs(b["r"]) >= ONE_UNIT_R else
                f"no single unit holds that count (the closest, unit {b['unit']}, at r = "
                f"{b['r']:+.2f}); all {len(b['mean'])} units together do at r = {b['joint_r']:.2f}")
        text5 += (" The seed says the net predicts the last B by keeping track of the B's: "
                  f"measured, the net gets the last B right for {pct(det['last_B'])}; {held}; one "
                  f"threshold on unit {b['unit']} finds the end of the B's for "
                  f"{pct(b['end']['accuracy'])} of B steps, a line through all units for "
                  f"{pct(b['end_joint']['accuracy'])}.")
    rows = [[ch, e["count"], e["unit"], f"{e['r']:+.3f}", f"{e['joint_r']:.3f}", f"{e['slope']:+.3f}",
             num(e["end"]["threshold"], 2) if "end" in e else "-",
             pct(e["end"]["accuracy"]) if "end" in e else "-",
             pct(e["end_joint"]["accuracy"]) if "end" in e else "-", vec(e["mean"])]
            for ch, e in phases.items()]
    return [Lead(Para(text)), Lead(Para(text2)), Para(text3), Para(text4), Para(text5),
            Table(["phase", "count", "closest unit", "r", "r, all units", "slope",
                   "end threshold", "threshold right", "line through all units right",
                   "mean hidden vector"], rows,
                  caption="Per phase, the unit closest to the count (largest |r|), and all "
                          "units together (least squares)."),
            Lead(Figure(figures / "counter.png", f"{task}: one test sequence, the count units "
                                                 "and end-of-run thresholds")),
            Figures([Figure(figures / "hidden.png", f"{task}: hidden units coloured by count"),
                     Figure(figures / "count_fit.png", f"{task}: each phase's count unit "
                                                       "against the count")])]


# ---- Q4 ------------------------------------------------------------------------------------

def carried(swap: dict | None, unit: int) -> bool:
    """Whether the intervention shows cell ``unit`` carrying the outer symbol: swapping it
    flips the closing prediction more often than swapping any other cell, intervals apart."""
    if not swap:
        return False
    cells = {c["unit"]: c for c in swap["units"]}
    return cells[unit]["flipped"] > 0 and all(cells[unit]["interval"][0] > c["interval"][1]
                                              for v, c in cells.items() if v != unit)


def intervention_text(swap: dict | None, unit: int) -> str:
    if not swap:
        return "No intervention was run on the cells."
    n = swap["strings"]
    per_cell = "; ".join(f"cell {c['unit']}: {c['flipped']} of {n} ({100 * c['interval'][0]:.0f}-"
                         f"{100 * c['interval'][1]:.0f}%, shift {c['shift']:.2f})"
                         for c in swap["units"])
    top = max(swap["units"], key=lambda c: c["flipped"])
    if carried(swap, unit):
        verdict = (f"only swapping cell {unit} flips the prediction beyond the others' "
                   f"intervals: it carries the outer symbol from the branch to the end")
    elif top["flipped"] and carried(swap, top["unit"]):
        verdict = (f"swapping cell {unit}, the best separator over the inner steps, changes "
                   f"nothing the net predicts, while swapping cell {top['unit']} flips "
                   f"{top['flipped']} of {n}: cell {top['unit']} carries the outer symbol from the "
                   f"branch on, and cell {unit}'s separation is a correlate of it")
    else:
        verdict = (f"swapping cell {unit} does not flip the prediction more than every other "
                   f"cell does, intervals apart: the test does not show that it alone carries "
                   f"the outer symbol")
    return (f"**Intervention.** Right after the outer T/P is read, each cell in turn is set to "
            f"the mean it takes there on the other branch, and the rest of the string runs "
            f"unchanged; without it the net predicts the closing symbol right for "
            f"{swap['baseline_right']} of {n} test strings. Strings whose predicted closing "
            f"symbol flips (95% interval; the unit of independence is the test string): "
            f"{per_cell}. So {verdict}.")


def ereber(train: dict, plot: dict, metrics: dict, figures: Path) -> list:
    probe, gates = plot["probe"], plot["gates"]
    u = probe["unit"]
    others = ", ".join(f"cell {i} {pct(a)}" for i, a in enumerate(probe["unit_accuracy"]) if i != u)
    at_end = probe["by_position"][0] if probe["by_position"] else {"carrier": None,
                                                                    "probe": None}
    carries = carried(plot.get("intervention"), u)
    text = (f"**The context unit.** Cell {u} "
            + ("carries the outer T/P through the inner string (the intervention below)"
               if carries else "separates the outer T/P best (a correlation; the intervention "
                               "below does not show that it carries it)")
            + ": over every inner step one threshold on it tells the T branch from the P branch for "
            f"**{pct(probe['unit_accuracy'][u])}** of the steps ({others}); its mean is "
            f"{probe['mean']['T']:+.2f} on the T branch and {probe['mean']['P']:+.2f} on the P "
            f"branch. At the step that must predict the closing symbol (after the inner E), a "
            f"threshold on cell {u} is right for {pct(at_end['carrier'])} of held-out test strings "
            f"and a linear probe on all {len(probe['unit_accuracy'])} cells for "
            f"{pct(at_end['probe'])} (each fitted on the other half of the strings); the net's "
            f"final error is {num(metrics.get('final'))}.")
    biggest = max(range(len(gates["abs_cell"])), key=lambda i: gates["abs_cell"][i])
    if gates["abs_cell_rank"] == 1:
        claim1 = (f"agrees: cell {u}, the best separator, has the largest mean |c| "
                  f"({gates['abs_cell'][u]:.2f})")
    else:
        claim1 = (f"**disagrees**: cell {u}, the best separator, ranks {gates['abs_cell_rank']} by mean "
                  f"|c| ({gates['abs_cell'][u]:.2f}); the largest, cell {biggest} "
                  f"({gates['abs_cell'][biggest]:.2f}), tells T from P for only "
                  f"{pct(probe['unit_accuracy'][biggest])}")
    if gates["forget"] >= 0.9:
        claim2 = (f"agrees that the forget gate keeps the old content: on the inner steps cell "
                  f"{u}'s forget gate averages {gates['forget']:.3f} (lowest {gates['forget_min']:.2f})")
    else:
        claim2 = (f"**disagrees** that the forget gate keeps it: cell {u}'s forget gate averages "
                  f"{gates['forget']:.3f} on the inner steps")
    if gates["input"] > 0.5:
        claim2 += (f"; but the input gate is mostly open too (mean {gates['input']:.2f}), writing "
                   f"|i g| = {gates['write']:.2f} per step into a cell that holds "
                   f"|c| = {gates['abs_cell'][u]:.2f}: the branch is not kept behind a closed "
                   "input gate; with the forget gate near 1 the cell adds that to what it keeps, "
                   "an accumulator that stays apart by branch")
    else:
        claim2 += (f"; the input gate is mostly shut (mean {gates['input']:.2f}, |i g| = "
                   f"{gates['write']:.2f} per step)")
    small, large = SEED["small_change"], SEED["large_change"]
    change = gates["change"]
    if small in change and large in change:
        holds = change[small] < change[large]
        claim3 = (f"the seed says the cells change little from {small[0]} to {small[1]} and more "
                  f"from {large[0]} to {large[1]}; measured, the mean |change| of the cells is "
                  f"{change[small]:.2f} reading {small[1]} after {small[0]} and {change[large]:.2f} "
                  f"reading {large[1]} after {large[0]}: "
                  + ("**agrees**" if holds else "**the reverse**"))
    else:
        claim3 = (f"the seed's comparison of {small} with {large} cannot be checked: the test "
                  "strings hold no such pair")
    text2 = ("**The seed's reading of the cells and gates**, checked: the seed reads large cell "
             f"values as what is carried through, which {claim1}. The seed's gate reading "
             f"{claim2}. Finally, {claim3}.")
    ex = plot["examples"]
    rows = []
    longest = max(len(e["string"]) for e in ex.values()) - 1
    for k in range(longest):
        row = [k]
        for e in ex.values():
            if k < len(e["string"]) - 1:
                row += [e["string"][k], f"{e['context'][k][u]:+.2f}", f"{e['forget'][k]:.2f}",
                        f"{e['input'][k]:.2f}"]
            else:
                row += ["", "", "", ""]
        rows.append(row)
    header = ["step"] + [f"{b} branch: {h}" for b in ex for h in ("read", f"cell {u}", "forget",
                                                                  "input")]
    strings = " and ".join(f"{b} branch `{e['string']}`" for b, e in ex.items())
    return [Para(text), Lead(Para(intervention_text(plot.get("intervention"), u))),
            Para(text2),
            Table(header, rows, caption=f"Two test strings side by side ({strings}): cell {u} "
                                        "and its gates after each symbol read."),
            Para(f"Hidden vectors fall to their own state's centroid {pct(metrics['separation'])} of "
                 f"the time, the cells {pct(metrics['context_separation'])}"
                 + (": the units separate the outer symbol more cleanly than the grammar states."
                    if probe["unit_accuracy"][u] > max(metrics["separation"],
                                                       metrics["context_separation"]) else ".")),
            Lead(Figures([Figure(figures / "branches.png", "Embedded Reber: a T- and a P-branch "
                                 f"string, the cells (cell {u} thick) and its gates"),
                          Figure(figures / "probe.png", "Embedded Reber: T vs P read from the "
                                 "cells, per step before the inner E")]))]


# ---- the course's diagnostic print, as data -----------------------------------------------

def diagnostic(train: dict) -> list:
    d = train["diagnostic"]
    rows = []
    for r in d["rows"]:
        row = [r.get("read", r.get("symbol")), r["state"], vec(r["hidden"])]
        if "context" in r:
            row.append(vec(r["context"]))
        rows.append(row + [vec(r["output"]), vec(r["target"], 1)])
    header = ["read", "state", "hidden"] + (["context"] if "context" in d["rows"][0] else []) + [
        "output", "true probabilities"]
    scores = ", ".join(f"{k} {v:.4f}" for k, v in d["scores"].items())
    return [Table(header, rows, caption=f"The course's diagnostic print at epoch {d['epoch']:,} "
                                        f"(restart {d['restart']}, {d['split']} sequence "
                                        f"{d['sequence']}): {scores}. `state`: the grammar "
                                        "state (the colour of the figures) after the symbol "
                                        "read; `hidden`: the hidden units then.")]
