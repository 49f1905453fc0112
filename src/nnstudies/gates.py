"""Metric gates: floors and ceilings per profile, and tolerances per metric kind (gates.yaml).

gates.yaml maps a profile to metrics files, each to dotted metric keys with bounds::

    ci:
      metrics/train_kmnist_conv.json:
        test_accuracy: {min: 0.80}
        test_loss: {max: 0.9}

and, in its ``tolerance`` section (no profile), how far each kind of metric may move between
two CPU paths, and the kind of every metric::

    tolerance:
      kinds: {accuracy: {images: 20, per: 1000}, loss: {abs: 0.01}, epochs: {epochs: 40},
              exact: {exact: true}}
      metrics: {metrics/train_kmnist_*.json: {test_accuracy: accuracy, "*_loss": loss, "*": exact}}

:func:`check` measures every gated metric; a metric that is missing or not finite is a
failure, never a pass.  :func:`compare` takes ``dvc metrics diff --json --all REV`` and fails
every metric that moved by more than its kind's tolerance, in either direction (a big
improvement from no change of code is as suspect as a drop), and every metric with no kind.
:meth:`Contract.rounded` is how a stage writes its metrics: each rounded by its kind to a
power of ten at most a tenth of the kind's tolerance.
"""

from __future__ import annotations

import fnmatch
import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

from nnstudies import mdtable, yamlfile
from nnstudies.errors import UserError

BOUND_KEYS = ("min", "max")
TOLERANCE = "tolerance"  # the section of gates.yaml that is no profile


class GateError(UserError):
    """gates.yaml, a metrics file or a metric cannot be read."""


@dataclass(frozen=True)
class Gate:
    file: str
    metric: str  # dotted key inside the metrics file
    lo: float | None
    hi: float | None

    def bound_text(self) -> str:
        parts = ([f">= {self.lo:g}"] if self.lo is not None else []) + (
            [f"<= {self.hi:g}"] if self.hi is not None else [])
        return ", ".join(parts)


@dataclass(frozen=True)
class Row:
    gate: Gate
    value: float | None  # None: missing
    ok: bool
    note: str = ""  # why a value is missing or fails regardless of the bounds


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value, where: str) -> float:
    if not _is_number(value) or math.isnan(value):
        raise GateError(f"{where} = {yamlfile.show(value)}: must be a number")
    return float(value)


def _json(value) -> str:
    """A value as the metrics file spells it (Infinity, not inf; null, not None)."""
    return json.dumps(value)


def load(path: str | Path, profile: str) -> list[Gate]:
    """The gates of ``profile`` in ``path``, validated in full."""
    path = Path(path)
    if not path.exists():
        raise GateError(f"{path}: no such file (it holds the metric bounds per profile)")
    data = yamlfile.read(path, GateError)
    if not isinstance(data, dict):
        raise GateError(f"{path}: must map profiles to metrics files")
    profiles = [str(name) for name in data if name != TOLERANCE]
    if profile not in profiles:
        raise GateError(f"{path}: no profile '{profile}' (known: {', '.join(profiles) or 'none'})")
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
                raise GateError(f"{where} = {yamlfile.show(bounds)}: must be {{min: X}}, {{max: Y}} "
                                "or both")
            lo = _number(bounds["min"], f"{where}.min") if "min" in bounds else None
            hi = _number(bounds["max"], f"{where}.max") if "max" in bounds else None
            if not all(math.isfinite(b) for b in (lo, hi) if b is not None):
                raise GateError(f"{where} = {yamlfile.show(bounds)}: bounds must be finite numbers")
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


