"""Live curves (nnstudies.live): a training stage's per-epoch metrics reach a real MLflow
server while it trains; the run that lands at the end is that same run, every point once.

- A real train_kmnist@full (bundled sample, more epochs) against `mlflow server` on
  127.0.0.1: while the stage process still runs, the server shows its run RUNNING with a
  test_accuracy history that grows; after the stage, one run, FINISHED, the same run id, the
  history exactly the stage's epochs (none twice), its artifacts, and no live folder left.
- The stage killed (SIGKILL) mid-training: its live run ends KILLED, nothing is left.
- A short stage (under the delay) starts no follower at all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

from conftest import SAMPLE, run, set_params
from nnstudies import tracking
from test_tracking_server import get, mlflow_server, stage_env

EPOCHS = 60


def search(url: str) -> list[dict]:
    experiment = json.loads(get(url, "/api/2.0/mlflow/experiments/search", max_results=100))
    ids = [e["experiment_id"] for e in experiment.get("experiments", [])]
    req = urllib.request.Request(url + "/api/2.0/mlflow/runs/search", method="POST",
                                 data=json.dumps({"experiment_ids": ids}).encode(),
                                 headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=30).read()).get("runs", [])


def history(url: str, run_id: str, key: str = "test_accuracy") -> list[dict]:
    return json.loads(get(url, "/api/2.0/mlflow/metrics/get-history", run_id=run_id,
                          metric_key=key)).get("metrics", [])


def start_training(repo, url, **env):
    set_params(repo, **{"kmnist.source": SAMPLE, "kmnist.train.epochs": EPOCHS,
                        "kmnist.train.threads": 1})
    run([sys.executable, "stages/fetch_kmnist.py"], repo, NNSTUDIES_TRACKING="off")
    return subprocess.Popen([sys.executable, "stages/train_kmnist.py", "full"], cwd=repo,
                            env={**stage_env(url), "NNSTUDIES_LIVE_AFTER": "0", **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def watch(url: str, proc: subprocess.Popen) -> dict[str, list[int]]:
    """While the stage runs: run id -> the history lengths seen while it was RUNNING."""
    seen: dict[str, list[int]] = {}
    while proc.poll() is None:
        for r in search(url):
            if r["info"]["status"] == "RUNNING":
                seen.setdefault(r["info"]["run_id"], []).append(len(history(url, r["info"]["run_id"])))
        time.sleep(0.3)
    return seen


def test_a_training_run_grows_live_and_lands_as_the_same_run(repo, tmp_path):
    with mlflow_server(tmp_path) as (_, url):
        proc = start_training(repo, url)
        seen = watch(url, proc)
        out, err = proc.communicate()
        assert proc.returncode == 0, err
        # Seen growing while the stage ran: at least two lengths, none yet complete.
        assert len(seen) == 1, seen
        (live_id, lengths), = seen.items()
        growing = sorted(set(n for n in lengths if 0 < n < EPOCHS))
        assert len(growing) >= 2, lengths
        assert tracking.flush(repo).failed == []
        runs = search(url)
        assert [r["info"]["run_id"] for r in runs] == [live_id]  # adopted, not a second run
        landed = runs[0]
        assert landed["info"]["status"] == "FINISHED"
        points = history(url, live_id)
        # Every epoch, then the final metric the stage logs at the last step; no point sent
        # twice (the follower's and the sender's would share step and time stamp).
        assert [m["step"] for m in points] == [*range(1, EPOCHS + 1), EPOCHS]
        assert len({(m["step"], m["timestamp"]) for m in points}) == len(points)
        final = json.loads((repo / "metrics" / "train_kmnist_full.json").read_text())
        assert abs(points[-1]["value"] - final["test_accuracy"]) < 1e-3
        tags = {t["key"]: t["value"] for t in landed["data"]["tags"]}
        assert tags["dvc.stage"] == "train_kmnist@full" and tags["nnstudies.record"]
        assert "host.cpu" in tags  # set at the end, on the adopted run
        params = {p["key"]: p["value"] for p in landed["data"]["params"]}
        assert params["kmnist.train.epochs"] == str(EPOCHS)
        artifact = get(url, "/get-artifact", path="metrics/train_kmnist_full.json", run_uuid=live_id)
        assert artifact == (repo / "metrics" / "train_kmnist_full.json").read_bytes()
        assert not list((repo / ".nnstudies" / "live").iterdir())


def test_a_killed_stage_leaves_its_live_run_killed(repo, tmp_path):
    with mlflow_server(tmp_path) as (_, url):
        proc = start_training(repo, url)
        deadline = time.time() + 120
        while not any(history(url, r["info"]["run_id"]) for r in search(url)):
            assert proc.poll() is None and time.time() < deadline, "no live run appeared"
            time.sleep(0.3)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        deadline = time.time() + 30
        while search(url)[0]["info"]["status"] == "RUNNING" and time.time() < deadline:
            time.sleep(0.3)
        (killed,) = search(url)
        assert killed["info"]["status"] == "KILLED"
        assert history(url, killed["info"]["run_id"])  # what was sent stays
        assert not list((repo / ".nnstudies" / "live").iterdir())
        assert tracking.pending(repo) == []  # a killed stage recorded nothing else


def test_a_stage_shorter_than_the_delay_starts_no_follower(repo, tmp_path):
    set_params(repo, **{"kmnist.source": SAMPLE})
    db = f"sqlite:///{tmp_path / 'store.db'}"
    env = {**stage_env(db), "NNSTUDIES_LIVE_AFTER": "600", "NNSTUDIES_TRACKING_SYNC": "1"}
    proc = subprocess.run([sys.executable, "stages/fetch_kmnist.py"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert not (repo / ".nnstudies" / "live").exists()
    assert tracking.flush(repo).failed == []
