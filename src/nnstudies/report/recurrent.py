"""Study 3 of the report: hidden-unit dynamics of the recurrent nets."""

from __future__ import annotations

import json
from pathlib import Path

from nnstudies.report.document import Code, Figure, Figures, Heading, Para, Table
from nnstudies.report.targets import Targets, verdict

TASKS = {
    "reber": "SRN on the Reber grammar",
    "anbn": "SRN on a^n b^n",
    "anbncn": "SRN on a^n b^n c^n",
    "ereber": "LSTM on the embedded Reber grammar",
}


def last_block(log_text: str) -> str:
    """The last diagnostic print of the course log (blocks start with a '-----' line)."""
    blocks = log_text.split("-----\n")
    return blocks[-1].rstrip("\n") if blocks else ""


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def section(metrics_dir: Path, plots_dir: Path, targets: Targets) -> list:
    blocks: list = [Heading(2, "Part 3: Hidden-unit dynamics of recurrent networks")]
    overview = []
    for task, title in TASKS.items():
        trained = json.loads((metrics_dir / f"train_seq_{task}.json").read_text())
        measured = json.loads((metrics_dir / f"plot_seq_{task}.json").read_text())
        log = (plots_dir / f"train_seq_{task}" / "train.log").read_text()
        figures = plots_dir / f"plot_seq_{task}"
        file = f"metrics/train_seq_{task}.json"
        hidden = measured.get("hidden", {})
        overview.append([title, _fmt(trained.get("error")), _fmt(trained.get("final")),
                         _fmt(trained.get("det_accuracy")), _fmt(hidden.get("centroid_accuracy")),
                         f"{trained['success_count']}/{trained['restarts']}",
                         verdict(targets, file, "final" if task == "ereber" else "error")])
        text = (f"{trained['restarts']} restarts trained side by side; "
                f"**{trained['success_count']}** met the success bounds. The kept (best) restart "
                f"has error **{_fmt(trained.get('error'))}**")
        if trained.get("final") is not None:
            text += f" and final **{_fmt(trained['final'])}** (the closing T/P)"
        text += (f". Its hidden vectors fall to the nearest state centroid "
                 f"{100 * hidden.get('centroid_accuracy', float('nan')):.1f}% of the time "
                 f"(silhouette {_fmt(hidden.get('silhouette'))}); the state machine read back from "
                 f"the hidden space reproduces {100 * hidden.get('machine_agreement', float('nan')):.1f}% "
                 f"of the true transitions.")
        blocks += [Heading(3, title), Para(text)]
        det = measured.get("det_accuracy")
        if isinstance(det, dict):
            blocks.append(Table(["deterministic predictions", "accuracy"],
                                [[k, _fmt(v)] for k, v in det.items()],
                                caption="Accuracy on the positions whose next symbol is certain "
                                        "(last_B: the last B of each block, A: the A after it)."))
        blocks += [
            Para("The last diagnostic print of training, in the course format:"),
            Code(last_block(log)),
            Figures([Figure(p, f"{title}: {p.stem.replace('_', ' ')}")
                     for p in sorted(figures.glob("*.png"))]),
        ]
        context = measured.get("context")
        if isinstance(context, dict):
            blocks.append(Para(
                f"Context (cell) units: nearest-centroid accuracy "
                f"{100 * context.get('centroid_accuracy', float('nan')):.1f}%, silhouette "
                f"{_fmt(context.get('silhouette'))}, machine agreement "
                f"{100 * context.get('machine_agreement', float('nan')):.1f}% (the same measures as for the "
                f"hidden units, on the LSTM's cell states)."))
    blocks[1:1] = [Table(["task", "error", "final", "deterministic accuracy", "state separation",
                          "restarts succeeded", "course target"], overview)]
    return blocks
