"""Study 2 through DVC in a temp copy of the repo: both stages, MLflow runs, `-S hid=5`, and
DVC's run-cache bringing hid=6 back without training.  (What the stages write is tested in
process in test_checker.py; this is the one end-to-end run.)"""

import json

import pytest

from conftest import run, set_params

pytestmark = pytest.mark.pipeline


def test_checker_stages_then_hid_5_reruns_only_the_trained_net(repo):
    set_params(repo, **{"checker.train.patience": 200})  # the course's rule, shorter: seconds
    run(["dvc", "repro", "train_checker", "hand_checker"], repo)
    assert "Final Accuracy:  100.0" in (repo / "logs/train_checker/train.log").read_text()
    trained = json.loads((repo / "metrics/train_checker.json").read_text())
    assert trained["accuracy"] == 1.0 and trained["restarts_succeeded"] >= 1
    handed = json.loads((repo / "metrics/hand_checker.json").read_text())
    assert handed["step"]["accuracy"] == 1.0 and handed["sigmoid"]["accuracy"] == 1.0
    plots = repo / "plots/train_checker"
    figures = ["check.png", "hidden.png", "history.png", "init.png", "lines.png", "out.png"]
    assert sorted(p.name for p in plots.glob("*.png")) == figures
    assert (repo / "plots/hand_checker/sigmoid_out.png").exists()
    hidden_6 = (plots / "hidden.png").read_bytes()

    # MLflow: one run per stage in the study's experiment, with params, curves and figures.
    from mlflow.tracking import MlflowClient

    from nnstudies import tracking

    assert tracking.flush(repo).failed == []  # the stages' runs may still be on their way
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name("checker")
    runs = {r.data.tags["dvc.stage"]: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == {"train_checker", "hand_checker"}
    train_run = runs["train_checker"]
    assert train_run.data.params["hid"] == "6"
    assert train_run.data.params["checker.train.restarts"] == "16"
    log = (repo / "logs/train_checker/train.log").read_text()
    curve = client.get_metric_history(train_run.info.run_id, "loss")
    assert len(curve) == sum(line.startswith("ep:") for line in log.splitlines()) + 1  # + final
    artifacts = [a.path for a in client.list_artifacts(train_run.info.run_id, "plots/train_checker")]
    assert "plots/train_checker/hidden.png" in artifacts

    # Vary the knob as users type it, against a committed baseline.
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "baseline"], repo)
    again = run(["dvc", "exp", "run", "-n", "hid5", "-S", "hid=5", "train_checker", "hand_checker"],
                repo)
    assert "Running stage 'train_checker'" in again.stdout
    assert "Running stage 'hand_checker'" not in again.stdout
    assert sorted(p.name for p in plots.glob("*.png")) == figures  # the same names, redrawn
    assert (plots / "hidden.png").read_bytes() != hidden_6
    results = json.loads((repo / "results/train_checker.json").read_text())
    assert results["settings"]["hid"] == 5 and len(results["lines"]) == 5

    # The experiment shows in `dvc exp show`, `dvc metrics diff` against the baseline shows the
    # changed metrics, and its MLflow run carries the experiment's name.
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    names = [e["revs"][0].get("name") for rev in shown for e in rev.get("experiments") or []]
    assert "hid5" in names
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], repo).stdout)
    assert diff["metrics/train_checker.json"]["loss"]["old"] == trained["loss"]
    tracking.flush(repo)
    exp_runs = client.search_runs([exp.experiment_id], "tags.`dvc.exp_name` = 'hid5'")
    assert [r.data.tags["dvc.stage"] for r in exp_runs] == ["train_checker"]
    assert exp_runs[0].data.params["hid"] == "5"

    # Back to hid=6: DVC's run-cache restores the first run's outputs without training, so
    # no new MLflow run is logged.
    runs_before = len(client.search_runs([exp.experiment_id]))
    back = run(["dvc", "exp", "run", "-n", "back6", "-S", "hid=6", "train_checker"], repo)
    assert "Stage 'train_checker' is cached - skipping run" in back.stdout
    assert "Running stage 'train_checker'" not in back.stdout
    assert json.loads((repo / "metrics/train_checker.json").read_text()) == trained
    assert tracking.pending(repo) == []  # nothing recorded, nothing on its way
    assert len(client.search_runs([exp.experiment_id])) == runs_before
