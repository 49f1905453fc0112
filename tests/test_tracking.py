"""Tracking writes a record to the outbox, and a flush lands it as a real run in a temp sqlite
database: every param, metric (steps, timestamps), tag, artifact and time."""

import json
import os
import sqlite3
import time

import pytest

from conftest import landed_run, run
from nnstudies import tracking

ON = {"tracking": {"enabled": True, "required": False}}
REQUIRED = {"tracking": {"enabled": True, "required": True}}


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A repo root with the default sqlite store; tracking on, asynchronous."""
    (tmp_path / ".dvc").mkdir()
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    for name in ("MLFLOW_TRACKING_URI", "NNSTUDIES_TRACKING", "NNSTUDIES_TRACKING_SYNC",
                 "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def client(root):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")


def test_record_lands_after_flush_with_every_param_metric_tag_and_artifact(root, monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "exp-abc")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "f" * 40)
    figure = root / "figure.png"
    figure.write_bytes(b"\x89PNG the bytes the stage wrote")
    params = {"kmnist": {"lin": {"lr": 0.01}}, **ON}
    before = int(time.time() * 1000)
    with tracking.start("kmnist", "train_kmnist@lin", params) as run:
        for epoch in range(1, 4):
            run.log_metrics({"test_accuracy": 0.5 + epoch / 10}, step=epoch)
        run.log_params({"data": {"md5": {"a.gz": "0123"}}})
        run.set_tags({"device": "cpu"})
        run.log_artifact(figure, "plots")
    after = int(time.time() * 1000)
    figure.write_bytes(b"\x89PNG the NEXT stage's bytes")  # the record holds a copy
    assert run.run_id is None  # not sent by the stage

    assert tracking.flush(root).failed == []
    assert tracking.pending(root) == []
    c = client(root)
    got = landed_run(c, run.record_id)
    assert got.data.params == {"kmnist.lin.lr": "0.01", "tracking.enabled": "True",
                               "tracking.required": "False", "data.md5.a.gz": "0123"}
    tags = got.data.tags
    assert tags["dvc.stage"] == "train_kmnist@lin" and tags["dvc.exp_name"] == "exp-abc"
    assert tags["dvc.baseline_rev"] == "f" * 40 and tags["device"] == "cpu"
    assert tags["mlflow.runName"] == "train_kmnist@lin (exp-abc)"
    assert "mlflow.source.git.commit" in tags  # "" here: the temp root is no git repo
    assert got.info.status == "FINISHED"
    assert before <= got.info.start_time <= got.info.end_time <= after  # the stage's times
    history = c.get_metric_history(got.info.run_id, "test_accuracy")
    assert [(m.step, round(m.value, 3)) for m in history] == [(1, 0.6), (2, 0.7), (3, 0.8)]
    assert all(before <= m.timestamp <= after for m in history)
    assert [a.path for a in c.list_artifacts(got.info.run_id, "plots")] == ["plots/figure.png"]
    (copy,) = (root / "mlartifacts").rglob("figure.png")
    assert copy.read_bytes() == b"\x89PNG the bytes the stage wrote"


@pytest.mark.parametrize("error, status", [(RuntimeError, "FAILED"), (KeyboardInterrupt, "KILLED")])
def test_a_failed_or_interrupted_stage_records_its_status(root, error, status):
    with pytest.raises(error):
        with tracking.start("check", "s", ON) as run:
            raise error()
    tracking.flush(root)
    assert landed_run(client(root), run.record_id).info.status == status


def test_bad_input_records_nothing(root):
    with pytest.raises(tracking.UserError):
        with tracking.start("check", "s", ON):
            raise tracking.UserError("bad params")
    assert not (root / ".nnstudies").exists()


def test_sync_switch_sends_before_the_block_ends(root, monkeypatch):
    monkeypatch.setenv("NNSTUDIES_TRACKING_SYNC", "1")
    with tracking.start("check", "s", ON) as run:
        run.log_metrics({"x": 1.0})
    assert run.run_id and tracking.pending(root) == []
    assert landed_run(client(root), run.record_id).info.run_id == run.run_id


def test_sync_switch_keeps_a_run_it_could_not_send(root, monkeypatch, capsys):
    monkeypatch.setenv("NNSTUDIES_TRACKING_SYNC", "1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9/")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with tracking.start("check", "s", ON) as run:
        run.log_metrics({"x": 1.0})
    err = capsys.readouterr().err
    assert err.startswith("warning: MLflow tracking at http://127.0.0.1:9/ failed, the DVC outputs")
    assert err.rstrip().endswith(f"the run waits in {tracking.outbox(root)} for `nnstudies flush`")
    assert run.run_id is None and [p.name for p in tracking.pending(root)] == [run.record_id]


def test_queue_temp_copy_logs_to_main_repo(tmp_path):
    (tmp_path / ".dvc").mkdir()
    temp_copy = tmp_path / ".dvc" / "tmp" / "exps" / "tmpab12" / "sub"
    temp_copy.mkdir(parents=True)
    assert tracking.repo_root(temp_copy) == tmp_path


def test_server_down_keeps_the_record_unless_required(root, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9/")
    with tracking.start("kmnist", "s", ON) as run:
        run.log_metrics({"x": 1.0})
    assert capsys.readouterr().err == ""  # the stage does not wait for the store
    done = tracking.flush(root)  # waits for the background sender, then tries again
    assert done.landed == [] and [rid for rid, _ in done.failed] == [run.record_id]
    assert "is not reachable" in done.failed[0][1]
    assert [p.name for p in tracking.pending(root)] == [run.record_id]
    with tracking.start("kmnist", "s2", ON):  # the next stage says that runs are waiting
        pass
    assert "warning: 1 MLflow run(s) wait in" in capsys.readouterr().err
    with pytest.raises(tracking.TrackingError, match="not reachable"):
        tracking.start("kmnist", "s", REQUIRED)


def test_required_sqlite_store_is_checked_up_front(root, monkeypatch):
    junk = root / "junk.db"
    junk.write_text("not a database " * 100)
    foreign = root / "foreign.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE songs (title TEXT)")
    for path, why in ((junk, "not a sqlite database"), (foreign, "not an MLflow store"),
                      (root / "no" / "such" / "m.db", "cannot be created")):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{path}")
        with pytest.raises(tracking.TrackingError, match=why):
            tracking.start("check", "s", REQUIRED)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    tracking.start("check", "s", REQUIRED)  # not there yet, but creatable: fine


def test_switched_off_writes_and_starts_nothing(root, monkeypatch):
    monkeypatch.setenv("NNSTUDIES_TRACKING", "off")
    senders = len(tracking._SENDERS)
    with tracking.start("kmnist", "s", ON) as run:
        run.log_metrics({"x": 1.0})
    assert run.record_id is None and run.run_id is None
    assert not (root / ".nnstudies").exists() and not (root / "mlflow.db").exists()
    assert len(tracking._SENDERS) == senders


def test_unreadable_record_is_reported_and_kept(root):
    bad = tracking.outbox(root) / "20260101T000000.000Z-bad"
    bad.mkdir(parents=True)
    (bad / "record.json").write_text("{truncated")
    done = tracking.flush(root)
    assert done.failed[0][0] == bad.name and "unreadable record" in done.failed[0][1]
    assert tracking.pending(root) == [bad]


def test_leftovers_of_killed_writers_and_senders_are_swept(root):
    box = tracking.outbox(root)
    dead = box / f".draft-{2 ** 22 + 1}-20260101T000000.000Z-x"  # beyond pid_max: no such process
    alive = box / f".draft-{os.getpid()}-20260101T000000.000Z-y"
    sent = box / ".sent-20260101T000000.000Z-z"
    for path in (dead, alive, sent):
        path.mkdir(parents=True)
        (path / "record.json").write_text(json.dumps({}))
    assert tracking.pending(root) == []
    assert not dead.exists() and not sent.exists() and alive.exists()


def test_run_names_say_what_differs_whatever_dvc_named_the_experiment(root, monkeypatch):
    """Named by the params that differ from the baseline's params.yaml (HEAD's, or the
    commit a queued experiment was queued on); DVC's automatic name is kept as a tag."""
    git = "git -c user.name=t -c user.email=t@t"
    run(["git", "init", "-q"], root)
    (root / "params.yaml").write_text(
        "hid: 6\nchecker:\n  train:\n    lr: 0.01\n    seed: 0\n    cfg:\n      lr: 1\n")
    run(f"git add params.yaml && {git} commit -qm p", root)
    baseline = run(["git", "rev-parse", "HEAD"], root).stdout.strip()
    (root / "params.yaml").write_text("hid: 5\nchecker:\n  train:\n    lr: 0.01\n    seed: 0\n")
    run(f"{git} commit -qam moved-on", root)  # HEAD moved on after the queueing
    names = {}
    for label, exp, base, hid, train in [
            ("same", "", "", 5, {"lr": 0.01, "seed": 0}),
            ("changed", "", "", 8, {"lr": 0.02, "seed": 0}),
            ("clash", "", "", 5, {"lr": 0.02, "cfg": {"lr": 1}}),
            ("many", "", baseline, 8, {"lr": 0.02, "seed": 1, "cfg": {"lr": 2}}),
            ("auto-named exp", "azure-nosh", "", 4, {"lr": 0.01, "seed": 0}),
            ("queued on the baseline", "hid4", baseline, 4, {"lr": 0.01, "seed": 0}),
            ("exp, no param changed", "code-fix", "", 5, {"lr": 0.01, "seed": 0})]:
        monkeypatch.setenv("DVC_EXP_NAME", exp)
        monkeypatch.setenv("DVC_EXP_BASELINE_REV", base)
        with tracking.start("checker", "train_checker", {"hid": hid, "checker": {"train": train}, **ON}) as r:
            pass
        names[label] = r.record_id
    assert tracking.flush(root).failed == []
    landed = {k: landed_run(client(root), rid).data.tags for k, rid in names.items()}
    assert {k: tags["mlflow.runName"] for k, tags in landed.items()} == {
        "same": "train_checker", "changed": "train_checker hid=8 lr=0.02",
        "clash": "train_checker train.lr=0.02", "many": "train_checker hid=8 train.lr=0.02 seed=1 ...",
        "auto-named exp": "train_checker hid=4", "queued on the baseline": "train_checker hid=4",
        "exp, no param changed": "train_checker (code-fix)"}
    assert landed["auto-named exp"]["dvc.exp_name"] == "azure-nosh"
    assert landed["queued on the baseline"]["dvc.baseline_rev"] == baseline
