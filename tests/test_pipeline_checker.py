"""Study 2 through DVC in a temp copy of the repo: both stages, MLflow runs, `-S hid=5`."""

import json

import pytest

from conftest import run, set_params

pytestmark = pytest.mark.pipeline


def test_check_stages_then_hid_5_reruns_only_the_trained_net(repo):
    first = run(["dvc", "repro", "train_check", "hand_check"], repo)
    assert "restarts met the rule" in first.stdout  # a summary; the course log is in train.log
    assert "Final Accuracy:  100.0" in (repo / "plots/train_check/train.log").read_text()
    trained = json.loads((repo / "metrics/train_check.json").read_text())
    assert trained["accuracy"] == 1.0 and trained["restarts_succeeded"] >= 1
    handed = json.loads((repo / "metrics/hand_check.json").read_text())
    assert handed["step"]["accuracy"] == 1.0 and handed["sigmoid"]["accuracy"] == 1.0
    assert handed["step"]["output_margin"] > 0 and handed["seed_design"]["step"]["output_margin"] == 0
    figures = repo / "plots/train_check/figures"
    assert sorted(p.name for p in figures.glob("hid_*")) == [f"hid_6_{i}.png" for i in range(6)]
    log = (repo / "plots/train_check/train.log").read_text()
    assert log.startswith("ep:  100 loss: ") and "Final Weights:" in log
    for name in ("step", "sigmoid"):
        assert (repo / f"plots/hand_check/figures/{name}/out_4.png").exists()
        assert (repo / f"plots/hand_check/activations_{name}.md").read_text().count("\n") == 11

    # MLflow: one run per stage, with params, per-epoch curves and figures.
    from mlflow.tracking import MlflowClient

    from nnstudies import tracking

    assert tracking.flush(repo).failed == []  # the stages' runs may still be on their way

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name("checkerboard-mlp")
    runs = {r.data.tags["dvc.stage"]: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == {"train_check", "hand_check"}
    train_run = runs["train_check"]
    assert train_run.data.params["hid"] == "6" and train_run.data.params["check.restarts"] == "16"
    curve = client.get_metric_history(train_run.info.run_id, "loss")
    assert len(curve) == sum(line.startswith("ep:") for line in log.splitlines()) + 1  # + final
    artifacts = [a.path for a in client.list_artifacts(train_run.info.run_id, "plots/figures")]
    assert "plots/figures/out_6.png" in artifacts

    # Vary the knob as users type it, against a committed baseline.
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "baseline"], repo)
    again = run(["dvc", "exp", "run", "-n", "hid5", "-S", "hid=5", "train_check", "hand_check"], repo)
    assert "Running stage 'train_check'" in again.stdout
    assert "Running stage 'hand_check'" not in again.stdout
    assert sorted(p.name for p in figures.glob("hid_*")) == [f"hid_5_{i}.png" for i in range(5)]
    assert (figures / "out_5.png").exists() and not (figures / "out_6.png").exists()
    assert json.loads((repo / "metrics/train_check.json").read_text())["hid"] == 5

    # The experiment shows in `dvc exp show`, `dvc metrics diff` against the baseline shows the
    # changed metric, and its MLflow run carries the experiment's name.
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    names = [e["revs"][0].get("name") for rev in shown for e in rev.get("experiments") or []]
    assert "hid5" in names
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], repo).stdout)
    assert diff["metrics/train_check.json"]["hid"] == {"old": 6, "new": 5, "diff": -1}
    tracking.flush(repo)
    exp_runs = client.search_runs([exp.experiment_id], "tags.`dvc.exp_name` = 'hid5'")
    assert [r.data.tags["dvc.stage"] for r in exp_runs] == ["train_check"]
    assert exp_runs[0].data.params["hid"] == "5"

    # Back to hid=6: DVC's run-cache restores the first run's outputs without training, so
    # no new MLflow run is logged.
    runs_before = len(client.search_runs([exp.experiment_id]))
    back = run(["dvc", "exp", "run", "-n", "back6", "-S", "hid=6", "train_check"], repo)
    assert "Stage 'train_check' is cached - skipping run" in back.stdout
    assert "Running stage 'train_check'" not in back.stdout
    assert json.loads((repo / "metrics/train_check.json").read_text()) == trained
    assert tracking.pending(repo) == []  # nothing recorded, nothing on its way
    assert len(client.search_runs([exp.experiment_id])) == runs_before


def test_bad_hid_is_a_one_line_error_and_writes_nothing(repo):
    metrics = repo / "metrics/train_check.json"
    before = metrics.read_bytes() if metrics.exists() else None  # main commits its results
    set_params(repo, hid=0)
    proc = run(["python", "stages/train_check.py"], repo, check=False, NNSTUDIES_TRACKING="off")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: params.yaml: hid = 0: must be an integer from 1 to 64"
    assert (metrics.read_bytes() if metrics.exists() else None) == before
