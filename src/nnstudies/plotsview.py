"""``nnstudies plots [REVS...]``: `dvc plots diff` of the views dvc.yaml's top-level ``plots:``
declares, and nothing else.

Plain `dvc plots show` / `dvc plots diff` also draw every stage-level plot output, file by
file, with the output's one set of props: each ``results/*.json`` as a line chart of its
first list, each CSV of a ``plots/<stage>/`` folder as a line of its last column (a second,
meaningless twin of each confusion heat map), every figure.  DVC 3.67 offers no declaration
that avoids this and keeps those outputs plots (see dvc.yaml's header: a stage's cache: false
outputs must be metrics or plots, or DVC saves no run-cache entry).  So the curated page is
asked for by plot id: ``--targets`` regexes that match exactly the top-level ids.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from nnstudies import yamlfile
from nnstudies.errors import UserError

# Regex characters a --targets value may hold literally only inside a [...] class.  DVC turns
# every backslash of a target into "/" (dvcfs.from_os_path), so `\.` cannot escape.
_SPECIAL = set(".*+?()[{}|$")
_UNESCAPABLE = set("\\^]")


def curated_ids(root: Path | str = ".") -> list[str]:
    """The ids of dvc.yaml's top-level ``plots:``, in the order declared."""
    path = Path(root) / "dvc.yaml"
    if not path.is_file():
        raise UserError(f"no dvc.yaml in {Path(root).resolve()} (run `nnstudies plots` in a "
                        "clone of this project)")
    entries = (yamlfile.parse(path.read_text(encoding="utf8"), path) or {}).get("plots") or []
    ids = [entry if isinstance(entry, str) else next(iter(entry)) for entry in entries]
    if not ids:
        raise UserError(f"{path}: no top-level `plots:` to draw")
    return ids


def target(plot_id: str) -> str:
    """A ``--targets`` value that selects this plot id alone.

    DVC re.match()es each target against every plot id (a prefix match: ``kmnist_losses``
    would also take ``kmnist_losses_2``), and a target that names an existing file is drawn a
    second time as a plain file: anchoring with ``$`` and writing ``.`` as ``[.]`` avoids both.
    """
    if _UNESCAPABLE & set(plot_id):
        raise UserError(f"dvc.yaml: plot id {plot_id!r} holds one of \\ ^ ] , which a "
                        "`dvc plots --targets` regex cannot match literally; rename it")
    return "".join(f"[{c}]" if c in _SPECIAL else c for c in plot_id) + "$"


def command(revs: list[str], out: str, as_json: bool, root: Path | str = ".") -> list[str]:
    """The `dvc plots diff` command line (this environment's DVC, whatever is on PATH)."""
    shown = ["-o", out, *(["--json"] if as_json else [])]  # --json: images are copied to out
    targets = [target(plot_id) for plot_id in curated_ids(root)]
    return [sys.executable, "-m", "dvc", "plots", "diff", *revs, *shown, "--targets", *targets]


def show(revs: list[str], out: str = "dvc_plots", as_json: bool = False,
         root: Path | str = ".") -> str:
    """Run it; the page's path (or DVC's JSON, with ``as_json``)."""
    cmd = command(revs, out, as_json, root)
    try:
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        raise UserError(f"`dvc plots diff` could not run: {exc}") from None
    said = [line.removeprefix("ERROR: ") for line in proc.stderr.splitlines() if line.strip()]
    if proc.returncode != 0:
        raise UserError(f"`dvc plots diff {' '.join(revs)}` failed: "
                        f"{said[-1] if said else f'exit {proc.returncode}'}")
    if as_json:
        return proc.stdout.strip()
    page = Path(root, out, "index.html").resolve()
    if not page.is_file():  # DVC writes no page when no plot has data at these revisions
        raise UserError(f"`dvc plots diff {' '.join(revs)}` drew nothing: "
                        f"{said[-1] if said else 'no declared plot has data there'}")
    return str(page)
