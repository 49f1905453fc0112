"""Tracking against a real `mlflow server` on 127.0.0.1, and tracking faults.

- A stage run with MLFLOW_TRACKING_URI=http://127.0.0.1:<port> is read back over HTTP: the
  run, its params and metrics (REST API) and its artifact (artifact download endpoint).
- Server down: the stage writes all its outputs and exits 0; its run waits in the outbox,
  `nnstudies flush` says why in one line, and lands it once the server is up; with
  tracking.required: true the stage fails fast with one line and writes nothing.
- Server killed while the stage runs: same as down (the run is sent after the stage).
- Two processes logging to one sqlite store at once both land, sent by the stage itself
  (required) or from the outbox.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import SAMPLE, landed_run, set_params, tool_env
from nnstudies import tracking

STAGE = ["python", "stages/fetch_kmnist.py"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def background(cmd: list[str], log: Path, ready_url: str, env: dict, what: str,
               cannot_start=pytest.fail):
    """Run a server in its own process group until ``ready_url`` answers; kill the group after.
    Yields the process; ``cannot_start`` (pytest.fail or pytest.skip) gets the reason if not."""
    with open(log, "w") as out:
        try:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        except OSError as exc:
            cannot_start(f"{what} cannot start: {exc}")
        try:
            deadline = time.time() + 90
            while True:
                try:
                    urllib.request.urlopen(ready_url, timeout=2).read()
                    break
                except OSError:
                    pass
                if proc.poll() is not None or time.time() > deadline:
                    cannot_start(f"{what} did not start: {log.read_text()[-1000:]}")
                time.sleep(0.3)
            yield proc
        finally:
            stop(proc)


@contextlib.contextmanager
def mlflow_server(tmp: Path, port: int | None = None):
    """A real tracking server (sqlite backend, proxied artifacts, one worker) on loopback."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = ["mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", f"sqlite:///{tmp / 'server.db'}",
           "--serve-artifacts", "--artifacts-destination", str(tmp / "server-artifacts"),
           "--workers", "1"]
    env = tool_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", OMP_NUM_THREADS=1)
    with background(cmd, tmp / "server.log", url + "/health", env, "mlflow server") as proc:
        yield proc, url


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def get(url: str, endpoint: str, **query) -> bytes:
    return urllib.request.urlopen(f"{url}{endpoint}?{urllib.parse.urlencode(query)}", timeout=30).read()


def stage_env(uri: str | None = None) -> dict:
    env = tool_env(OMP_NUM_THREADS=1, PYTHONUNBUFFERED=1)
    if uri:
        env["MLFLOW_TRACKING_URI"] = uri
    return env


