"""The one Markdown table writer (GitHub pipe tables), for the report, gates and compare."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def render(header: Sequence, rows: Iterable[Sequence], align: Sequence[str] | None = None) -> str:
    """A pipe table of already formatted cells (``|`` escaped, newlines flattened); ``align``:
    one of "left", "right", "center" per column.  Cells are never re-parsed as numbers."""
    from tabulate import tabulate

    clean = [[str(c).replace("|", "\\|").replace("\n", " ") for c in row] for row in rows]
    return tabulate(clean, headers=[str(h) for h in header], tablefmt="pipe",
                    disable_numparse=True, colalign=align)
