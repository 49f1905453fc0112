"""Parallel experiments through DVC's queue: four queued runs, two workers, one thread each.

All four finish with their own metrics, and each logs exactly one MLflow run to the MAIN
repo's sqlite store (queued runs execute in temp copies under .dvc/tmp/exps/).
Never `dvc queue stop` here: with no worker running it waits forever.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import SAMPLE, run, set_params

pytestmark = pytest.mark.pipeline

STAGE = "train_kmnist@lin"
RATES = [0.005, 0.01, 0.02, 0.04]


def queue_done(repo) -> tuple[bool, str]:
    text = run(["dvc", "queue", "status"], repo).stdout
    return not any(word in text for word in ("Queued", "Running")), text


def experiments(repo) -> dict[str, dict]:
    """exp name -> its metrics for train_kmnist_lin.json, from `dvc exp show --json`."""
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    found = {}
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs", []):
                data = rev.get("data") or {}
                metrics = (data.get("metrics") or {}).get("metrics/train_kmnist_lin.json", {})
                params = (data.get("params") or {}).get("params.yaml", {}).get("data", {})
                found[rev.get("name") or exp.get("name")] = {
                    "metrics": metrics.get("data"), "lr": params.get("kmnist", {}).get("lin", {}).get("lr")}
    return found


def test_four_queued_experiments_on_two_workers(repo):
    # Two workers of one thread each: the thread count is a param (it shapes the last bits).
    set_params(repo, **{"kmnist.source": SAMPLE, "kmnist.train.epochs": 1, "kmnist.train.threads": 1})
    run(["dvc", "repro", "fetch_kmnist"], repo, OMP_NUM_THREADS=1)
    # Queued runs see only what git tracks: commit params and dvc.lock first.
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "fetched"], repo)
    for lr in RATES:
        run(["dvc", "exp", "run", "--queue", "-S", f"kmnist.lin.lr={lr}", STAGE], repo)
    start = time.time()
    run(["dvc", "queue", "start", "-j", "2"], repo)
    done, text = queue_done(repo)
    while not done:
        assert time.time() - start < 600, f"queue did not finish:\n{text}"
        time.sleep(3)
        done, text = queue_done(repo)
    assert text.count("Success") == 4, text

    exps = experiments(repo)
    assert len(exps) == 4 and sorted(e["lr"] for e in exps.values()) == RATES, exps
    for exp in exps.values():
        assert 0.3 < exp["metrics"]["test_accuracy"] <= 1
    assert len({e["metrics"]["test_accuracy"] for e in exps.values()}) == 4  # each its own lr

    from mlflow.tracking import MlflowClient

    from nnstudies import tracking

    # Queued runs record into the MAIN repo's outbox; the senders may still be at work.
    assert tracking.flush(repo).failed == []
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("kmnist")
    runs = client.search_runs([experiment.experiment_id], f"tags.`dvc.stage` = '{STAGE}'")
    assert sorted(r.data.tags["dvc.exp_name"] for r in runs) == sorted(exps)
    assert sorted(float(r.data.params["kmnist.lin.lr"]) for r in runs) == RATES
    assert all(r.info.status == "FINISHED" for r in runs)
    for r in runs:  # each run's results file, an artifact: its settings and its threads
        path = client.download_artifacts(r.info.run_id, "results/train_kmnist_lin.json", str(repo))
        results = json.loads(Path(path).read_text())
        assert results["settings"]["epochs"] == 1 and results["environment"]["cpu_path"]["threads"] == 1
