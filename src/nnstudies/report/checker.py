"""Study 2 of the report: the trained and the hand-designed checkerboard MLPs (Part 2, Q1-Q3).

Every sentence is computed from results/train_checker.json, results/hand_checker.json and
metrics/; figures are the stages' files under plots/.  No log is read, no knob written here.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from nnstudies.report import inputs
from nnstudies.report.document import Figure, Figures, Heading, Lead, Para, Table
from nnstudies.report.targets import Targets, verdict

COLOUR = {1: "blue", 0: "red"}  # target 1 is drawn blue, target 0 red (the course's colours)


def _read(path: Path) -> dict:
    return inputs.read_json(path)


def point(p) -> str:
    return f"({p[0]:g}, {p[1]:g})"


def _points(points: list) -> str:
    return ", ".join(point(p) for p in points) or "none"


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _num(v: float | None, digits: int = 4) -> str:
    return "" if v is None else f"{v:.{digits}g}"


# ---- Q1: the trained net ---------------------------------------------------------------

def restart_summary(r: dict) -> str:
    """What happened to the restarts, from the table's outcomes."""
    s, rows = r["settings"], r["restarts"]
    reached = [x for x in rows if x["first_epoch_at_100"] is not None]
    met = [x for x in rows if x["met_rule_at"] is not None]
    never = [x for x in rows if x["first_epoch_at_100"] is None]
    firsts = ", ".join(f"{x['first_epoch_at_100']:,}" for x in reached) or "none"
    text = (f"Of {len(rows)} restarts trained side by side, **{len(reached)} reached 100%** "
            f"(first at epochs {firsts}) "
            f"and **{len(met)} met the patience rule** (100% for {s['patience']:,} consecutive "
            f"epochs). ")
    if r["stopped_by"] is not None:
        stopped = [x for x in reached if x["met_rule_at"] is None]
        text += (f"Training stopped at epoch {r['epochs_run']:,}, when restart {r['stopped_by']} "
                 f"met the rule; so the {_count(len(stopped), 'other restart')} that had "
                 f"reached 100% were stopped before they could hold it for {s['patience']:,} "
                 f"epochs: they did not fail. ")
    else:
        text += f"No restart met the rule within the budget of {s['max_epochs']:,} epochs. "
    text += (f"The seed report's command trains one initialisation: here {len(reached)} of "
             f"{len(rows)} initialisations reached 100% within the {r['epochs_run']:,} epochs run, "
             f"so one run succeeds only some of the time (the sweep below measures it per size). ")
    if never:
        stuck = Counter(x["final_correct"] for x in never)
        text += (f"{_count(len(never), 'restart')} never reached 100% in the "
                 f"{r['epochs_run']:,} epochs run, stuck at "
                 + ", ".join(f"{c} of 9 points ({n})" for c, n in sorted(stuck.items(), reverse=True))
                 + ".")
    return text


def kept_summary(r: dict, metrics: dict, targets: Targets) -> str:
    k, s = r["kept"], r["settings"]
    text = (f"Kept: restart {k['restart']} (generator seed {k['seed']}), which ")
    if k["first_epoch_at_100"] is None:
        text += "never reached 100%"
    else:
        text += f"first reached 100% at epoch {k['first_epoch_at_100']:,}"
        if k["met_rule_at"] is not None:
            text += f" and met the rule at epoch {k['met_rule_at']:,}"
    share = (f" ({100 * k['first_epoch_at_100'] / s['max_epochs']:.2g}% of the "
             f"{s['max_epochs']:,}-epoch budget)"
             if k["first_epoch_at_100"] is not None else "")
    return (text + share + f". Final accuracy **{100 * k['accuracy']:.1f}%** ({k['correct']}/9), "
            f"loss {k['loss']:.4f}, smallest output margin {k['output_margin']:.3g}. "
            f"{verdict(targets, 'metrics/train_checker.json', 'accuracy')}.")


def restart_rows(rows: list) -> list[list]:
    return [[x["restart"] if not x["kept"] else f"**{x['restart']} (kept)**", x["seed"],
             _num(x["first_epoch_at_100"]), _num(x["met_rule_at"]), f"{x['final_correct']}/9",
             f"{x['final_loss']:.4f}", x["outcome"]] for x in rows]


def side_text(line: dict) -> str:
    """Which points a unit's line puts on its active side, and whether the side is one class."""
    active = line["active"]
    colours = Counter(COLOUR[p[2]] for p in active)
    kinds = " and ".join(f"{n} {c}" for c, n in sorted(colours.items()))
    pure = len(colours) == 1 and active
    text = (f"h{line['unit']} (`{line['equation']}`) is on for {kinds or 'no point'}: "
            f"{_points(active)}")
    if pure:
        text += f" — a group of one class only ({next(iter(colours))})"
    if line["on_line"]:
        text += f"; on its line: {_points(line['on_line'])}"
    return text


