"""`dvc exp apply` of one experiment after another (issue 24): a stage writes the same figure
files whatever its params, so none of an earlier experiment lingers, and `dvc status` is clean."""

import pytest
import yaml

from conftest import run, set_params

pytestmark = pytest.mark.pipeline

KEPT = ("validate_params", "train_checker")
FIGURES = ["check.png", "hidden.png", "history.csv", "history.png", "init.png", "lines.png", "out.png"]


def test_applying_two_experiments_in_turn_leaves_no_stale_figure(repo):
    set_params(repo, **{"checker.train.patience": 200, "checker.train.max_epochs": 20000})  # seconds
    # A copy has no DVC cache, and `dvc exp apply` fails on every out it cannot check out (the
    # models and datasets of main): the copy's pipeline is train_checker and what it needs.
    for name in ("dvc.yaml", "dvc.lock"):
        pipeline = yaml.safe_load((repo / name).read_text())
        (repo / name).write_text(yaml.safe_dump({**pipeline, "stages": {
            k: v for k, v in pipeline["stages"].items() if k in KEPT}}, sort_keys=False))
    run(["dvc", "repro", "train_checker"], repo)  # the baseline: hid 6, as committed on main
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "baseline"], repo)
    for name, hid in (("wide", 8), ("narrow", 4)):
        run(["dvc", "exp", "run", "-n", name, "-S", f"hid={hid}", "train_checker"], repo)
    refs = run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], repo).stdout.split()
    plots = repo / "plots/train_checker"
    for name, hid in (("wide", 8), ("narrow", 4)):  # narrow after wide: fewer units than before
        run(["dvc", "exp", "apply", name], repo)
        assert f"hid: {hid}" in (repo / "params.yaml").read_text()
        assert sorted(p.name for p in plots.iterdir()) == FIGURES
        # against the baseline only modified files: nothing added, nothing left behind
        changed = run(["git", "status", "--porcelain", "--untracked-files=all"], repo).stdout.splitlines()
        assert [line for line in changed if not line.startswith(" M ")] == []
        assert " M plots/train_checker/hidden.png" in changed
        (ref,) = [r for r in refs if r.endswith(f"/{name}")]
        in_experiment = run(["git", "ls-tree", "-r", "--name-only", ref, "plots/train_checker"], repo)
        assert [p.rpartition("/")[2] for p in in_experiment.stdout.split()] == FIGURES
        same = run(["git", "diff", "--quiet", ref, "--", "plots/train_checker"], repo, check=False)
        assert same.returncode == 0, f"plots/train_checker differs from experiment {name}'s commit"
        status = run(["dvc", "status", "train_checker"], repo).stdout
        assert "Data and pipelines are up to date" in status, status
