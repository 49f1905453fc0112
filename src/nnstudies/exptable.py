"""``nnstudies exp [STUDY]``: DVC's experiments as one table per study that fits a terminal.

Plain ``dvc exp show`` has a column for every param and metric of the pipeline (over 400);
this reads its ``--json`` and keeps, per study, the experiment's name, the study's params
whose values differ between the rows shown, and the study's key metrics, rounded to 4
significant digits (the last digits are float noise between CPU paths anyway).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from nnstudies import params, yamlfile
from nnstudies.errors import UserError

WIDTH = 160  # a terminal, as `nnstudies compare`


@dataclass(frozen=True)
class Study:
    params: tuple[str, ...]  # dotted prefixes of its params in params.yaml
    # (regex on "<metrics file stem>:<dotted key>", column label); keys whose regex has a
    # group `part` share one cell, "part:value ..." (a sweep's rate per size: sizes are params)
    metrics: tuple[tuple[str, str], ...]


STUDIES = {
    "kmnist": Study(("kmnist.",), ((r"train_kmnist_(\w+):test_accuracy", r"\1 acc"),
                                   (r"train_kmnist_(\w+):test_loss", r"\1 loss"),
                                   (r"seeds_kmnist:nets\.(\w+)\.mean", r"\1 seeds mean"))),
    "checker": Study(("hid", "checker."), (
        (r"train_checker:(accuracy|epochs_to_100|loss|output_margin|restarts_succeeded)", r"\1"),)),
    "seq": Study(("seq.",), ((r"train_(?:seq|beyond)_(\w+):success_count", r"\1 ok"),
                             (r"train_(?:seq|beyond)_(\w+):test\.(error|final)", r"\1 \2"),
                             (r"beyond:(\w+)\.largest_n", r"\1 up to n"))),
    "sweep": Study(("sweep.",), (
        (r"sweep_checker:sizes\.hid_(?P<part>\d+)\.rate", "checker hid:rate"),
        (r"sweep_seq:(\w+)\.sizes\.hid_(?P<part>\d+)\.rate", r"\1 hid:rate"))),
}
NOT_COMPARED = ("tracking.",)  # where runs are logged: never what an experiment is about


@dataclass
class Row:
    name: str
    created: str  # "MM-DD HH:MM", "" for the workspace
    params: dict  # flattened params.yaml
    metrics: dict  # "<stem>:<dotted key>" -> value


def dvc_rows(cwd=None) -> list[Row]:
    """The rows of `dvc exp show`: the workspace, each baseline commit, its experiments."""
    try:  # this environment's DVC, whatever `dvc` on PATH is
        proc = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json"], cwd=cwd,
                              capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        raise UserError(f"`dvc exp show --json` could not run: {exc}") from None
    if proc.returncode != 0:
        said = [line.removeprefix("ERROR: ") for line in proc.stderr.splitlines() if line.strip()]
        where = Path(cwd or ".").resolve()
        raise UserError(f"`dvc exp show` failed in {where}: {said[-1] if said else f'exit {proc.returncode}'}"
                        " (run `nnstudies exp` inside a clone of this project)")
    rows = []
    for baseline in json.loads(proc.stdout):
        rev = baseline["rev"]
        rows.append(_row(baseline.get("name") or (rev if rev == "workspace" else rev[:7]), baseline))
        for exp in baseline.get("experiments") or []:
            state = (exp.get("executor") or {}).get("state")
            name = exp.get("name") or exp["revs"][0]["rev"][:7]
            rows.append(_row(name if state in (None, "success") else f"{name} ({state})", exp["revs"][0]))
    return rows


def _row(name: str, rev: dict) -> Row:
    data = rev.get("data") or {}
    tree = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
    metrics = {}
    for path, found in (data.get("metrics") or {}).items():
        stem = path.rsplit("/", 1)[-1].removesuffix(".json")
        metrics.update({f"{stem}:{k}": v for k, v in params.flatten(found.get("data") or {}).items()})
    stamp = data.get("timestamp") or ""
    created = f"{stamp[5:10]} {stamp[11:16]}" if len(stamp) >= 16 else ""
    return Row(name, created, params.flatten(tree), metrics)


def differing(rows: list[Row]) -> list[str]:
    """Params whose values are not the same in every row, in params.yaml order."""
    keys = list(dict.fromkeys(k for row in rows for k in row.params))
    return [k for k in keys if not k.startswith(NOT_COMPARED)
            and len({yamlfile.show(row.params.get(k)) for row in rows}) > 1]


def key_metrics(study: Study, rows: list[Row]) -> dict[str, list[tuple[str | None, str]]]:
    """label -> [(part, metric key)], for the study's key metrics present in any row."""
    present = list(dict.fromkeys(k for row in rows for k in row.metrics))
    found = {}
    for pattern, label in study.metrics:
        for key in present:
            if match := re.fullmatch(pattern, key):
                found.setdefault(match.expand(label), []).append((match.groupdict().get("part"), key))
    return found


