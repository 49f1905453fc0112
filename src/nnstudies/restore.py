"""Put a stage's last committed outputs back after a failed run.

DVC deletes a stage's outputs just before it runs the stage, so a stage that fails at run
time (a source that is down, a file that is spoilt) leaves them absent.  The outputs come
back as HEAD committed them, all from one run: those git tracks (metrics, plots, results)
from git, the cached ones (models, data, logs) from DVC's cache, as HEAD's dvc.lock records
them.  When the working dvc.lock records a newer, uncommitted run of the stage, that run's
git-tracked outputs are kept nowhere (``cache: false``), so its entry is set back to HEAD's
too (and said so): mixing its model with HEAD's metrics would be a result no run made.
"""

from __future__ import annotations

import shutil
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


def _committed_entry(stage: str, root: Path) -> dict:
    proc = _run(["git", "show", "HEAD:dvc.lock"], root)
    if proc.returncode != 0:
        raise UserError(f"{stage}: no committed dvc.lock in {root} (nothing committed to restore)")
    entry = ((yamlfile.parse(proc.stdout, "HEAD:dvc.lock") or {}).get("stages") or {}).get(stage)
    if entry is None:
        raise UserError(f"HEAD:dvc.lock: no stage '{stage}' (never committed: `dvc repro {stage}` "
                        "makes it)")
    return entry


def _set_back(stage: str, root: Path) -> bool:
    """Make the working dvc.lock's entry of ``stage`` HEAD's; True when it differed."""
    from ruamel.yaml import YAML

    committed = _committed_entry(stage, root)
    lock = root / "dvc.lock"
    if ((yamlfile.read(lock) or {}).get("stages") or {}).get(stage) == committed:
        return False
    from nnstudies import atomic

    yaml = YAML()  # round trip: every other stage's entry stays as DVC wrote it
    yaml.width = 4096
    doc = yaml.load(lock.read_text())
    head = yaml.load(_run(["git", "show", "HEAD:dvc.lock"], root).stdout)
    doc["stages"][stage] = head["stages"][stage]
    with atomic.atomic_path(lock) as tmp, open(tmp, "w") as f:
        yaml.dump(doc, f)
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise UserError(f"{cmd[0]} is not on PATH (activate the project's environment)") from None


def restore(stage: str, root: str | Path = ".") -> list[str]:
    """Restore ``stage``'s outputs as HEAD committed them; returns what came back from where."""
    root = Path(root)
    outputs(stage, root / "dvc.lock")  # a stage DVC never ran is one line
    done = []
    if _set_back(stage, root):
        done.append(f"dvc.lock's entry of {stage} (it recorded an uncommitted run, whose "
                    "metrics, results and plots are kept nowhere; now HEAD's run; `dvc repro "
                    f"{stage}` remakes the other)")
    paths = outputs(stage, root / "dvc.lock")
    tracked = [p for p in paths if _run(["git", "cat-file", "-e", f"HEAD:{p}"], root).returncode == 0]
    if tracked:
        # A folder comes back as HEAD has it, without the files an uncommitted run added
        # (figures of another `hid`): git checkout alone leaves untracked files in place.
        for p in tracked:
            _remove(root / p)
        proc = _run(["git", "checkout", "--no-overlay", "HEAD", "--", *tracked], root)
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
