"""`nnstudies compare` and `nnstudies ui` over a real sqlite MLflow store written by
nnstudies.tracking: the comparison table, and the real server started, queried over its
REST API and stopped by PID."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import landed_run, run, tool_env
from nnstudies import tracking

STARTUP_TIMEOUT_S = 60


def log_run(root: Path, study: str, stage: str, metrics: dict, exp: str = "") -> str:
    """Record one run in root's outbox; returns its record id."""
    os.environ.update(DVC_ROOT=str(root), DVC_EXP_NAME=exp)
    with tracking.start(study, stage, {"tracking": {"enabled": True, "required": False}}) as r:
        r.log_metrics(metrics)
    time.sleep(0.01)  # distinct start times: "latest" is decided by them
    return r.record_id


def run_ids(root: Path, records: dict) -> dict:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    return {name: landed_run(client, rid).info.run_id for name, rid in records.items()}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A project folder whose mlflow.db holds five runs of three stages (tests only read it)."""
    root = tmp_path_factory.mktemp("store")
    (root / ".dvc").mkdir()
    with pytest.MonkeyPatch.context() as env:
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        env.delenv("NNSTUDIES_TRACKING", raising=False)
        env.delenv("NNSTUDIES_TRACKING_SYNC", raising=False)
        env.setenv("DVC_ROOT", str(root))  # undone when the block ends, as is DVC_EXP_NAME
        env.setenv("DVC_EXP_NAME", "")
        records = {
            "old": log_run(root, "kmnist", "train_kmnist@lin", {"test_accuracy": 0.61}),
            "lin": log_run(root, "kmnist", "train_kmnist@lin", {"test_accuracy": 0.69}),
            "lin-exp": log_run(root, "kmnist", "train_kmnist@lin", {"test_accuracy": 0.71},
                               exp="wispy-pads"),
            "conv": log_run(root, "kmnist", "train_kmnist@conv",
                            {"test_accuracy": 0.93, "test_loss": 0.25}),
            "check": log_run(root, "check", "train_check", {"accuracy": 1.0}),
        }
    assert tracking.flush(root).failed == []
    return root, run_ids(root, records)


def nnstudies(root: Path, *args: str, **kw):
    return run([sys.executable, "-m", "nnstudies", *args], root, check=False, timeout=120,
               DVC_ROOT=root, **kw)


def rows(stdout: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in stdout.splitlines()[2:]]


def test_compare_latest_run_per_stage_and_experiment(store):
    root, ids = store
    proc = nnstudies(root, "compare")
    assert proc.returncode == 0, proc.stderr
    header = proc.stdout.splitlines()[0]
    assert header == ("| stage | exp name | run id | start time (UTC) | status | accuracy "
                      "| test_accuracy | test_loss |")
    got = [(r[0], r[1], r[2], r[-3], r[-2], r[-1]) for r in rows(proc.stdout)]
    assert got == [
        ("train_check", "(workspace)", ids["check"][:12], "1", "", ""),
        ("train_kmnist@conv", "(workspace)", ids["conv"][:12], "", "0.93", "0.25"),
        ("train_kmnist@lin", "wispy-pads", ids["lin-exp"][:12], "", "0.71", ""),
        ("train_kmnist@lin", "(workspace)", ids["lin"][:12], "", "0.69", ""),  # not "old"
    ]


def test_compare_sends_the_runs_waiting_in_the_outbox_first(tmp_path, monkeypatch):
    (tmp_path / ".dvc").mkdir()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("NNSTUDIES_TRACKING", raising=False)
    monkeypatch.delenv("NNSTUDIES_TRACKING_SYNC", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.setenv("DVC_EXP_NAME", "")
    with tracking._store_lock(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path):
        record = log_run(tmp_path, "check", "hand_check", {"accuracy": 1.0})
        sender = tracking._SENDERS[-1]  # waiting for the lock: stopped, only compare can send
        sender.kill()
        sender.wait()
    assert [p.name for p in tracking.pending(tmp_path)] == [record]
    proc = nnstudies(tmp_path, "compare")
    assert proc.returncode == 0, proc.stderr
    assert [r[0] for r in rows(proc.stdout)] == ["hand_check"] and not tracking.pending(tmp_path)
    assert rows(proc.stdout)[0][2] == run_ids(tmp_path, {"r": record})["r"][:12]


def test_compare_filters_and_metric_columns(store):
    root, ids = store
    proc = nnstudies(root, "compare", "--stage", "train_kmnist", "--experiment", "",
                     "--metrics", "test_accuracy")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].endswith("| status | test_accuracy |")
    assert [(r[0], r[2], r[-1]) for r in rows(proc.stdout)] == [
        ("train_kmnist@conv", ids["conv"][:12], "0.93"), ("train_kmnist@lin", ids["lin"][:12], "0.69")]
    bad = nnstudies(root, "compare", "--metrics", "acc")
    assert bad.returncode == 2 and bad.stderr.startswith("error: no metric 'acc' in these runs")


def test_compare_and_ui_without_a_store_say_so(tmp_path):
    for command in (["compare"], ["ui", "--port", str(free_port())]):
        proc = nnstudies(tmp_path, *command)
        assert proc.returncode == 2
        assert proc.stderr.startswith(f"error: no MLflow database at {tmp_path / 'mlflow.db'}")
    assert not (tmp_path / "mlflow.db").exists()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def listen_addresses(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp writes them) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if Path(table).exists():
            for line in Path(table).read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:
                    found.add(address)
    return found


def api(port: int, path: str, body: dict) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/2.0/mlflow/{path}",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_ui_serves_the_pipeline_runs_on_loopback_and_stops_by_pid(store, tmp_path_factory):
    root, ids = store
    port = free_port()
    log = tmp_path_factory.mktemp("ui") / "server.log"
    started = time.monotonic()
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "-m", "nnstudies", "ui", "--port", str(port)],
                                  cwd=root, env=tool_env(DVC_ROOT=root), stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, f"server exited {server.returncode}: {log.read_text()[-3000:]}"
            assert time.monotonic() - started < STARTUP_TIMEOUT_S, log.read_text()[-3000:]
            time.sleep(0.25)
        startup_s = time.monotonic() - started
        print(f"mlflow server answered after {startup_s:.1f} s")
        if listen_addresses(port):  # Linux: bound to 127.0.0.1 only
            assert listen_addresses(port) == {"0100007F"}
        experiments = api(port, "experiments/search", {"max_results": 100})["experiments"]
        by_name = {e["name"]: e["experiment_id"] for e in experiments}
        assert {"kmnist-classifiers", "checkerboard-mlp"} <= set(by_name)
        found = api(port, "runs/search", {"experiment_ids": list(by_name.values()), "max_results": 100})
        assert {r["info"]["run_id"] for r in found["runs"]} == set(ids.values())
        lin = next(r for r in found["runs"] if r["info"]["run_id"] == ids["lin-exp"])
        tags = {t["key"]: t["value"] for t in lin["data"]["tags"]}
        assert tags["dvc.stage"] == "train_kmnist@lin" and tags["dvc.exp_name"] == "wispy-pads"
        assert "MLflow UI: http://127.0.0.1:" in log.read_text()
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its worker, by process group
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    assert not port_open(port)


def test_ui_refuses_a_busy_port(store):
    root, _ = store
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        proc = nnstudies(root, "ui", "--port", str(busy.getsockname()[1]))
    assert proc.returncode == 2 and "is in use: pass --port" in proc.stderr