def metric_cell(row: Row, keys: list[tuple[str | None, str]]) -> str:
    if keys[0][0] is None:
        return rounded(row.metrics.get(keys[0][1]))
    return " ".join(f"{part}:{rounded(row.metrics[key])}" for part, key in keys if key in row.metrics)


def rounded(value) -> str:
    """4 significant digits; whole numbers and anything from 1000 up without an exponent
    (421642, not 4.216e+05)."""
    if value is None or isinstance(value, (dict, list)):
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if abs(value) >= 1000 or float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.4g}"


def pipe_table(header: list[str], body: list[list[str]], right: list[bool]) -> str:
    """A Markdown pipe table padded by one space (mdtable's tabulate pads two, and columns
    are what this table is short of); ``right``: which columns are right-aligned."""
    body = [[c.replace("|", "\\|") for c in row] for row in body]
    widths = [max(map(len, column)) for column in zip(header, *body)]

    def line(cells):
        return "| " + " | ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)) + " |"

    rule = "|" + "|".join("-" * (w + 1) + (":" if r else "-") for w, r in zip(widths, right)) + "|"
    return "\n".join([line(header), rule, *map(line, body)])


def _cell(value) -> str:
    return "" if value is None else value if isinstance(value, str) else yamlfile.show(value)


def _short(key: str, prefixes: tuple[str, ...]) -> str:
    """``checker.train.lr`` -> ``train.lr`` in the checker table: its prefix adds nothing."""
    return next((key[len(p):] for p in prefixes if p.endswith(".") and key.startswith(p)), key)


def study_table(name: str, rows: list[Row], width: int = WIDTH) -> str:
    study = STUDIES[name]
    changed = differing(rows)
    own = [k for k in changed if k.startswith(study.params) or k in study.params]
    metrics = key_metrics(study, rows)
    header = ["experiment", "created", *(_short(k, study.params) for k in own), *metrics]
    body = [[row.name, row.created, *(_cell(row.params.get(k)) for k in own),
             *(metric_cell(row, keys) for keys in metrics.values())] for row in rows]

    def render(columns):
        return pipe_table([header[j] for j in columns], [[r[j] for j in columns] for r in body],
                          right=[j >= first_metric for j in columns])

    # Keep columns while the table fits the terminal: name and key metrics first, then the
    # params that differ (shown between them, in params.yaml order).
    first_metric = 2 + len(own)
    shown, left = [], []
    for i in [0, 1, *range(first_metric, len(header)), *range(2, first_metric)]:
        if len(render(sorted(shown + [i])).split("\n", 1)[0]) <= width:
            shown.append(i)
        else:
            left.append(header[i])
    shown.sort()
    text = f"{name} ({len(rows)} rows)\n" + render(shown)
    notes = []
    if left:
        notes.append(f"{len(left)} more columns do not fit {width} columns: {', '.join(left)}")
    if others := [k for k in changed if k not in own]:
        notes.append(f"other params that differ: {', '.join(others)}")
    if not own:
        notes.append(f"no {name} param differs between these rows")
    return text + "".join(f"\n({note if len(note) <= width - 2 else note[:width - 6] + ' ...'})"
                          for note in notes)


def show(study: str | None = None, cwd=None, width: int = WIDTH) -> str:
    """The table of ``study``; without one, the studies whose params or key metrics differ
    between the rows (all of them when nothing differs)."""
    if study is not None and study not in STUDIES:
        raise UserError(f"study {yamlfile.show(study)}: unknown (known: {', '.join(STUDIES)})")
    rows = dvc_rows(cwd)
    if study:
        return study_table(study, rows, width)

    def moves(name):
        own = STUDIES[name].params
        cells = key_metrics(STUDIES[name], rows).values()
        return any(k.startswith(own) or k in own for k in differing(rows)) or any(
            len({metric_cell(row, keys) for row in rows}) > 1 for keys in cells)

    names = [name for name in STUDIES if moves(name)] or list(STUDIES)
    return "\n\n".join(study_table(name, rows, width) for name in names)
