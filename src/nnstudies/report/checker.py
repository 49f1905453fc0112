"""Study 2 of the report: the trained and the hand-designed checkerboard MLPs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from nnstudies.report.document import Code, Figure, Figures, Heading, Para, Table
from nnstudies.report.targets import Targets, verdict


def read_table(path: Path, digits: int = 2) -> tuple[list[str], list[list[str]]]:
    """A CSV as (header, rows), numbers rounded for reading."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], [[_round(v, digits) for v in row] for row in rows[1:]]


def _round(value: str, digits: int) -> str:
    try:
        number = float(value)
    except ValueError:
        return value
    return f"{number:.{digits}f}" if number != int(number) else f"{number:g}"


def dividing_lines(markdown_text: str) -> list[tuple[str, str]]:
    """(design heading, equation lines) from the stage's lines.md."""
    sections, current = [], None
    for line in markdown_text.splitlines():
        if line.startswith("## "):
            current = [line[3:].strip(), []]
            sections.append(current)
        elif line.startswith("- ") and current is not None:
            current[1].append(line[2:].replace("$", "`"))
    return [(title, "; ".join(items)) for title, items in sections]


def section(metrics_dir: Path, plots_dir: Path, targets: Targets) -> list:
    trained = json.loads((metrics_dir / "train_check.json").read_text())
    hand = json.loads((metrics_dir / "hand_check.json").read_text())
    tp, hp = plots_dir / "train_check", plots_dir / "hand_check"
    hid = trained["hid"]
    log = (tp / "train.log").read_text().splitlines()
    final = log.index("Final Weights:") if "Final Weights:" in log else len(log)
    restart_header, restart_rows = read_table(tp / "restarts.csv", 4)
    act_header, act_rows = read_table(tp / "activations.csv")
    blocks: list = [
        Heading(2, "Part 2: Multi-layer perceptron on the nine checkerboard points"),
        Heading(3, f"The trained net (hid = {hid})"),
        Para(f"{trained['restarts']} random initialisations trained side by side; "
             f"**{trained['restarts_succeeded']} of {trained['restarts']}** met the course's rule "
             f"(100% for 2,000 consecutive epochs) within {trained['epochs_run']:,} epochs. "
             f"Kept: restart {trained['kept_restart']} (seed {trained['kept_seed']}), which first "
             f"reached 100% at epoch {trained['epochs_to_100']}. Final accuracy "
             f"**{100 * trained['accuracy']:.1f}%** ({trained['correct']}/9). Course target: "
             f"{verdict(targets, 'metrics/train_check.json', 'accuracy')}."),
        Para("The tail of the course-format log of the kept net, with its final weights:"),
        Code("\n".join(log[max(0, final - 8):])),
        Table(restart_header, restart_rows, caption="Every restart: did it meet the rule, when it "
              "first reached 100%, its final loss and points right."),
        Figures([Figure(tp / "figures" / "check.png", "the nine points (blue: target 1)"),
                 Figure(tp / "figures" / f"init_{hid}.png", "the kept net's output before training"),
                 Figure(tp / "figures" / "history.png", "loss and accuracy of the kept net")]),
        Figures([Figure(tp / "figures" / f"hid_{hid}_{i}.png", f"hidden unit {i} (> 0.5 shaded)")
                 for i in range(hid)] + [Figure(tp / "figures" / f"out_{hid}.png", "the output")]),
        Table(act_header, act_rows, caption="Activations of every hidden unit and the output at the "
              "nine points."),
        Heading(3, "The hand-designed 4-unit net"),
    ]
    step, sig, seed = hand["step"], hand["sigmoid"], hand["seed_design"]
    blocks.append(Table(
        ["design", "activation", "points right", "smallest output margin", "smallest hidden margin"],
        [["params.yaml", "step", f"{step['correct']}/9", step["output_margin"], step["hidden_margin"]],
         ["params.yaml", f"sigmoid, x{sig['scale']:g}", f"{sig['correct']}/9", sig["output_margin"],
          sig["hidden_margin"]],
         ["seed report (output bias 0)", "step", f"{seed['step']['correct']}/9",
          seed["step"]["output_margin"], seed["step"]["hidden_margin"]],
         ["seed report (output bias 0)", f"sigmoid, x{seed['sigmoid']['scale']:g}",
          f"{seed['sigmoid']['correct']}/9", seed["sigmoid"]["output_margin"],
          seed["sigmoid"]["hidden_margin"]]],
        caption="Output margin: the smallest (2t - 1) x output pre-activation over the nine points "
                "(> 0 robust, 0 right only because step(0) = 1, < 0 wrong)."))
    hand_file = "metrics/hand_check.json"
    blocks.append(Para(f"Course target, under the step: {verdict(targets, hand_file, 'step.accuracy')}"
                       f"; under the scaled sigmoid: {verdict(targets, hand_file, 'sigmoid.accuracy')}."))
    for title, equations in dividing_lines((hp / "lines.md").read_text()):
        blocks.append(Para(f"Dividing lines, {title}: {equations}."))
    blocks.append(Code((hp / "hand.log").read_text()))
    for act, caption in (("step", "step"), ("sigmoid", f"sigmoid, every weight x{sig['scale']:g}")):
        header, rows = read_table(hp / f"activations_{act}.csv")
        blocks += [
            Table(header, rows, caption=f"Activation table ({caption})."),
            Figures([Figure(hp / "figures" / act / f"hid_4_{i}.png", f"{caption}: hidden unit {i}")
                     for i in range(4)] + [Figure(hp / "figures" / act / "out_4.png",
                                                  f"{caption}: output")]),
        ]
    return blocks

