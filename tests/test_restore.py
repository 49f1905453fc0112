"""`nnstudies restore <stage>` after a failed `dvc repro -s`: every output of the stage comes
back from HEAD's one run, never a mix of HEAD's metrics and an uncommitted run's model."""

from pathlib import Path

import pytest
import yaml

from conftest import run, set_params
from nnstudies import layout, restore

pytestmark = pytest.mark.pipeline

STAGE = "train_checker"
OUTPUTS = sorted(str(p) for p in layout.outs(STAGE))  # metrics, results, plots, logs, model
MODEL = str(layout.CHECKER_MODEL)
TINY = {"checker.train.restarts": 2, "checker.train.max_epochs": 300,
        "checker.train.patience": 50, "checker.train.log_every": 100,
        "checker.train.threads": 1, "tracking.enabled": False}


def tree(repo: Path) -> dict[str, bytes]:
    """Every file of the stage's outputs: relative path -> bytes."""
    files = {}
    for name in OUTPUTS:
        path = repo / name
        for f in ([path] if path.is_file() else sorted(path.rglob("*")) if path.exists() else []):
            if f.is_file():
                files[str(f.relative_to(repo))] = f.read_bytes()
    return files


def lock_entry(text: str) -> dict:
    return yaml.safe_load(text)["stages"][STAGE]


def head_entry(repo: Path) -> dict:
    return lock_entry(run(["git", "show", "HEAD:dvc.lock"], repo).stdout)


def fail_with_bad_lr(repo: Path) -> None:
    """The stage run alone (`-s`: no params check before it) with an lr it refuses: DVC has
    deleted its outputs by then, and the one line says what brings them back."""
    set_params(repo, **{"checker.train.lr": -1})
    proc = run(["dvc", "repro", "-s", STAGE], repo, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: params.yaml: checker.train.lr = -1: must be a number > 0; DVC removed the "
        f"outputs of {STAGE} before running it: `nnstudies restore {STAGE}` puts the last "
        "committed ones back"], proc.stderr
    assert not (repo / "metrics/train_checker.json").exists()
    assert not (repo / MODEL).exists()


def assert_as_committed(repo: Path, committed: dict[str, bytes]) -> None:
    assert tree(repo) == committed
    assert lock_entry((repo / "dvc.lock").read_text()) == head_entry(repo)
    status = run(["dvc", "status", STAGE], repo)
    assert STAGE not in status.stdout, status.stdout


def test_restore_after_an_uncommitted_run_gives_back_heads_run_whole(repo):
    set_params(repo, **TINY, **{"checker.train.lr": 0.01})
    run(["dvc", "repro", STAGE], repo)
    run("git add -A && git -c user.name=t -c user.email=t@t commit -qm 'run A'", repo)
    assert sorted(restore.outputs(STAGE, repo / "dvc.lock")) == OUTPUTS  # dvc.yaml's outs
    committed = tree(repo)
    assert len(committed) >= 6 and MODEL in committed

    # Run B, left uncommitted: another lr, so every output differs from A's.
    set_params(repo, **{"checker.train.lr": 0.02})
    run(["dvc", "repro", STAGE], repo)
    uncommitted = tree(repo)
    assert uncommitted.keys() == committed.keys()
    assert all(uncommitted[k] != committed[k] for k in (
        "metrics/train_checker.json", MODEL, "logs/train_checker/train.log"))
    assert lock_entry((repo / "dvc.lock").read_text()) != head_entry(repo)

    fail_with_bad_lr(repo)
    set_params(repo, **{"checker.train.lr": 0.01})  # HEAD's value again
    others = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    restored = run(["nnstudies", "restore", STAGE], repo).stdout.splitlines()
    after = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert {k: v for k, v in after.items() if k != STAGE} == \
        {k: v for k, v in others.items() if k != STAGE}  # every other entry as DVC wrote it
    assert restored[0].startswith(f"restored dvc.lock's entry of {STAGE} (it recorded an "
                                  "uncommitted run"), restored
    assert f"restored {MODEL} (DVC cache)" in restored
    assert "restored metrics/train_checker.json (git)" in restored
    assert_as_committed(repo, committed)

    # Nothing differs from HEAD now: a second failure and restore sets nothing back, and a
    # figure no committed run made (another `hid`'s) does not linger in the plots folder.
    fail_with_bad_lr(repo)
    set_params(repo, **{"checker.train.lr": 0.01})
    (repo / "plots/train_checker").mkdir(parents=True)
    (repo / "plots/train_checker/hid_5_0.png").write_bytes(b"not HEAD's")
    restored = run(["nnstudies", "restore", STAGE], repo).stdout
    assert "dvc.lock" not in restored and "restored metrics/train_checker.json (git)" in restored
    assert_as_committed(repo, committed)