def duplicate_units_text(w: dict, cosine: float = 0.99) -> str:
    """Hidden units whose lines w.x + b = 0 nearly coincide: the cosine between their
    (w_x, w_y, b) vectors at least ``cosine`` (same side on) counts them as one half-plane."""
    units = [(*xy, b) for xy, b in zip(w["in_weight"], w["hid_bias"])]
    norm = [sum(v * v for v in u) ** 0.5 for u in units]
    pairs = [(i, j, sum(a * b for a, b in zip(units[i], units[j])) / (norm[i] * norm[j]))
             for i in range(len(units)) for j in range(i + 1, len(units))]
    twins = [(i, j, c) for i, j, c in pairs if c >= cosine]
    if not twins:
        return (f"No two of the {len(units)} hidden units draw nearly the same line (every "
                f"cosine between their (w_x, w_y, bias) below {cosine:g}).")
    merged = len(units) - len({j for _, j, _ in twins})
    return ("Near-duplicate units: " + "; ".join(
        f"h{i} and h{j} (cosine {c:.4f} between their (w_x, w_y, bias))" for i, j, c in twins)
        + f": the {len(units)} units draw about {merged} distinct half-planes.")


def weight_rows(w: dict) -> list[list]:
    return [[f"h{i}", f"{wi[0]:.4f}", f"{wi[1]:.4f}", f"{b:.4f}", f"{v:.4f}"]
            for i, (wi, b, v) in enumerate(zip(w["in_weight"], w["hid_bias"], w["out_weight"]))]


def activation_rows(acts: list) -> list[list]:
    return [[point((a["x"], a["y"])), COLOUR[a["target"]], *(f"{h:.3f}" for h in a["hidden"]),
             f"{a['output']:.4f}"] for a in acts]


def trained_section(r: dict, metrics: dict, plots: Path, targets: Targets) -> list:
    s, hid, fig = r["settings"], r["settings"]["hid"], r["figures"]
    lines = r["lines"]
    pure = [x for x in lines if x["active"] and len({p[2] for p in x["active"]}) == 1]
    return [
        Heading(3, f"Q1: training the net to 100% (hid = {hid})"),
        Para(f"The course command these settings stand for: `{s['course_command']}`. Here: {s['act']} units, "
             f"every weight and bias drawn from N(0, {s['init']:g}), {s['optimiser']} on "
             f"{s['loss']}, learning rate {s['lr']:g}, weight decay {s['weight_decay']:g}, at most "
             f"{s['max_epochs']:,} epochs; instead of one initialisation, {s['restarts']} restarts "
             f"(generator seeds {s['seed']} x 10000 + r) train side by side, and the first to meet "
             f"the course's rule — 100% for {s['patience']:,} consecutive epochs — is kept."),
        Lead(Para(restart_summary(r))),
        Table(["restart", "seed", "first epoch at 100%", "met the rule at", "points right at the end",
               "final loss", "what happened"], restart_rows(r["restarts"]),
              caption="Every restart."),
        Lead(Para(kept_summary(r, metrics, targets))),
        Table(["epoch", "loss", "accuracy (%)"],
              [[x["epoch"], f"{x['loss']:.4f}", f"{x['accuracy']:.2f}"] for x in r["log_tail"]],
              caption="The last progress lines of the kept net (the course's `ep: ... loss: ... "
                      "acc: ...`; the whole log, `logs/train_checker/train.log`, is a DVC-cached output: "
                      "`dvc pull` or `dvc repro train_checker` puts it in a checkout)."),
        Para(duplicate_units_text(r["final_weights"])),
        Table(["unit", "w_x", "w_y", "bias", "output weight"], weight_rows(r["final_weights"]),
              caption=f"The kept net's final weights; output bias "
                      f"{r['final_weights']['out_bias']:.4f}."),
        Figures([Figure(plots / fig["lines"], "every hidden unit's dividing line w.x + b = 0 "
                        "(arrow: the side where the unit is on)"),
                 Figure(plots / fig["data"], "the nine points (blue: target 1)"),
                 Figure(plots / fig["init"], "the kept net's output before training"),
                 Figure(plots / fig["history"], "loss and accuracy of the kept net")]),
        Para("Each hidden unit's line and the points on its active side: "
             + "; ".join(side_text(x) for x in lines) + ". "
             + (f"{_count(len(pure), 'unit')} of {len(lines)} cut off points of one class only; "
                "the output combines these half-planes into the checkerboard."
                if pure else "No unit cuts off points of one class only: the output needs "
                "several units together for every point.")),
        Lead(Figures([Figure(plots / fig["hidden"], f"each of the {hid} hidden units (> 0.5 shaded)"),
                      Figure(plots / fig["out"], "the output")])),
        Table(["point", "target", *(f"h{i}" for i in range(hid)), "output"],
              activation_rows(r["activations"]),
              caption="Activations of every hidden unit and the output at the nine points."),
    ]


