"""YAML read the way DVC reads it: YAML 1.2 (ruamel.yaml's safe loader, as DVC uses).

PyYAML reads YAML 1.1, where `lr: 1e-3` is a string and `yes` a boolean; DVC, which writes
`dvc exp run -S` values into params.yaml and records them in dvc.lock, reads YAML 1.2, where
`1e-3` is a number and `yes` a string.  Everything of the project that reads params.yaml or
gates.yaml goes through here, so the project and DVC always see the same values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nnstudies.errors import UserError


def parse(text: str, where: str | Path, error: type[UserError] = UserError) -> Any:
    """Plain dicts, lists and scalars; invalid YAML is one line naming line and column."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        return YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "parse error"
        raise error(f"{where}: not valid YAML{at}: {problem}") from None


def read(path: str | Path, error: type[UserError] = UserError) -> Any:
    """``parse`` of a file; a file that cannot be read (missing, a directory, not UTF-8) is
    one line too."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise error(f"{path}: not a text file (not UTF-8)") from None
    except OSError as exc:
        raise error(f"{path}: cannot read it ({exc.strerror})") from None
    return parse(text, path, error)
