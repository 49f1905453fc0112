"""The params check that runs before every other stage: bad values and values that would not
fit in memory stop the pipeline before DVC removes any result."""

import shutil

import pytest

from conftest import ROOT, SAMPLE, run, set_params

STAGE = ["python", str(ROOT / "stages" / "validate_params.py"), "--out", "params.ok"]


@pytest.fixture
def workdir(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(ROOT / SAMPLE, tmp_path / SAMPLE)
    return tmp_path


def test_committed_params_pass_and_the_output_never_changes(workdir):
    run(STAGE, workdir)
    first = (workdir / "params.ok").read_bytes()
    set_params(workdir, hid=5, **{"seq.train.lr": 0.002})  # valid edits: same output, so
    run(STAGE, workdir)                                      # nothing downstream reruns for it
    assert (workdir / "params.ok").read_bytes() == first


@pytest.mark.parametrize("key,value,message", [
    ("hid", "abc", "params.yaml: hid = 'abc': must be an integer from 1 to 64"),
    ("kmnist.source", "no/such/dir", "kmnist.source = 'no/such/dir': no such directory"),
    ("kmnist.conv.fc", 100000, "needs about 4.9 GB, over the 4 GB budget"),
    ("seq.grammar.train_sequences", 3_000_001, "of anbn (mean length 46.0) needs about 4.1 GB"),
    ("seq.anbncn.epochs", 300_000, "seq.anbncn.epochs = 300000 needs 300001 training sequences, "
                                   "seq.grammar.train_sequences is 200001 (raise it)"),
    ("seq.beyond.anbncn_lstm.epochs", 300_000, "seq.beyond.anbncn_lstm.epochs = 300000 needs "
                                               "300001 training sequences"),
    ("seq.beyond.anbn_wide.max_n", 64, "seq.beyond.probe_max_n = 64 must exceed every trained "
                                       "max_n (64: the probe measures n beyond it)"),
])
def test_bad_or_oversized_params_are_one_line_and_write_nothing(workdir, key, value, message):
    set_params(workdir, **{key: value})
    proc = run(STAGE, workdir, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr
    assert message in lines[0], lines[0]
    # no git here: nothing to compare with
    assert lines[0].endswith("(no other stage ran and no result was removed; fix params.yaml)")
    assert not (workdir / "params.ok").exists()


def tree(repo, folders=("metrics", "plots", "data", "models")) -> dict:
    return {str(p.relative_to(repo)): p.read_bytes() for folder in folders
            for p in sorted((repo / folder).rglob("*")) if p.is_file()}


@pytest.mark.pipeline
def test_bad_value_through_dvc_exp_run_keeps_every_result(repo):
    """`dvc exp run -S` with a bad value stops at validate_params: no result is deleted, and
    the line says how to get the committed params.yaml back."""
    run(["dvc", "repro", "hand_checker"], repo, NNSTUDIES_TRACKING="off")
    run("git add -A && git -c user.name=t -c user.email=t@t commit -q --allow-empty -m results", repo)
    before = tree(repo)
    assert "metrics/hand_checker.json" in before and "data/params.ok" in before
    proc = run(["dvc", "exp", "run", "-S", "checker.hand.scale=-1"], repo, check=False,
               NNSTUDIES_TRACKING="off")
    assert proc.returncode != 0
    assert ("error: params.yaml: checker.hand.scale = -1: must be a number > 0 (no other stage ran "
            "and no result was removed, but `dvc exp run -S` has written its values into "
            "params.yaml; `git checkout params.yaml` puts the committed file back (it holds no "
            "other change))") in proc.stderr
    assert run(["git", "status", "--short"], repo).stdout.split() == ["M", "params.yaml"]
    assert "Traceback" not in proc.stderr
    after = tree(repo)
    assert {k: v for k, v in after.items() if k != "data/params.ok"} == \
        {k: v for k, v in before.items() if k != "data/params.ok"}
    run(["git", "checkout", "params.yaml"], repo)  # what the line says brings the values back
    assert "Running stage" not in run(["dvc", "repro", "hand_checker"], repo,
                                      NNSTUDIES_TRACKING="off").stdout.replace(
        "Running stage 'validate_params'", "")


@pytest.mark.pipeline
def test_runtime_failure_names_the_command_that_restores_the_results(repo):
    """A stage that fails at run time (its source went down) has lost its outputs to DVC; the
    error line names `nnstudies restore <stage>`, which brings them back byte for byte."""
    import socket

    run(["dvc", "repro", "fetch_kmnist"], repo, NNSTUDIES_TRACKING="off")
    run("git add -A && git -c user.name=t -c user.email=t@t commit -q --allow-empty -m results", repo)
    good = tree(repo, ("metrics", "data/kmnist"))
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    set_params(repo, **{"kmnist.source": f"http://127.0.0.1:{port}/"})
    proc = run(["dvc", "repro", "fetch_kmnist"], repo, check=False, NNSTUDIES_TRACKING="off")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert ("; DVC removed the outputs of fetch_kmnist before running it: `nnstudies restore "
            "fetch_kmnist` puts the last committed ones back") in proc.stderr
    assert not (repo / "metrics" / "fetch_kmnist.json").exists()
    restored = run(["nnstudies", "restore", "fetch_kmnist"], repo)
    assert "restored metrics/fetch_kmnist.json (git)" in restored.stdout
    assert "restored data/kmnist (DVC cache)" in restored.stdout
    assert tree(repo, ("metrics", "data/kmnist")) == good