# ---- Q2: the hand-designed step net ------------------------------------------------------

def alternation_text(codes: list, design: dict) -> str:
    """Why the output weights alternate, read from the hidden codes of the nine points."""
    bands: dict[int, list] = {}
    for c in codes:
        bands.setdefault(c["active"], []).append(c)
    counts = sorted(bands)
    single = all(len({tuple(c["code"]) for c in bands[n]}) == 1 for n in counts)
    one_class = all(len({c["target"] for c in bands[n]}) == 1 for n in counts)
    if not (single and one_class):
        return ("The hidden codes do not sort the points into bands of one class each with one "
                "code per band, so the output weights cannot be read off band by band.")
    steps, consistent = [], True
    for lo, hi in zip(counts, counts[1:]):
        new = [i for i, (a, b) in enumerate(zip(bands[lo][0]["code"], bands[hi][0]["code"]))
               if b and not a]
        t0, t1 = bands[lo][0]["target"], bands[hi][0]["target"]
        if len(new) != 1 or t0 == t1:
            consistent = False
            break
        w = design["out_weight"][new[0]]
        needed = 1 if t1 > t0 else -1
        consistent &= (w > 0) == (needed > 0)
        steps.append(f"h{new[0]} ({COLOUR[t0]} to {COLOUR[t1]}, output weight {w:+g})")
    if not consistent:
        return ("The bands do not each switch on exactly one more unit and flip the class, so "
                "the alternation argument does not apply to this design.")
    band_text = "; ".join(f"{n} on: {_points([(c['x'], c['y']) for c in bands[n]])} "
                          f"({COLOUR[bands[n][0]['target']]})" for n in counts)
    first = bands[counts[0]][0]
    b2 = design["out_bias"]
    bias = (f"The output bias alone decides the band with {counts[0]} units on: b2 = {b2:g} "
            + (f"puts it on the {COLOUR[first['target']]} side with a margin"
               if (b2 > 0) == (first["target"] == 1) and b2 != 0 else
               "is exactly 0 there, blue only because step(0) = 1"
               if b2 == 0 else "puts it on the wrong side") + ".")
    return (f"The number of units on is the number of lines with the point on their active "
            f"side. By units on: {band_text}. Each diagonal band switches on exactly one more "
            f"unit than the band before it and the class flips with it, so each newly "
            f"switched-on unit must push the "
            f"output across the threshold the other way: " + ", then ".join(steps)
            + ". That is why the output weights alternate in sign. " + bias)


def code_rows(codes: list) -> list[list]:
    return [[point((c["x"], c["y"])), COLOUR[c["target"]], "".join(map(str, c["code"])),
             c["active"], COLOUR[c["output"]]] for c in codes]


def evaluation_text(name: str, e: dict) -> str:
    margin = e["output_margin"]
    how = ("every point robustly on its side" if margin > 0 else
           "some point exactly on the threshold, right only because 0 counts as class 1"
           if margin == 0 else "some point on the wrong side" if e["correct"] < 9 else
           "below 0, yet every point counts as right: a sigmoid output rounded to exactly 0.5 "
           "counts as class 1")
    return (f"{name}: **{e['correct']}/9** right, smallest output margin {margin:.4g} ({how}), "
            f"smallest |w.x + b| of a hidden unit {e['hidden_margin']:.4g}")


def hand_q2(h: dict, plots: Path, targets: Targets) -> list:
    d, seed = h["design"], h["seed_design"]
    return [
        Heading(3, "Q2: the hand-designed 4-unit step net"),
        Para("Each hidden unit is step(w.x + b), so its line w.x + b = 0 splits the plane: "
             + "; ".join(side_text(x) for x in h["lines"]) + "."),
        Table(["unit", "w_x", "w_y", "bias", "output weight"], weight_rows(d),
              caption=f"The design (params.yaml, checker.hand); output bias {d['out_bias']:g}."),
        Table(["point", "target", "hidden code (h0..h3)", "units on", "output"],
              code_rows(h["hidden_codes"]), caption="The hidden code of each point under the step."),
        Lead(Para(alternation_text(h["hidden_codes"], d))),
        Lead(Para(evaluation_text("Under the step", h["step"]) + ". Accuracy: "
                  + verdict(targets, "metrics/hand_checker.json", "step.accuracy") + "; margin: "
                  + verdict(targets, "metrics/hand_checker.json", "step.output_margin") + ". "
                  + evaluation_text(f"The seed report's design (output bias "
                                    f"{seed['design']['out_bias']:g})", seed["step"]) + ".")),
        Lead(Figures([Figure(plots / h["figures"]["lines"], "the design's four lines"),
                      Figure(plots / h["figures"]["step_hidden"], "step: each hidden unit"),
                      Figure(plots / h["figures"]["step_out"], "step: output")])),
    ]


