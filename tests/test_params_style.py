"""params.yaml is written the way `dvc exp run -S` writes it back, so an experiment's (or a
profile switch's) `git diff params.yaml` shows only the lines of the values it set."""

import difflib
import shutil

import pytest

from conftest import ROOT, run
from nnstudies import params, profiles


def changed_lines(before: str, after: str) -> list[str]:
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")]


def dvc_set(path, *overrides: str) -> str:
    """What `dvc exp run -S` does to params.yaml before any stage runs (DVC's own function)."""
    from dvc.utils.hydra import apply_overrides

    apply_overrides(path, list(overrides))
    return path.read_text()


@pytest.fixture
def workdir(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    return tmp_path


def test_dvc_writes_back_only_the_line_it_sets(workdir):
    path, committed = workdir / "params.yaml", (ROOT / "params.yaml").read_text()
    assert dvc_set(path, "hid=6") == committed  # the committed value: not one byte moves
    assert changed_lines(committed, dvc_set(path, "hid=4")) == [
        "-hid: 6                    # hidden units of the trained Part 2 MLP (`dvc exp run -S hid=4`)",
        "+hid: 4                    # hidden units of the trained Part 2 MLP (`dvc exp run -S hid=4`)"]
    path.write_text(committed)
    after = dvc_set(path, "checker.train.lr=0.02", "seq.anbn.success.error=0.05")
    assert changed_lines(committed, after) == [
        "-    lr: 0.01              # Adam", "+    lr: 0.02              # Adam",
        "-    success: {error: 0.03}", "+    success: {error: 0.05}"]
    assert params.read(path)["seq"]["anbncn"]["success"] == {"error": 0.03}  # its twin untouched


def test_profile_switches_write_in_the_same_style(workdir):
    """`nnstudies profile` changes only what the profile sets; `default` gives the bytes back,
    and DVC's writer leaves a profile's output as it is (the same style)."""
    path, committed = workdir / "params.yaml", (ROOT / "params.yaml").read_text()
    profiles.apply("ci", path, workdir / "profiles")
    ci = path.read_text()
    changed = changed_lines(committed, ci)
    assert "+profile: ci               # which bounds of gates.yaml apply: default, ci or paper" in changed
    assert len(changed) < 60 and not any("title" in line for line in changed)
    assert dvc_set(path, "profile=ci") == ci
    profiles.apply("default", path, workdir / "profiles")
    assert path.read_text() == committed


@pytest.mark.pipeline
def test_exp_run_set_param_commits_a_one_line_diff(repo):
    """The README's knob example, as typed, on the cheapest stage: the experiment's commit
    differs from its baseline in params.yaml by the one line of `hid`."""
    run(["dvc", "exp", "run", "-n", "hid4", "-S", "hid=4", "validate_params"], repo,
        NNSTUDIES_TRACKING="off")
    [ref] = [r for r in run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], repo)
             .stdout.split() if r.endswith("/hid4")]
    numstat = run(["git", "diff", "--numstat", "HEAD", ref, "--", "params.yaml"], repo).stdout
    assert numstat.split() == ["1", "1", "params.yaml"]
    assert run(["git", "diff", "--numstat", "params.yaml"], repo).stdout.split() == ["1", "1", "params.yaml"]
