"""The tracking outbox with real processes and a real sqlite store: a stage returns before its
run is sent, its detached sender lands it once the store is free, and a sender SIGKILLed
half-way leaves the record to be sent exactly once by the next flush."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from conftest import landed_run, tool_env
from nnstudies import tracking

STAGE = """
import sys
from nnstudies import tracking
with tracking.start("check", "tiny", {"tracking": {"enabled": True, "required": False}}) as run:
    run.log_metrics({"loss": 0.5}, step=1)
print(run.record_id)
"""


def store(root: Path) -> str:
    return f"sqlite:///{root / 'mlflow.db'}"


def client(root: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=store(root))


def wait_for(condition, what: str, timeout: float = 120):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_stage_returns_before_its_run_lands_and_its_sender_lands_it(tmp_path):
    (tmp_path / ".dvc").mkdir()
    env = tool_env(DVC_ROOT=tmp_path, OMP_NUM_THREADS=1)
    with tracking._store_lock(store(tmp_path), tmp_path):  # as a sender busy with other runs
        proc = subprocess.run([sys.executable, "-c", STAGE], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        record_id = proc.stdout.strip()
        assert [p.name for p in tracking.pending(tmp_path)] == [record_id]
        assert not (tmp_path / "mlflow.db").exists()
    # No flush here: the stage's detached sender was waiting for the lock.
    log = tracking.outbox(tmp_path) / "sender.log"
    wait_for(lambda: f"landed {record_id}" in log.read_text(), "the background sender")
    assert tracking.pending(tmp_path) == []
    run = landed_run(client(tmp_path), record_id)
    assert run.info.status == "FINISHED" and run.data.tags["dvc.stage"] == "tiny"
    assert f"landed {record_id} as run {run.info.run_id}" in log.read_text()


def runs_tagged(root: Path, record_id: str) -> list[tuple[str, str]]:
    """(status, lifecycle) of the runs carrying this record id, read straight from sqlite."""
    if not (root / "mlflow.db").exists():
        return []
    with sqlite3.connect(root / "mlflow.db", timeout=60) as db:
        try:
            return db.execute("SELECT r.status, r.lifecycle_stage FROM runs r JOIN tags t ON "
                              "t.run_uuid = r.run_uuid WHERE t.key = ? AND t.value = ?",
                              (tracking.RECORD_TAG, record_id)).fetchall()
        except sqlite3.OperationalError:  # the schema is still being created
            return []


def test_sender_killed_half_way_leaves_the_record_to_land_exactly_once(tmp_path, monkeypatch):
    (tmp_path / ".dvc").mkdir()
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("NNSTUDIES_TRACKING", raising=False)
    monkeypatch.delenv("NNSTUDIES_TRACKING_SYNC", raising=False)
    steps = 30_000  # 30 log_batch calls: seconds of sending, to kill the sender inside
    with tracking._store_lock(store(tmp_path), tmp_path):  # hold the sender back until it is known
        with tracking.start("check", "long", {"tracking": {"enabled": True, "required": False}}) as run:
            for step in range(steps):
                run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        sender = tracking._SENDERS[-1]
    wait_for(lambda: runs_tagged(tmp_path, run.record_id), "the sender to create the run")
    os.kill(sender.pid, signal.SIGKILL)
    sender.wait(timeout=30)
    assert runs_tagged(tmp_path, run.record_id) == [("RUNNING", "active")]  # half-sent
    assert [p.name for p in tracking.pending(tmp_path)] == [run.record_id]

    done = tracking.flush(tmp_path)
    assert [rid for rid, _ in done.landed] == [run.record_id] and done.failed == []
    assert sorted(runs_tagged(tmp_path, run.record_id)) == [("FINISHED", "active"),
                                                            ("RUNNING", "deleted")]
    c = client(tmp_path)
    landed = landed_run(c, run.record_id)  # the only active one
    assert len(c.get_metric_history(landed.info.run_id, "loss")) == steps
    # Landed and removed: the next flush sends nothing again.
    assert tracking.flush(tmp_path).landed == [] and tracking.pending(tmp_path) == []


def test_sender_killed_after_landing_but_before_deleting_sends_no_duplicate(tmp_path, monkeypatch):
    import shutil

    (tmp_path / ".dvc").mkdir()
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("NNSTUDIES_TRACKING", raising=False)
    monkeypatch.delenv("NNSTUDIES_TRACKING_SYNC", raising=False)
    with tracking._store_lock(store(tmp_path), tmp_path):
        with tracking.start("check", "s", {"tracking": {"enabled": True, "required": False}}) as run:
            run.log_metrics({"loss": 0.5})
        (record,) = tracking.pending(tmp_path)
        shutil.copytree(record, tmp_path / "kept")
    tracking.flush(tmp_path)
    tracking._SENDERS[-1].wait(timeout=120)  # the stage's sender is done too
    first = landed_run(client(tmp_path), run.record_id).info.run_id
    shutil.copytree(tmp_path / "kept", record)  # as if the sender died before deleting it
    done = tracking.flush(tmp_path)
    assert done.landed == [(run.record_id, first)] and tracking.pending(tmp_path) == []
    assert runs_tagged(tmp_path, run.record_id) == [("FINISHED", "active")]