# ---- Q3: rescaled for the sigmoid --------------------------------------------------------

def scale_text(h: dict) -> str:
    sig, k = h["sigmoid"], h["scale"]
    worst = max(abs(a["output"] - a["target"]) for a in sig["activations"])
    text = (f"With every weight and bias times k = {k:g} under the sigmoid: "
            + evaluation_text("the params design", sig) + ". ")
    exact = h["step"]["output_margin"] * k  # what exact 0/1 hidden units would give at scale k
    text += (f"Every point is at least {sig['hidden_margin']:.3g} from a line in pre-activation, "
             f"so the hidden units are within {sig['hidden_deviation']:.2g} of their step values; "
             f"with exact 0/1 hidden units the smallest output margin would be k x "
             f"{h['step']['output_margin']:g} (the step net's) = {exact:.3g}, and the sigmoid's "
             f"inexact hidden units cost {exact - sig['output_margin']:.2g} of it, leaving "
             f"{sig['output_margin']:.3g}: the worst output is {worst:.3g} from its target. ")
    smallest = h["smallest_scale"]
    if smallest is None:
        text += f"No scale up to {h['scale_sweep']['scales'][-1]:g} classifies all nine points."
    else:
        text += (f"The smallest scale that classifies all nine points is k = {smallest:.3g}; "
                 + (f"so k = {k:g} suffices, {k / smallest:.2g} times that, and its margin grows "
                    f"with k (figure)." if k >= smallest else
                    f"so k = {k:g} does not suffice."))
    return text


def seed_scale_text(h: dict) -> str:
    seed = h["seed_design"]
    e = seed["sigmoid"]
    half = [a for a in e["activations"] if a["output"] == 0.5]
    text = (f"The seed report rescaled its own design (output bias "
            f"{seed['design']['out_bias']:g}) by k = {seed['scale']:g} ({seed['source']}). "
            f"Evaluated at the seed's own k: " + evaluation_text("the seed's design", e) + ". ")
    if half:
        text += (f"{_count(len(half), 'point')} ({_points([(a['x'], a['y']) for a in half])}) get "
                 f"an output of exactly 0.5: their pre-activation is {e['output_margin']:.2g}, zero "
                 f"up to rounding, and 0.5 counts as blue, so the seed's 100% rests on rounding, as "
                 f"its step net rests on step(0) = 1. ")
    if seed["smallest_scale"] is not None:
        best = max(r["output_margin"] for r in h["scale_sweep"]["seed"])
        text += (f"In this float32 evaluation the seed's design gets all nine right from "
                 f"k = {seed['smallest_scale']:.3g} up, yet its smallest output margin is at most "
                 f"{best:.2g} at every k of the sweep: never a margin, only rounding.")
    return text


def hand_q3(h: dict, plots: Path, targets: Targets) -> list:
    k = h["scale"]
    return [
        Heading(3, "Q3: the same net rescaled for the sigmoid"),
        Lead(Para(scale_text(h) + " "
                  + verdict(targets, "metrics/hand_checker.json", "sigmoid.accuracy") + ".")),
        Para(seed_scale_text(h)),
        Lead(Figures([Figure(plots / h["figures"]["scale"], "smallest output margin and points "
                             "right vs k (both designs; dotted: the scales each uses)")])),
        Table(["point", "target", "h0", "h1", "h2", "h3", "output"],
              activation_rows(h["sigmoid"]["activations"]),
              caption=f"Activation table, sigmoid, every weight x{k:g}."),
        Figures([Figure(plots / h["figures"]["sigmoid_hidden"], f"sigmoid x{k:g}: each hidden unit"),
                 Figure(plots / h["figures"]["sigmoid_out"], f"sigmoid x{k:g}: output")]),
    ]


def section(metrics_dir: Path, results_dir: Path, plots_dir: Path, targets: Targets) -> list:
    trained = _read(results_dir / "train_checker.json")
    hand = _read(results_dir / "hand_checker.json")
    metrics = _read(metrics_dir / "train_checker.json")
    return [Heading(2, "Part 2: Multi-layer perceptron on the nine checkerboard points"),
            *trained_section(trained, metrics, plots_dir / "train_checker", targets),
            *hand_q2(hand, plots_dir / "hand_checker", targets),
            *hand_q3(hand, plots_dir / "hand_checker", targets)]