def _read(root: Path, file: str):
    """A metrics file's data; None when there is no such file."""
    try:
        return json.loads((root / file).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise GateError(f"{file}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise GateError(f"{file}: not a JSON metrics file (not UTF-8 text)") from None
    except OSError as exc:  # a directory, no permission, ...
        raise GateError(f"{file}: cannot read this metrics file ({exc.strerror})") from None


def non_finite(data, prefix: str = "") -> list[tuple[str, float]]:
    """Every (dotted key, value) of ``data`` that is a number but not finite.  Python's json
    reads ``Infinity``, ``NaN`` and ``1e999``; a stage writes a non-finite value as null, so
    one in a metrics file means the file was spoiled, and must never pass a bound."""
    if isinstance(data, dict):
        return [hit for k, v in data.items() for hit in non_finite(v, f"{prefix}{k}.")]
    return [(prefix[:-1], data)] if _is_number(data) and not math.isfinite(data) else []


def check(gates: list[Gate], root: str | Path = ".") -> list[Row]:
    """One row per gate, with the measured value from ``root/<file>``."""
    rows, cache = [], {}
    for gate in gates:
        if gate.file not in cache:
            cache[gate.file] = _read(Path(root), gate.file)
        value = _lookup(cache[gate.file], gate.metric)
        if value is None:
            note = "no such file" if cache[gate.file] is None else "no such metric"
            rows.append(Row(gate, None, False, note))
            continue
        if _is_number(value) and not math.isfinite(value):  # NaN included
            rows.append(Row(gate, float(value), False, "not finite"))
            continue
        value = _number(value, f"{gate.file}: {gate.metric}")
        ok = (gate.lo is None or value >= gate.lo) and (gate.hi is None or value <= gate.hi)
        rows.append(Row(gate, value, ok))
    return rows


# ---- Tolerances: how far a metric may move between CPU paths --------------------------

@dataclass(frozen=True)
class Tolerance:
    kind: str
    amount: float  # the largest |change| allowed, in the metric's own scale
    unit: str = ""  # "images" or "epochs": the unit a change reads best in
    per: int = 0  # images: the tolerance is `images` per this many test images

    def text(self) -> str:
        if self.amount == 0:
            return f"exact ({self.kind})"
        if self.unit == "images":
            return f"±{round(self.amount * self.per):g} images per {self.per} ({self.kind})"
        return f"±{self.amount:g}{' epochs' if self.unit == 'epochs' else ''} ({self.kind})"


@dataclass(frozen=True)
class Contract:
    """gates.yaml's ``tolerance`` section: a tolerance per kind, and each metric's kind."""
    kinds: dict[str, Tolerance]
    rules: list[tuple[str, str, str]]  # (metrics file pattern, metric pattern, kind), in order

    def kind(self, file: str, metric: str) -> str | None:
        """The first rule whose file and metric patterns match (fnmatch: * ? [..])."""
        for file_pattern, metric_pattern, kind in self.rules:
            if fnmatch.fnmatchcase(file, file_pattern) and fnmatch.fnmatchcase(metric, metric_pattern):
                return kind
        return None

    def rounded(self, file: str, metrics: dict, prefix: str = "") -> dict:
        """``metrics`` of ``file`` (nested, JSON-ready) as a stage writes them: every float
        rounded to its kind's :func:`decimals`; ints, text, exact kinds and metrics of no kind
        as they are.  Only the metrics file: results keep every digit."""
        out = {}
        for key, value in metrics.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                out[key] = self.rounded(file, value, name + ".")
                continue
            tol = self.kinds.get(self.kind(file, name))
            places = decimals(tol) if tol is not None else None
            # + 0.0: -0.0 written as 0.0, or a sign flip of nothing shows as a change
            out[key] = round(value, places) + 0.0 if isinstance(value, float) and places is not None \
                else value
        return out


def decimals(tol: Tolerance) -> int | None:
    """The decimal places a metric of this kind is written with: the power of ten at most a
    tenth of its tolerance (with today's gates.yaml: accuracy and loss 1e-3, drift 1e-5,
    rounding 1e-7, epochs 1).  Rounding then moves a value by at most a twentieth of what it
    may move between CPU paths, and hides most of the last-digit noise of another path (the
    measured noise of each kind is at or below a tenth of its tolerance) from `dvc metrics
    diff`.  None for an exact kind."""
    return None if tol.amount == 0 else 1 - math.floor(math.log10(tol.amount))


_KIND_FORMS = "{abs: X}, {images: N, per: M}, {epochs: N} or {exact: true}"


def _tolerance(kind: str, spec, where: str) -> Tolerance:
    forms = [{"abs"}, {"images", "per"}, {"epochs"}, {"exact"}]
    if not isinstance(spec, dict) or set(spec) not in forms:
        raise GateError(f"{where} = {yamlfile.show(spec)}: must be {_KIND_FORMS}")
    if "exact" in spec:
        if spec["exact"] is not True:
            raise GateError(f"{where}.exact = {yamlfile.show(spec['exact'])}: must be true")
        return Tolerance(kind, 0.0)
    numbers = {k: _number(v, f"{where}.{k}") for k, v in spec.items()}
    if not all(math.isfinite(v) and v >= 0 for v in numbers.values()) or numbers.get("per", 1) <= 0:
        raise GateError(f"{where} = {yamlfile.show(spec)}: amounts must be finite and >= 0 "
                        "(per > 0)")
    if "images" in spec:
        return Tolerance(kind, numbers["images"] / numbers["per"], "images", int(numbers["per"]))
    return Tolerance(kind, numbers.get("abs", numbers.get("epochs")), "epochs" if "epochs" in spec else "")


def tolerances(path: str | Path) -> Contract:
    """The ``tolerance`` section of ``path``, validated in full."""
    path = Path(path)
    if not path.exists():
        raise GateError(f"{path}: no such file (it holds the metric bounds and tolerances)")
    data = yamlfile.read(path, GateError)
    section = data.get(TOLERANCE) if isinstance(data, dict) else None
    where = f"{path}: {TOLERANCE}"
    if not isinstance(section, dict) or set(section) != {"kinds", "metrics"}:
        raise GateError(f"{where}: must be a section with `kinds` (kind -> tolerance) and "
                        "`metrics` (metrics file pattern -> metric pattern -> kind)")
    if not isinstance(section["kinds"], dict) or not section["kinds"]:
        raise GateError(f"{where}.kinds: must map kind names to {_KIND_FORMS}")
    kinds = {str(k): _tolerance(str(k), v, f"{where}.kinds.{k}") for k, v in section["kinds"].items()}
    if not isinstance(section["metrics"], dict) or not section["metrics"]:
        raise GateError(f"{where}.metrics: must map metrics file patterns to {{metric pattern: kind}}")
    rules = []
    for file, metrics in section["metrics"].items():
        if not isinstance(metrics, dict) or not metrics:
            raise GateError(f"{where}.metrics.{file}: must map metric patterns to kinds")
        for metric, kind in metrics.items():
            if kind not in kinds:
                raise GateError(f"{where}.metrics.{file}.{metric} = {yamlfile.show(kind)}: no such kind "
                                f"(known: {', '.join(kinds)})")
            rules.append((str(file), str(metric), kind))
    return Contract(kinds, rules)


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


@dataclass(frozen=True)
class Move:
    """A metric that moved against the base (or cannot be compared)."""
    file: str
    metric: str
    old: object
    new: object
    change: str
    tolerance: str
    ok: bool


def _change(tol: Tolerance, change: float, test_images) -> str:
    text = f"{change:+.4g}"
    if tol.unit == "images":  # in images of this file's test set
        count = test_images if _is_number(test_images) and test_images > 0 else tol.per
        return f"{text} ({change * count:+.4g} images)"
    return text + (" epochs" if tol.unit == "epochs" else "")


def _judge(old, new, tol: Tolerance | None, test_images) -> tuple[str, bool] | None:
    """(change, ok) of one metric; None when it did not move."""
    if tol is None:
        return "", False
    if any(_is_number(v) and not math.isfinite(v) for v in (old, new)):
        return "not finite", False
    if old == new and (type(old) is type(new) or _is_number(old) and _is_number(new)):
        return None  # 1 and 1.0 included
    if old is None or new is None:
        return ("not in base" if old is None else "missing now"), False
    if not (_is_number(old) and _is_number(new)):
        return "changed", False
    change = new - old
    # the same value written through another float path: a few ulps of slack
    return _change(tol, change, test_images), abs(change) <= tol.amount + 1e-12 * max(1.0, abs(old), abs(new))


def compare(diff: dict, contract: Contract) -> tuple[int, list[Move]]:
    """How many metrics ``diff`` holds, and a row for each that moved or cannot be trusted:
    beyond its kind's tolerance in either direction, no kind, not finite, or present on one
    side only (CI compares the same code: a metric that appears or vanishes is a change)."""
    count, moves = 0, []
    for file, metrics in sorted(diff.items()):
        test_images = metrics.get("test_images", {}).get("new")
        for metric, entry in sorted(metrics.items()):
            count += 1
            old, new = entry.get("old"), entry.get("new")
            tol = contract.kinds.get(contract.kind(file, metric))
            judged = _judge(old, new, tol, test_images)
            if judged is not None:
                tolerance = tol.text() if tol else f"no kind in gates.yaml `{TOLERANCE}.metrics`"
                moves.append(Move(file, metric, old, new, judged[0], tolerance, judged[1]))
    return count, moves


def table(rows: list[Row]) -> str:
    """A Markdown table: metrics file, metric, value, bound, pass/FAIL."""
    cells = []
    for row in rows:
        value = "missing" if row.value is None else _json(row.value) if not math.isfinite(row.value) \
            else f"{row.value:.6g}"
        note = f" ({row.note})" if row.note else ""
        cells.append([row.gate.file, row.gate.metric, value, row.gate.bound_text(),
                      ("pass" if row.ok else "**FAIL**") + note])
    return mdtable.render(["metrics file", "metric", "value", "bound", "result"], cells,
                          ["left", "left", "right", "left", "left"])


def moves_table(moves: list[Move]) -> str:
    """One line per moved metric: was, now, change, tolerance, ok/FAIL."""
    def shown(value) -> str:
        return "-" if value is None else f"{value:.6g}" if _is_number(value) and math.isfinite(value) \
            else _json(value)

    cells = [[m.file, m.metric, shown(m.old), shown(m.new), m.change, m.tolerance,
              "ok" if m.ok else "**FAIL**"] for m in moves]
    return mdtable.render(["metrics file", "metric", "was", "now", "change", "tolerance", "result"],
                          cells, ["left", "left", "right", "right", "right", "left", "left"])


def run(gates_path: str | Path, profile: str, root: str | Path = ".", base: str | None = None,
        out=print) -> int:
    """Print the gate tables; 0 when every gate passes (and, with ``base``, every metric is
    within its tolerance of ``base``'s), 1 on a breach; GateError when a gated metrics file
    is missing or holds a missing or non-finite metric (after printing the table)."""
    gates = load(gates_path, profile)
    contract = tolerances(gates_path) if base is not None else None  # all checked before work
    root = Path(root)
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
    spoiled = [(file, key, value) for file in dict.fromkeys(g.file for g in gates)
               for key, value in non_finite(_read(root, file))]
    if spoiled:
        file, key, value = spoiled[0]
        raise GateError(f"{file}: {key} = {_json(value)} is not a finite number ({len(spoiled)} such "
                        "value(s), which fails the gate; a stage never writes one: rerun it)")
    failed = [r for r in rows if not r.ok]
    out(f"\n{len(rows) - len(failed)}/{len(rows)} gates pass")
    if base is None:
        return 1 if failed else 0
    count, moves = compare(metrics_diff(base, root), contract)
    beyond = [m for m in moves if not m.ok]
    out(f"\n### Every metric against `{base}`, within its tolerance (either direction; "
        f"{gates_path} `{TOLERANCE}`)\n")
    if moves:
        out(moves_table(moves) + "\n")
    out(f"{count} metrics compared: {count - len(moves)} unchanged, {len(moves)} moved or "
        f"unmapped, {len(beyond)} beyond tolerance")
    return 1 if failed or beyond else 0
