"""Atomic writers: every output is written to a temp file beside it, then renamed.

A stage that dies half-way (an exception, SIGINT, SIGKILL) therefore never leaves a
half-written metrics file, plot or model: readers see the previous good file or none.
Temp names carry the writer's pid, so the next write of a file removes temp files that
a SIGKILLed writer left behind.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
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
    """Remove temp files (and folders) of ``path`` left by writers that were SIGKILLed (their
    pid is gone)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        parts = tmp.name[len(path.name) + 2:-len(".tmp")].split(".")  # <pid>.<random>
        if len(parts) == 2 and parts[0].isdigit() and not _alive(int(parts[0])):
            _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


class Transaction:
    """Several outputs written under temp names first, put in place together by :meth:`commit`.

    A stage's outputs (its plots folder, results, metrics, models) are all prepared before any
    is replaced: a failure while preparing (a figure that raises, a read-only folder, a full
    disk) leaves every previous output as it was, not new ones beside old.  A folder is
    replaced whole, so nothing of a previous run (a figure of another width) lingers in it.
    """

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []  # (temp, final)

    def file(self, path: str | Path) -> Path:
        """A temp file beside ``path`` to write; it becomes ``path`` on commit."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _sweep_dead_temps(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        self._staged.append((Path(tmp), path))
        return Path(tmp)

    def folder(self, path: str | Path) -> Path:
        """An empty temp folder beside ``path`` to fill; it replaces ``path`` on commit."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _sweep_dead_temps(path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent))
        self._staged.append((tmp, path))
        return tmp

    def commit(self) -> list[Path]:
        """Put every staged output in place (renames only); return their final paths."""
        done = []
        for tmp, final in self._staged:
            if tmp.is_dir():
                os.chmod(tmp, 0o755)
                old = final.with_name(f".{final.name}.{os.getpid()}.old.tmp")
                if final.exists():
                    os.replace(final, old)
                os.replace(tmp, final)
                _remove(old)
            else:
                os.chmod(tmp, 0o644)
                os.replace(tmp, final)
            WRITTEN.append(final)
            done.append(final)
        self._staged = []
        return done

    def abort(self) -> None:
        for tmp, _ in self._staged:
            _remove(tmp)
        self._staged = []

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, *exc) -> None:
        self.abort()  # after commit, nothing is left to remove


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


def json_text(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=False) + "\n"


def write_json(path: str | Path, obj) -> None:
    write_text(path, json_text(obj))


def csv_file(path: str | Path, header: Sequence[str], rows) -> None:
    """Rows (sequences of values) under a header line, comma-separated, quoted where needed."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_csv(path: str | Path, header: Sequence[str], rows) -> None:
    with atomic_path(path) as tmp:
        csv_file(tmp, header, rows)


def save_figure(fig, path: str | Path, **kwargs) -> None:
    """Save a matplotlib figure atomically (format from the suffix) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", **kwargs)
    plt.close(fig)


def torch_bytes(obj) -> bytes:
    """``torch.save`` to a buffer: stable bytes.

    Saved straight to a (temp) file, the archive holds that file's name (torch names the zip's
    top folder after it), so every rerun would give a model with a new hash, and dvc.lock and
    the run-cache would see new outputs each time.
    """
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def save_torch(obj, path: str | Path) -> None:
    write_bytes(path, torch_bytes(obj))
