"""Metric gates: floors and ceilings per profile (gates.yaml), checked against metrics/*.json.

gates.yaml maps a profile to metrics files, each to dotted metric keys with bounds::

    ci:
      metrics/train_kmnist_conv.json:
        test_accuracy: {min: 0.80}
        test_loss: {max: 0.9}

:func:`check` measures every gated metric; a metric that is missing is a failure, never a
pass.  :func:`regressions` compares the same metrics with ``dvc metrics diff --json REV``:
a metric with a ``min`` bound must not drop, one with only a ``max`` must not rise, by more
than the budget.
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

from nnstudies import mdtable, yamlfile
from nnstudies.errors import UserError

BOUND_KEYS = ("min", "max")


class GateError(UserError):
    """gates.yaml, a metrics file or a metric cannot be read."""


@dataclass(frozen=True)
class Gate:
    file: str
    metric: str  # dotted key inside the metrics file
    lo: float | None
    hi: float | None

    @property
    def higher_is_better(self) -> bool:
        return self.lo is not None or self.hi is None

    def bound_text(self) -> str:
        parts = ([f">= {self.lo:g}"] if self.lo is not None else []) + (
            [f"<= {self.hi:g}"] if self.hi is not None else [])
        return ", ".join(parts)


@dataclass(frozen=True)
class Row:
    gate: Gate
    value: float | None  # None: missing
    ok: bool
    note: str = ""  # why a value is missing
    change: str = ""  # regression rows: the base value and the change


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise GateError(f"{where} = {value!r}: must be a number")
    return float(value)


def load(path: str | Path, profile: str) -> list[Gate]:
    """The gates of ``profile`` in ``path``, validated in full."""
    path = Path(path)
    if not path.exists():
        raise GateError(f"{path}: no such file (it holds the metric bounds per profile)")
    data = yamlfile.read(path, GateError)
    if not isinstance(data, dict):
        raise GateError(f"{path}: must map profiles to metrics files")
    if profile not in data:
        raise GateError(f"{path}: no profile '{profile}' (known: {', '.join(map(str, data)) or 'none'})")
    files = data[profile]
    if not isinstance(files, dict) or not files:
        raise GateError(f"{path}: profile '{profile}' must map metrics files to metrics")
    gates = []
    for file, metrics in files.items():
        if not isinstance(metrics, dict) or not metrics:
            raise GateError(f"{path}: {profile}.{file} must map metric keys to bounds")
        for metric, bounds in metrics.items():
            where = f"{path}: {profile}.{file}.{metric}"
            if not isinstance(bounds, dict) or not bounds or set(bounds) - set(BOUND_KEYS):
                raise GateError(f"{where} = {bounds!r}: must be {{min: X}}, {{max: Y}} or both")
            lo = _number(bounds["min"], f"{where}.min") if "min" in bounds else None
            hi = _number(bounds["max"], f"{where}.max") if "max" in bounds else None
            if lo is not None and hi is not None and lo > hi:
                raise GateError(f"{where}: min {lo:g} is above max {hi:g}")
            gates.append(Gate(str(file), str(metric), lo, hi))
    return gates


def _lookup(data, dotted: str):
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def check(gates: list[Gate], root: str | Path = ".") -> list[Row]:
    """One row per gate, with the measured value from ``root/<file>``."""
    rows, cache = [], {}
    for gate in gates:
        if gate.file not in cache:
            path = Path(root) / gate.file
            try:
                cache[gate.file] = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                cache[gate.file] = None
            except json.JSONDecodeError as exc:
                raise GateError(f"{gate.file}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
            except UnicodeDecodeError:
                raise GateError(f"{gate.file}: not a JSON metrics file (not UTF-8 text)") from None
            except OSError as exc:  # a directory, no permission, ...
                raise GateError(f"{gate.file}: cannot read this metrics file ({exc.strerror})") from None
        value = _lookup(cache[gate.file], gate.metric)
        if value is None:
            note = "no such file" if cache[gate.file] is None else "no such metric"
            rows.append(Row(gate, None, False, note))
            continue
        value = _number(value, f"{gate.file}: {gate.metric}")
        ok = (gate.lo is None or value >= gate.lo) and (gate.hi is None or value <= gate.hi)
        rows.append(Row(gate, value, ok))
    return rows


def metrics_diff(base: str, cwd: str | Path = ".") -> dict:
    """``dvc metrics diff --json --all BASE``: {file: {metric: {"old", "new", "diff"}}}."""
    try:
        proc = subprocess.run(["dvc", "metrics", "diff", "--json", "--all", base], cwd=cwd,
                              capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise GateError("dvc is not on PATH (activate the project's environment)") from None
    if proc.returncode != 0:
        message = " ".join((proc.stderr or proc.stdout).split())[:300]
        raise GateError(f"dvc metrics diff {base} failed: {message}")
    return json.loads(proc.stdout or "{}")


def regressions(gates: list[Gate], diff: dict, max_drop: float) -> list[Row]:
    """One row per gate: did the metric move the wrong way by more than ``max_drop``?"""
    rows = []
    for gate in gates:
        entry = diff.get(gate.file, {}).get(gate.metric)
        old = entry.get("old") if entry else None
        new = entry.get("new") if entry else None
        if new is None:  # dvc only diffs the files dvc.yaml declares under `metrics:`
            rows.append(Row(gate, None, False, "not in `dvc metrics diff`"))
            continue
        if old is None:  # new metric: nothing to regress from
            rows.append(Row(gate, float(new), True, change="not in base"))
            continue
        change = float(new) - float(old)
        worse = -change if gate.higher_is_better else change
        rows.append(Row(gate, float(new), worse <= max_drop + 1e-12,
                        change=f"was {float(old):.6g} ({change:+.4g})"))
    return rows


def changes(diff: dict) -> list[list[str]]:
    """[file, metric, old, new, change] for every metric of ``diff`` whose value moved."""
    rows = []
    for file, metrics in sorted(diff.items()):
        for metric, entry in sorted(metrics.items()):
            old, new = entry.get("old"), entry.get("new")
            if old == new:
                continue
            numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (old, new))
            change = f"{new - old:+.6g}" if numbers else "changed"
            rows.append([file, metric, str(old), str(new), change])
    return rows


def table(rows: list[Row], regression: bool = False) -> str:
    """A Markdown table: metrics file, metric, value, bound (or change), pass/FAIL."""
    cells = []
    for row in rows:
        value = "missing" if row.value is None else f"{row.value:.6g}"
        note = f" ({row.note})" if row.note else ""
        bound = row.change if regression else row.gate.bound_text()
        cells.append([row.gate.file, row.gate.metric, value, bound,
                      ("pass" if row.ok else "**FAIL**") + note])
    return mdtable.render(["metrics file", "metric", "value", "change" if regression else "bound",
                           "result"], cells, ["left", "left", "right", "left", "left"])


def run(gates_path: str | Path, profile: str, root: str | Path = ".", base: str | None = None,
        max_drop: float = 0.0, out=print) -> int:
    """Print the gate tables; 0 when every gate passes, 1 on a breach; GateError when a
    gated metric is missing (after printing the table that shows which)."""
    if not max_drop >= 0:
        raise GateError(f"--max-drop {max_drop:g}: must be a number >= 0")
    gates = load(gates_path, profile)
    rows = check(gates, root)
    out(f"### Metric gates: profile `{profile}` ({gates_path})\n")
    out(table(rows))
    missing = [r for r in rows if r.value is None]
    if missing:
        first = missing[0]
        if first.note == "no such file":
            raise GateError(f"{first.gate.file}: no such file ({len(missing)} gated metric(s) "
                            "missing, which fails the gate; run `dvc repro` first)")
        raise GateError(f"{first.gate.file}: no metric '{first.gate.metric}' ({len(missing)} gated "
                        f"metric(s) missing, which fails the gate; check the name in {gates_path})")
    failed = [r for r in rows if not r.ok]
    out(f"\n{len(rows) - len(failed)}/{len(rows)} gates pass")
    if base is not None:
        diff = metrics_diff(base, root)
        moved = regressions(gates, diff, max_drop)
        out(f"\n### Regression budget against `{base}` (worse by at most {max_drop:g})\n")
        out(table(moved, regression=True))
        worse = [r for r in moved if not r.ok]
        out(f"\n{len(moved) - len(worse)}/{len(moved)} within the budget")
        differ = changes(diff)
        out(f"\n### Every metric that differs from `{base}`: {len(differ) or 'none'}\n")
        if differ:
            out(mdtable.render(["metrics file", "metric", "was", "now", "change"], differ,
                               ["left", "left", "right", "right", "right"]))
        failed += worse
    return 1 if failed else 0
