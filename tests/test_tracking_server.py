"""Tracking against a real `mlflow server` on 127.0.0.1, and tracking faults.

- A stage run with MLFLOW_TRACKING_URI=http://127.0.0.1:<port> is read back over HTTP: the
  run, its params and metrics (REST API) and its artifact (artifact download endpoint).
- Server down: the stage writes all its outputs and exits 0 with a warning; with
  tracking.required: true it fails fast with one line and writes nothing.
- Server killed while the stage runs: same as down (metrics are buffered and sent at the end).
- Two processes logging to one sqlite store at once both succeed.
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

from conftest import SAMPLE, set_params, tool_env

STAGE = ["python", "stages/fetch_kmnist.py", "--out", "data/kmnist",
         "--metrics", "metrics/fetch_kmnist.json"]


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
def mlflow_server(tmp: Path):
    """A real tracking server (sqlite backend, proxied artifacts, one worker) on loopback."""
    port = free_port()
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
        experiment = json.loads(get(url, "/api/2.0/mlflow/experiments/get-by-name",
                                    experiment_name="kmnist-classifiers"))["experiment"]
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
        written = json.loads((repo / "metrics" / "fetch_kmnist.json").read_text())
        for name, info in written["files"].items():
            assert params[f"data.md5.{name}"] == info["md5"]
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


def test_server_down_stage_still_writes_outputs(repo):
    set_params(repo, **{"kmnist.source": SAMPLE})
    start = time.time()
    proc = run_stage(repo, f"http://127.0.0.1:{free_port()}")
    assert proc.returncode == 0, proc.stderr
    assert "warning: MLflow tracking at http://127.0.0.1" in proc.stderr
    assert "DVC outputs are written anyway" in proc.stderr
    assert json.loads((repo / "metrics" / "fetch_kmnist.json").read_text())["test_images"] == 1000
    assert len(list((repo / "data" / "kmnist").glob("*.gz"))) == 4
    assert time.time() - start < 120  # a dead server costs seconds, not minutes of retries


def test_server_down_and_required_fails_fast_writing_nothing(repo):
    metrics = repo / "metrics" / "fetch_kmnist.json"
    before = metrics.read_bytes() if metrics.exists() else None  # main commits its results
    set_params(repo, **{"kmnist.source": SAMPLE, "tracking.required": True})
    proc = run_stage(repo, f"http://127.0.0.1:{free_port()}")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "not reachable" in lines[0] and "tracking.required" in lines[0]
    assert (metrics.read_bytes() if metrics.exists() else None) == before
    assert not (repo / "data" / "kmnist").exists()


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
    assert "warning: MLflow tracking" in err
    assert json.loads((repo / "metrics" / "fetch_kmnist.json").read_text())["train_images"] == 8000


WRITER = """
import sys
from nnstudies import tracking
p = {"tracking": {"enabled": True, "required": True}, "worker": sys.argv[1]}
with tracking.start("check", "writer", p) as run:
    for step in range(3000):
        run.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 3000}, step=step)
print(run.run_id)
"""


def test_two_workers_write_one_sqlite_store_at_once(tmp_path):
    (tmp_path / ".dvc").mkdir()
    env = tool_env(DVC_ROOT=tmp_path, OMP_NUM_THREADS=1)
    workers = [subprocess.Popen([sys.executable, "-c", WRITER, str(i)], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in range(2)]
    results = [w.communicate(timeout=300) for w in workers]
    for worker, (out, err) in zip(workers, results):
        assert worker.returncode == 0, err
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    for out, _ in results:
        run_id = out.strip().splitlines()[-1]
        assert client.get_run(run_id).info.status == "FINISHED"
        assert len(client.get_metric_history(run_id, "loss")) == 3000
