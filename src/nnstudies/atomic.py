"""Atomic writers: every output is written to a temp file beside it, then renamed.

A stage that dies half-way (an exception, SIGINT, SIGKILL) therefore never leaves a
half-written metrics file, plot or model: readers see the previous good file or none.
Temp names carry the writer's pid, so the next write of a file removes temp files that
a SIGKILLed writer left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

# Every file this process has put in place, in order: what an interrupted stage did write.
WRITTEN: list[Path] = []


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path in ``path``'s folder; on success rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_dead_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        WRITTEN.append(path)
    finally:
        tmp.unlink(missing_ok=True)


def _sweep_dead_temps(path: Path) -> None:
    """Remove temp files of ``path`` left by writers that were SIGKILLed (their pid is gone)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        parts = tmp.name[len(path.name) + 2:-len(".tmp")].split(".")  # <pid>.<random>
        if len(parts) == 2 and parts[0].isdigit() and not _alive(int(parts[0])):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_csv(path: str | Path, header: Sequence[str], rows) -> None:
    """Write rows (sequences of values) under a header line, comma-separated."""
    lines = [",".join(header)]
    lines += [",".join(_csv_cell(v) for v in row) for row in rows]
    write_text(path, "\n".join(lines) + "\n")


def _csv_cell(value) -> str:
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if any(c in text for c in ',"\n'):
        text = '"' + text.replace('"', '""') + '"'
    return text


def save_figure(fig, path: str | Path, **kwargs) -> None:
    """Save a matplotlib figure atomically (format from the suffix) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", **kwargs)
    plt.close(fig)


def save_torch(obj, path: str | Path) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