def run_stage(repo: Path, uri: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(STAGE, cwd=repo, env=stage_env(uri), capture_output=True, text=True,
                          timeout=300)


def test_stage_run_read_back_over_http(repo, tmp_path):
    set_params(repo, **{"kmnist.source": SAMPLE})
    with mlflow_server(tmp_path) as (_, url):
        proc = run_stage(repo, url)
        assert proc.returncode == 0, proc.stderr
        assert "warning" not in proc.stderr
        assert tracking.flush(repo).failed == []  # the record names the server it goes to
        experiment = json.loads(get(url, "/api/2.0/mlflow/experiments/get-by-name",
                                    experiment_name="kmnist"))["experiment"]
        req = urllib.request.Request(
            url + "/api/2.0/mlflow/runs/search", method="POST",
            data=json.dumps({"experiment_ids": [experiment["experiment_id"]]}).encode(),
            headers={"Content-Type": "application/json"})
        runs = json.loads(urllib.request.urlopen(req, timeout=30).read())["runs"]
        assert len(runs) == 1
        run_id = runs[0]["info"]["run_id"]
        run = json.loads(get(url, "/api/2.0/mlflow/runs/get", run_id=run_id))["run"]
        assert run["info"]["status"] == "FINISHED"
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        assert params["kmnist.source"] == SAMPLE
        written = json.loads((repo / "results" / "fetch_kmnist.json").read_text())
        for info in written["files"]:
            assert params[f"data.md5.{info['name']}"] == info["md5"]
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        assert tags["dvc.stage"] == "fetch_kmnist"
        history = json.loads(get(url, "/api/2.0/mlflow/metrics/get-history", run_id=run_id,
                                 metric_key="train_images"))["metrics"]
        assert [m["value"] for m in history] == [8000]
        artifact = get(url, "/get-artifact", path="metrics/fetch_kmnist.json", run_uuid=run_id)
        assert artifact == (repo / "metrics" / "fetch_kmnist.json").read_bytes()
        # The artifact went through the server into its artifact store, not the repo.
        assert not (repo / "mlartifacts").exists()
        assert list((tmp_path / "server-artifacts").rglob("fetch_kmnist.json"))


def nnstudies_flush(repo: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nnstudies", "flush"], cwd=repo,
                          env=stage_env(), capture_output=True, text=True, timeout=300)


def test_server_down_keeps_the_run_until_a_later_flush_lands_it(repo, tmp_path):
    set_params(repo, **{"kmnist.source": SAMPLE})
    port = free_port()
    start = time.time()
    proc = run_stage(repo, f"http://127.0.0.1:{port}")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((repo / "metrics" / "fetch_kmnist.json").read_text())["test_images"] == 1000
    assert len(list((repo / "data" / "kmnist").glob("*.gz"))) == 4
    (record,) = tracking.pending(repo)

    down = nnstudies_flush(repo)  # waits for the stage's own sender, then tries again
    assert down.returncode == 1 and "Traceback" not in down.stderr + down.stdout
    assert down.stdout.splitlines() == [
        f"not sent: {record.name}: MLflow tracking server http://127.0.0.1:{port} is not "
        f"reachable (<urlopen error [Errno 111] Connection refused>)",
        "0 run(s) landed in MLflow, 1 failed (kept in the outbox)"]
    assert tracking.pending(repo) == [record]
    assert time.time() - start < 120  # a dead server costs seconds, not minutes of retries

    with mlflow_server(tmp_path, port) as (_, url):
        up = nnstudies_flush(repo)
        assert up.returncode == 0, up.stdout + up.stderr
        assert up.stdout.splitlines() == ["1 run(s) landed in MLflow, 0 failed (kept in the outbox)"]
        assert tracking.pending(repo) == []
        from mlflow.tracking import MlflowClient

        run = landed_run(MlflowClient(tracking_uri=url), record.name)
        assert run.data.tags["dvc.stage"] == "fetch_kmnist" and run.info.status == "FINISHED"
        assert run.data.params["kmnist.source"] == SAMPLE


def test_server_down_and_required_fails_fast_writing_nothing(repo):
    metrics = repo / "metrics" / "fetch_kmnist.json"
    before = metrics.read_bytes() if metrics.exists() else None  # main commits its results
    set_params(repo, **{"kmnist.source": SAMPLE, "tracking.required": True})
    proc = run_stage(repo, f"http://127.0.0.1:{free_port()}")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "not reachable" in lines[0] and "tracking.required" in lines[0]
    assert (metrics.read_bytes() if metrics.exists() else None) == before
    assert not (repo / "data" / "kmnist").exists() and not (repo / ".nnstudies").exists()


def test_server_dies_mid_run(repo, tmp_path):
    set_params(repo, **{"kmnist.source": SAMPLE})
    with mlflow_server(tmp_path) as (server, url):
        stage = subprocess.Popen(STAGE, cwd=repo, env=stage_env(url), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        first = stage.stdout.readline()  # the stage is working: it has fetched a file
        assert first.startswith("fetched"), first
        stop(server)
        out, err = stage.communicate(timeout=300)
    assert stage.returncode == 0, err
    assert json.loads((repo / "metrics" / "fetch_kmnist.json").read_text())["train_images"] == 8000
    (record,) = tracking.pending(repo)  # kept for a later flush, as when the server is down
    assert [rid for rid, _ in tracking.flush(repo).failed] == [record.name]


WRITER = """
import sys
from nnstudies import tracking
p = {"tracking": {"enabled": True, "required": sys.argv[2] == "required"}, "worker": sys.argv[1]}
with tracking.start("check", "writer", p) as run:
    for step in range(3000):
        run.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 3000}, step=step)
print(run.record_id, run.run_id)
"""


@pytest.mark.parametrize("mode", ["required", "outbox"])
def test_two_workers_write_one_sqlite_store_at_once(tmp_path, mode):
    """Two stages finish at once: sent by the stages themselves (required), or by their two
    background senders racing for one fresh store (outbox)."""
    (tmp_path / ".dvc").mkdir()
    env = tool_env(DVC_ROOT=tmp_path, OMP_NUM_THREADS=1)
    workers = [subprocess.Popen([sys.executable, "-c", WRITER, str(i), mode], cwd=tmp_path,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in range(2)]
    results = [w.communicate(timeout=300) for w in workers]
    for worker, (_out, err) in zip(workers, results):
        assert worker.returncode == 0, err
    if mode == "outbox":
        assert tracking.flush(tmp_path).failed == []  # waits for both background senders
    assert tracking.pending(tmp_path) == []
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    for out, _ in results:
        record_id, run_id = out.split()
        run = landed_run(client, record_id)
        assert run_id == (run.info.run_id if mode == "required" else "None")
        assert run.info.status == "FINISHED" and run.data.params["worker"] in "01"
        assert len(client.get_metric_history(run.info.run_id, "loss")) == 3000
