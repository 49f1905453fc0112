"""The per-point cache of a sweep: every finished point's result, under a key of all it depends on.

A point's key hashes its coordinates and settings (task, size, seed, budget, the training
params: everything in the point) and the code that trains it: the bytes of the modules its
training function runs (``code_hash``, each study's ``CODE``) and numerics.txt, the pins of
the packages that decide numbers.  The scheduler, the worker count and the batch size are not
in it: they change no result.  One JSON line per point, sorted by key, in
``points/<stage>.jsonl``: committed in git (a `persist`, uncached DVC output), so a fresh
clone's `dvc repro` trains no point, adding a seed trains only its points, and a sweep that
lost its scheduler keeps what finished.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from nnstudies import atomic
from nnstudies.errors import UserError

PACKAGE = Path(__file__).resolve().parents[1]  # src/nnstudies
NUMERICS = PACKAGE.parents[1] / "numerics.txt"


def code_hash(modules: tuple[str, ...], package: Path = PACKAGE, numerics: Path = NUMERICS) -> str:
    """sha256 over the named modules (paths under the package) and the numerics pins."""
    digest = hashlib.sha256()
    for name in sorted(modules):
        digest.update(name.encode() + b"\0" + (package / name).read_bytes() + b"\0")
    if numerics.is_file():  # an installed package has no pins file: its versions are fixed
        digest.update(numerics.read_bytes())
    return digest.hexdigest()


def key(point: dict, code: str) -> str:
    return hashlib.sha256(json.dumps({"point": point, "code": code}, sort_keys=True)
                          .encode()).hexdigest()[:20]


class PointCache:
    """{key: {"point": ..., "result": ...}} read from and written back to one JSONL file."""

    def __init__(self, path: str | Path, code: str):
        self.path, self.code = Path(path), code
        self.entries: dict[str, dict] = {}
        if self.path.exists():
            for n, line in enumerate(self.path.read_text().splitlines(), 1):
                try:
                    entry = json.loads(line)
                    self.entries[entry["key"]] = entry
                except (ValueError, KeyError, TypeError):
                    raise UserError(f"{self.path}:{n}: not a point of the sweep cache (one JSON "
                                    "object with key, point, result per line); delete the file "
                                    "to retrain every point") from None

    def key(self, point: dict) -> str:
        return key(point, self.code)

    def get(self, point: dict) -> dict | None:
        entry = self.entries.get(self.key(point))
        return None if entry is None else entry["result"]

    def cpu_path(self, point: dict) -> dict:
        """The CPU path the point was computed on (nnstudies.cpu.path)."""
        return self.entries[self.key(point)]["cpu_path"]

    def put(self, pairs: list[tuple[dict, dict]], cpu_path: dict | None = None) -> None:
        """Add (point, result) pairs and rewrite the file (atomically: a kill leaves the old)."""
        for point, result in pairs:
            k = self.key(point)
            self.entries[k] = {"key": k, "code": self.code, "point": point, "result": result,
                               "cpu_path": cpu_path}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(self.path, "".join(json.dumps(self.entries[k], sort_keys=True) + "\n"
                                             for k in sorted(self.entries)))

    def drop_stale(self) -> None:
        """Drop the points trained by other code (they can never be read again, unless that
        code comes back); points of other settings stay, so going back to a budget or a seed
        count trains nothing."""
        if any(e.get("code") != self.code for e in self.entries.values()):
            self.entries = {k: e for k, e in self.entries.items() if e.get("code") == self.code}
            self.put([])
