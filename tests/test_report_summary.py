"""The report names the commit of the code and params behind its results: committing the
results afterwards (or regenerating them in a fresh clone) does not change that commit."""

from conftest import run
from nnstudies.report import summary


def commit(repo, message):
    run(f"git add -A && git -c user.name=t -c user.email=t@t commit -qm '{message}'", repo)
    return run(["git", "rev-parse", "HEAD"], repo).stdout.strip()


def test_code_version_skips_results_commits(tmp_path):
    run(["git", "init", "-q", "-b", "main"], tmp_path)
    (tmp_path / "params.yaml").write_text("hid: 6\n")
    code = commit(tmp_path, "code")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "a.json").write_text("{}")
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")
    commit(tmp_path, "results")
    assert summary.code_version(tmp_path)["commit"] == code
    (tmp_path / "README.md").write_text("docs")
    commit(tmp_path, "docs")  # not an input of the results either
    assert summary.code_version(tmp_path)["commit"] == code
    (tmp_path / "metrics" / "a.json").write_text('{"acc": 1}')  # a rerun's results: not dirty
    assert summary.code_version(tmp_path)["dirty"] is False
    (tmp_path / "params.yaml").write_text("hid: 5\n")  # an input changed: dirty
    assert summary.code_version(tmp_path)["dirty"] is True
    assert commit(tmp_path, "params") == summary.code_version(tmp_path)["commit"]
