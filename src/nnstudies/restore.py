"""Put a stage's last committed outputs back after a failed run.

DVC deletes a stage's outputs just before it runs the stage, so a stage that fails at run
time (a source that is down, a file that is spoilt) leaves them absent.  dvc.lock still
describes the last good run of that stage (DVC rewrites a stage's entry only on success):
its outputs that git tracks (metrics, plots, committed results) come back from git, the
cached ones (models, data, logs) from DVC's cache.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from nnstudies import yamlfile
from nnstudies.errors import UserError


def outputs(stage: str, lock: str | Path = "dvc.lock") -> list[str]:
    """The output paths of ``stage`` as dvc.lock records them."""
    entry = ((yamlfile.read(lock) or {}).get("stages") or {}).get(stage)
    if entry is None:
        raise UserError(f"{lock}: no stage '{stage}' (nothing recorded to restore; run `dvc repro`)")
    return [out["path"] for out in entry.get("outs", [])]


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise UserError(f"{cmd[0]} is not on PATH (activate the project's environment)") from None


def restore(stage: str, root: str | Path = ".") -> list[str]:
    """Restore ``stage``'s outputs; returns what came back from where."""
    root = Path(root)
    paths = outputs(stage, root / "dvc.lock")
    tracked = [p for p in paths if _run(["git", "ls-files", "--error-unmatch", p], root).returncode == 0]
    done = []
    if tracked:
        proc = _run(["git", "checkout", "HEAD", "--", *tracked], root)
        if proc.returncode != 0:
            raise UserError(f"git checkout of {', '.join(tracked)} failed: {proc.stderr.strip()}")
        done += [f"{p} (git)" for p in tracked]
    cached = [p for p in paths if p not in tracked]
    if cached:
        proc = _run(["dvc", "checkout", stage], root)
        if proc.returncode != 0:
            raise UserError(f"dvc checkout {stage}: {' '.join(proc.stderr.split())[:300]} (the "
                            f"cache lacks them: `dvc pull {stage}` from a remote, or `dvc repro "
                            f"{stage}` to remake them)")
        done += [f"{p} (DVC cache)" for p in cached]
    return done


def hint(stage: str) -> str:
    """What a failed stage run by DVC says after its error."""
    return (f"DVC removed the outputs of {stage} before running it: `nnstudies restore {stage}` "
            "puts the last committed ones back")
