"""`dvc repro` of Study 1 (fetch_kmnist and the three train_kmnist stages) on the bundled
sample, in a temp copy: the real pipeline, its MLflow runs, and that an edit of one net's
params reruns only that net."""

import json

import pytest

from conftest import SAMPLE, run, set_params

pytestmark = pytest.mark.pipeline
NETS = ("lin", "full", "conv")


def test_fetch_and_three_nets_then_full_params_rerun_only_full(repo):
    set_params(repo, **{"kmnist.source": SAMPLE, "kmnist.train.epochs": 1})
    first = run(["dvc", "repro", "train_kmnist"], repo, OMP_NUM_THREADS=1)
    assert "Running stage 'fetch_kmnist'" in first.stdout
    fetched = json.loads((repo / "results/fetch_kmnist.json").read_text())
    assert fetched["source"] == SAMPLE and fetched["train_images"] == 8000
    for net in NETS:
        assert f"Running stage 'train_kmnist@{net}'" in first.stdout
        metrics = json.loads((repo / f"metrics/train_kmnist_{net}.json").read_text())
        results = json.loads((repo / f"results/train_kmnist_{net}.json").read_text())
        assert metrics["train_images"] == 8000 and 0.3 < metrics["test_accuracy"] <= 1
        assert results["settings"]["epochs"] == 1 and results["confused_pairs"]
        assert results["data"]["md5"] == {f["name"]: f["md5"] for f in fetched["files"]}
        assert (repo / f"plots/train_kmnist_{net}/confused_pairs.png").read_bytes().startswith(b"\x89PNG")
        assert (repo / f"models/kmnist_{net}.pt").stat().st_size > 0

    # The stage's MLflow run: params, per-epoch metrics, figures and the results file.
    from mlflow.tracking import MlflowClient

    from nnstudies import tracking

    assert tracking.flush(repo).failed == []  # the stages' runs may still be on their way
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("kmnist")
    runs = client.search_runs([experiment.experiment_id], "tags.`dvc.stage` = 'train_kmnist@conv'")
    assert len(runs) == 1 and runs[0].data.params["kmnist.conv.channels2"] == "64"
    # per epoch (step 1), and the final value again at the last epoch's step by the skeleton
    assert {m.step for m in client.get_metric_history(runs[0].info.run_id, "test_accuracy")} == {1}
    assert client.get_metric_history(runs[0].info.run_id, "epoch_seconds")
    logged = {a.path for folder in ("plots/train_kmnist_conv", "results")
              for a in client.list_artifacts(runs[0].info.run_id, folder)}
    assert {"plots/train_kmnist_conv/confused_pairs.png", "results/train_kmnist_conv.json"} <= logged

    set_params(repo, **{"kmnist.full.hidden": 50})
    second = run(["dvc", "repro", "train_kmnist"], repo, OMP_NUM_THREADS=1)
    assert "Running stage 'train_kmnist@full'" in second.stdout
    for stage in ("fetch_kmnist", "train_kmnist@lin", "train_kmnist@conv"):
        assert f"Running stage '{stage}'" not in second.stdout
    assert json.loads((repo / "metrics/train_kmnist_full.json").read_text())["parameters"] == 795 * 50 + 10
