"""Whether each course target was met: the `paper` bounds of gates.yaml (one source of
truth for the targets) checked against this run's metrics files."""

from __future__ import annotations

from pathlib import Path

from nnstudies import gates

Targets = dict  # metrics file -> metric -> gates.Row


def check(gates_path: Path, root: Path, profile: str = "paper") -> Targets:
    out: Targets = {}
    for row in gates.check(gates.load(gates_path, profile), root):
        out.setdefault(row.gate.file, {})[row.gate.metric] = row
    return out


def verdict(targets: Targets, file: str, metric: str) -> str:
    """'>= 0.93 **met**', or 'not gated' where the profile has no bound for the metric."""
    row = targets.get(file, {}).get(metric)
    if row is None:
        return "not gated"
    return f"{row.gate.bound_text()} **{'met' if row.ok else 'NOT met'}**"
