"""Determinism: the same params and seed give identical metrics on two CPU runs, and the
metrics record what could explain a difference elsewhere (torch, numpy, threads)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import copy_repo, set_params, tool_env
from nnstudies import layout, stage

# Stage -> the params for a small run.  The stage runs as dvc.yaml runs it, writing where
# nnstudies.layout says; its environment (versions, threads) is in its results file.
STAGES = {
    "train_kmnist@lin": {"kmnist.train.epochs": 2},
    "train_checker": {"checker.train.max_epochs": 300, "checker.train.restarts": 4,
                      "checker.train.patience": 50},
}
BEFORE = {"train_kmnist@lin": ["fetch_kmnist"]}  # stages whose outputs it reads (not in git)


def is_timing(key: str) -> bool:
    return "second" in key  # wall-clock: seconds, seconds_per_epoch, images_per_second, ...


def run_twice(repo: Path, stage: str) -> list[dict]:
    """The metrics of two runs, each with its results' environment under "environment"."""
    set_params(repo, **STAGES[stage])
    name, _, item = stage.partition("@")
    env = tool_env(OMP_NUM_THREADS=1, NNSTUDIES_TRACKING="off")
    for upstream in BEFORE.get(stage, []):
        subprocess.run(["python", f"stages/{upstream}.py"], cwd=repo, check=True, env=env,
                       capture_output=True, timeout=300)
    runs = []
    for _ in range(2):
        proc = subprocess.run(["python", f"stages/{name}.py", *filter(None, [item])], cwd=repo,
                              capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr
        metrics = json.loads((repo / layout.metrics(stage)).read_text())
        results = json.loads((repo / layout.results(stage)).read_text())
        runs.append({**metrics, "environment": results["environment"]})
    return runs


@pytest.fixture(scope="module", params=list(STAGES))
def twice(request, tmp_path_factory) -> tuple[str, list[dict]]:
    """(stage, [metrics of run 1, metrics of run 2]) from one repo copy per stage."""
    repo = copy_repo(tmp_path_factory.mktemp("determinism") / "repo")
    return request.param, run_twice(repo, request.param)


def test_same_params_and_seed_give_identical_metrics(twice):
    stage, (first, second) = twice
    assert first.keys() == second.keys()
    compared = {k: v for k, v in first.items() if not is_timing(k)}
    assert len(compared) >= 3
    assert compared == {k: v for k, v in second.items() if not is_timing(k)}


def test_metrics_record_versions_and_threads(twice):
    stage, (first, _) = twice
    env = first["environment"]
    missing = [k for k in ("torch", "numpy", "threads") if k not in env]
    assert not missing, f"{stage} results lack environment {missing}"
    assert env["threads"] == 1  # OMP_NUM_THREADS=1 was respected


def test_the_environment_names_versions_and_threads():
    import numpy
    import torch

    env = stage.environment()
    assert env["torch"] == torch.__version__ and env["numpy"] == numpy.__version__
    assert env["threads"] == torch.get_num_threads()
