"""Whether each bound for a full run was met, and whose bound it is.

The bounds are the `paper` bounds of gates.yaml (one source of truth for every bound).  A
bound is a **course target** only where the course states it: reference/course.yaml lists
those metrics with the course's words; every other bound is a **project bound**, one the
project chose (a sanity check, a stricter reading, a measurement the course never asks for).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nnstudies import gates, yamlfile
from nnstudies.errors import UserError
from nnstudies.report import inputs

COURSE = Path("reference") / "course.yaml"


@dataclass(frozen=True)
class Target:
    row: gates.Row
    course: str | None  # what the course says, where it states this bound; None: a project bound

    @property
    def label(self) -> str:
        return "course target" if self.course is not None else "project bound"


Targets = dict  # metrics file -> metric -> Target


def course_statements(root: Path) -> dict:
    """metrics file -> metric -> the course's words (reference/course.yaml)."""
    path = Path(root) / COURSE
    data = yamlfile.read(path)
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise UserError(f"{path}: must map metrics files to {{metric: what the course says}}")
    return data


def check(gates_path: Path, root: Path, profile: str = "paper") -> Targets:
    out: Targets = {}
    gated = gates.load(gates_path, profile)
    said = course_statements(root)
    for file in dict.fromkeys(gate.file for gate in gated):
        inputs.read_json(Path(root) / file)  # a missing or spoilt file names the stage that writes it
    for row in gates.check(gated, root):
        words = said.get(row.gate.file, {}).get(row.gate.metric)
        out.setdefault(row.gate.file, {})[row.gate.metric] = Target(row, words)
    return out


def verdict(targets: Targets, file: str, metric: str) -> str:
    """'Course target >= 0.93: **met**', 'Project bound >= 0.99: **NOT met**', or 'Not gated'."""
    target = targets.get(file, {}).get(metric)
    if target is None:
        return "Not gated"
    row = target.row
    return f"{target.label.capitalize()} {row.gate.bound_text()}: **{'met' if row.ok else 'NOT met'}**"
