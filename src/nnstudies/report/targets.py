"""Whether each course target was met: the `paper` bounds of gates.yaml (one source of
truth for the targets) checked against this run's metrics files."""

from __future__ import annotations

from pathlib import Path

from nnstudies import gates
from nnstudies.report import inputs

Targets = dict  # metrics file -> metric -> gates.Row


def check(gates_path: Path, root: Path, profile: str = "paper") -> Targets:
    out: Targets = {}
    gated = gates.load(gates_path, profile)
    for file in dict.fromkeys(gate.file for gate in gated):
        inputs.read_json(Path(root) / file)  # a missing or spoilt file names the stage that writes it
    for row in gates.check(gated, root):
        out.setdefault(row.gate.file, {})[row.gate.metric] = row
    return out


def verdict(targets: Targets, file: str, metric: str) -> str:
    """'>= 0.93 **met**', or 'not gated' where the profile has no bound for the metric."""
    row = targets.get(file, {}).get(metric)
    if row is None:
        return "not gated"
    return f"{row.gate.bound_text()} **{'met' if row.ok else 'NOT met'}**"
