"""`dvc repro` of the three KMNIST training stages on the bundled sample, in a temp copy."""

import json

import pytest

from conftest import SAMPLE, run, set_params

pytestmark = pytest.mark.pipeline
NETS = ("lin", "full", "conv")


def test_three_stages_then_full_params_rerun_only_full(repo):
    set_params(repo, **{"kmnist.source": SAMPLE, "kuzu.train.epochs": 1})
    first = run(["dvc", "repro", "train_kmnist"], repo, OMP_NUM_THREADS=1)
    for net in NETS:
        assert f"Running stage 'train_kmnist@{net}'" in first.stdout
        metrics = json.loads((repo / f"metrics/train_kmnist_{net}.json").read_text())
        assert metrics["parameters"] == metrics["parameters_formula"]
        assert metrics["epochs"] == 1 and metrics["train_images"] == 8000
        assert 0.3 < metrics["test_accuracy"] <= 1 and "seconds_per_epoch" not in metrics
        plots = repo / f"plots/train_kmnist_{net}"
        assert (plots / "history.csv").read_text().startswith("epoch,train_loss,test_loss,test_accuracy\n1,")
        assert len((plots / "confusion.csv").read_text().splitlines()) == 1001
        assert "Test set: Average loss:" in (plots / "train.log").read_text()
        for png in ("confusion.png", "most_confused.png"):
            assert (plots / png).read_bytes().startswith(b"\x89PNG")
        assert (repo / f"models/kmnist_{net}.pt").stat().st_size > 0

    # The stage's MLflow run: params, per-epoch metrics, figures and tables.
    from mlflow.tracking import MlflowClient

    from nnstudies import tracking

    assert tracking.flush(repo).failed == []  # the stages' runs may still be on their way
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("kmnist-classifiers")
    runs = client.search_runs([experiment.experiment_id], "tags.`dvc.stage` = 'train_kmnist@conv'")
    assert len(runs) == 1 and runs[0].data.params["kuzu.conv.channels2"] == "64"
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "test_accuracy")] == [1]
    logged = {a.path for a in client.list_artifacts(runs[0].info.run_id, "plots")}
    assert {"plots/confusion.png", "plots/most_confused.png", "plots/confusion_matrix.csv"} <= logged

    set_params(repo, **{"kuzu.full.hidden": 50})
    second = run(["dvc", "repro", "train_kmnist"], repo, OMP_NUM_THREADS=1)
    assert "Running stage 'train_kmnist@full'" in second.stdout
    assert "Running stage 'train_kmnist@lin'" not in second.stdout
    assert "Running stage 'train_kmnist@conv'" not in second.stdout
    assert json.loads((repo / "metrics/train_kmnist_full.json").read_text())["parameters"] == 795 * 50 + 10
