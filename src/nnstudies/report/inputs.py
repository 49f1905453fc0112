"""Reading the report's inputs: other stages' metrics, results and figures.

Each is written by one stage (``results/train_kmnist_lin.json`` and ``plots/train_kmnist_lin/``
by ``train_kmnist@lin``).  One that is missing (its stage failed, and DVC had deleted its
outputs) or spoilt is a :class:`UserError` that names the file, what is wrong, and the stage
that remakes it.  A JSON file is read into :class:`Facts`, whose missing keys are such an
error too, so a file that lacks what the report needs is named however deep the report
looks it up.
"""

from __future__ import annotations

import json
from pathlib import Path

from nnstudies import layout
from nnstudies.errors import UserError

FOLDERS = {layout.METRICS.name, layout.RESULTS.name, layout.PLOTS.name}


def _located(path: Path) -> tuple[Path, str] | None:
    """(the folder holding metrics/, results/ and plots/, the stage that writes ``path``)."""
    parts = path.parts
    for i, (folder, name) in enumerate(zip(parts, parts[1:])):
        if folder not in FOLDERS:
            continue
        slug = name.removesuffix(".json")
        for stage in sorted(layout.EXTRA_OUTS, key=len, reverse=True):  # train_seq before train
            if stage in layout.BARE:
                continue
            if slug == stage:
                return Path(*parts[:i]), stage
            if slug.startswith(f"{stage}_"):
                return Path(*parts[:i]), f"{stage}@{slug[len(stage) + 1:]}"
    return None


def producer(path: str | Path) -> str | None:
    """The stage that writes ``path`` (``train_kmnist@lin``), None for a file of no stage."""
    found = _located(Path(path))
    return found and found[1]


def _shown(path: Path) -> str:
    """``path`` relative to the working directory where it lies under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def remedy(path: str | Path) -> str:
    stage = producer(path)
    return stage and f"rerun `dvc repro {stage}` or `nnstudies restore {stage}` (its last committed outputs)"


def error(path: str | Path, what: str) -> UserError:
    fix = remedy(path)
    return UserError(f"{_shown(Path(path))}: {what}" + (f"; {fix}" if fix else ""))


def _missing(path: Path) -> UserError:
    """A missing input, with what else of its stage is missing (a failed stage loses them all)."""
    found = _located(path)
    if found is None:
        return error(path, "missing")
    root, stage = found
    metrics, results, plots = (root / out for out in layout.outs(stage)[:3])
    if plots in path.parents and not plots.is_dir():  # the whole folder is gone
        return error(plots, "folder missing" + _also(plots, metrics, results, plots, stage))
    return error(path, "missing" + _also(path, metrics, results, plots, stage))


def _also(path: Path, metrics: Path, results: Path, plots: Path, stage: str) -> str:
    gone = [_shown(p) + ("/" if p == plots else "") for p in (metrics, results, plots)
            if p != path and not p.exists()]
    return f" (so are {', '.join(gone)}: did {stage} fail?)" if gone else ""


def read_bytes(path: str | Path) -> bytes:
    """A figure or other input file, whole."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise _missing(path) from None
    except OSError as exc:  # a folder in its place, no permission
        raise error(path, f"cannot be read ({exc.strerror})") from None


def read_json(path: str | Path) -> Facts:
    """A JSON object written by a stage."""
    path = Path(path)
    try:
        text = read_bytes(path).decode("utf-8")
        data = json.loads(text)
    except UnicodeDecodeError:
        raise error(path, "not JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        what = exc.msg[0].lower() + exc.msg[1:].removesuffix(" at")
        cut = " (the file ends before its JSON does: truncated?)" if not text.rstrip().endswith("}") else ""
        raise error(path, f"not valid JSON: {what} at line {exc.lineno} column {exc.colno}{cut}") from None
    if not isinstance(data, dict):
        kind = "an array" if isinstance(data, list) else "null" if data is None else "a single value"
        raise error(path, f"must hold a JSON object, not {kind}")
    return Facts(data, path)


class Facts(dict):
    """A JSON object read from ``source``: a key the report needs but that is absent is an
    error naming the file and the key's dotted path (``.get`` stays for optional keys)."""

    def __init__(self, data: dict, source: Path, where: str = ""):
        super().__init__({k: _wrap(v, source, f"{where}{k}.") for k, v in data.items()})
        self.source, self.where = source, where

    def __missing__(self, key):
        raise error(self.source, f"no key '{self.where}{key}' (the report needs it)")


def _wrap(value, source: Path, where: str):
    if isinstance(value, dict):
        return Facts(value, source, where)
    if isinstance(value, list):
        return [_wrap(v, source, f"{where[:-1]}[{i}].") for i, v in enumerate(value)]
    return value
