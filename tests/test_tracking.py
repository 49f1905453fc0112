"""Tracking writes a real run to a temp sqlite database."""

import pytest

from nnstudies import tracking


def test_run_logs_params_stepped_metrics_and_artifact(tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.setenv("DVC_EXP_NAME", "exp-abc")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("NNSTUDIES_TRACKING", raising=False)
    figure = tmp_path / "figure.png"
    figure.write_bytes(b"\x89PNG fake bytes for the artifact store")
    params = {"kuzu": {"lin": {"lr": 0.01}}, "tracking": {"enabled": True, "required": False}}
    with tracking.start("kmnist", "train_kmnist@lin", params) as run:
        for epoch in range(1, 4):
            run.log_metrics({"test_accuracy": 0.5 + epoch / 10}, step=epoch)
        run.log_artifact(figure, "plots")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    got = client.get_run(run.run_id)
    assert got.data.params["kuzu.lin.lr"] == "0.01"
    assert got.data.tags["dvc.stage"] == "train_kmnist@lin"
    assert got.data.tags["dvc.exp_name"] == "exp-abc"
    assert got.info.status == "FINISHED"
    history = client.get_metric_history(run.run_id, "test_accuracy")
    assert [(m.step, round(m.value, 3)) for m in history] == [(1, 0.6), (2, 0.7), (3, 0.8)]
    assert [a.path for a in client.list_artifacts(run.run_id, "plots")] == ["plots/figure.png"]
    assert (tmp_path / "mlartifacts").is_dir()


def test_queue_temp_copy_logs_to_main_repo(tmp_path):
    (tmp_path / ".dvc").mkdir()
    temp_copy = tmp_path / ".dvc" / "tmp" / "exps" / "tmpab12" / "sub"
    temp_copy.mkdir(parents=True)
    assert tracking.repo_root(temp_copy) == tmp_path


def test_server_down_warns_unless_required(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9/")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with tracking.start("kmnist", "s", {"tracking": {"enabled": True, "required": False}}) as run:
        run.log_metrics({"x": 1.0})
    assert "warning: MLflow tracking" in capsys.readouterr().err
    with pytest.raises(tracking.TrackingError, match="not reachable"):
        tracking.start("kmnist", "s", {"tracking": {"enabled": True, "required": True}})


def test_switched_off_logs_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.setenv("NNSTUDIES_TRACKING", "off")
    with tracking.start("kmnist", "s", {"tracking": {"enabled": True, "required": False}}) as run:
        run.log_metrics({"x": 1.0})
    assert run.run_id is None and not (tmp_path / "mlflow.db").exists()
