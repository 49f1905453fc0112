"""YAML read the way DVC reads it: YAML 1.2 (ruamel.yaml's safe loader, as DVC uses).

PyYAML reads YAML 1.1, where `lr: 1e-3` is a string and `yes` a boolean; DVC, which writes
`dvc exp run -S` values into params.yaml and records them in dvc.lock, reads YAML 1.2, where
`1e-3` is a number and `yes` a string.  Everything of the project that reads params.yaml or
gates.yaml goes through here, so the project and DVC always see the same values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nnstudies.errors import UserError


def parse(text: str, where: str | Path, error: type[UserError] = UserError, loader=None) -> Any:
    """Plain dicts, lists and scalars; invalid YAML is one line naming line and column.

    ``loader``: another ruamel ``YAML()`` (a round-trip one, to keep comments) instead.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        return (loader or YAML(typ="safe", pure=True)).load(text)
    except YAMLError as exc:
        raise error(f"{where}: not valid YAML{_where_wrong(exc, text)}") from None


# A bracket or quote that is never closed is noticed only where the parser gives up, at the
# next token, often a line later: these errors name the line that opened it (the context mark).
_UNCLOSED = {"while parsing a flow sequence": "expected ',' or ']'",
             "while parsing a flow mapping": "expected ',' or '}'",
             "while scanning a quoted scalar": "end of stream"}


def _where_wrong(exc, text: str) -> str:
    def at(m):
        return f"line {m.line + 1}, column {m.column + 1}"

    mark, opened = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or "parse error"
    if mark and opened and _UNCLOSED.get(getattr(exc, "context", None) or "", "\0") in problem:
        lines = text.splitlines()
        char = lines[opened.line][opened.column:opened.column + 1] if opened.line < len(lines) else ""
        what = char if char in ("[", "{", "'", '"') else "bracket"
        return f" at {at(opened)}: this {what} is never closed ({problem} at {at(mark)})"
    return f" at {at(mark)}: {problem}" if mark else f": {problem}"


def read(path: str | Path, error: type[UserError] = UserError, loader=None) -> Any:
    """``parse`` of a file; a file that cannot be read (missing, a directory, not UTF-8) is
    one line too."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise error(f"{path}: not a text file (not UTF-8)") from None
    except OSError as exc:
        raise error(f"{path}: cannot read it ({exc.strerror})") from None
    return parse(text, path, error, loader)


def show(value: Any) -> str:
    """A value in messages as YAML writes it (`true`, `null`, `.inf`, `[1, 2]`), never as a
    Python repr (`True`, `None`); strings always single-quoted, so `'true'` stays a string."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value:
            return ".nan"
        if value in (float("inf"), float("-inf")):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if not value.isprintable():  # a newline or other control character: escaped, one line
            return json.dumps(value, ensure_ascii=False)  # a YAML double-quoted string
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)}: {show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(show, value)) + "]"
    return show(str(value))  # a date or other YAML type: its text


def _key(key: Any) -> str:
    plain = isinstance(key, str) and key.isidentifier() and key.lower() not in ("true", "false", "null")
    return key if plain else show(key)


def kind(value: Any) -> str:
    """What a YAML document or value is, in YAML words: 'a mapping', 'a list', 'a string'..."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {show(value)}"
    if isinstance(value, (int, float)):
        return f"the number {show(value)}"
    if isinstance(value, str):
        return f"the string {show(value)[:60]}"
    return "a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list) \
        else f"a {type(value).__name__}"
