"""Determinism: the same params and seed give identical metrics on two CPU runs, and the
metrics record what could explain a difference elsewhere (torch, numpy, threads)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import SAMPLE, copy_repo, set_params, tool_env
from nnstudies import runinfo

# Stage -> (command with {out} for a fresh output folder, the params for a small run).
STAGES = {
    "train_kmnist@lin": (
        ["python", "stages/train_kmnist.py", "lin", "--data", SAMPLE, "--model", "{out}/model.pt",
         "--metrics", "{out}/metrics.json", "--plots", "{out}/plots"],
        {"kuzu.train.epochs": 2}),
    "train_check": (
        ["python", "stages/train_check.py", "--model", "{out}/model.pt",
         "--metrics", "{out}/metrics.json", "--plots", "{out}/plots"],
        {"check.max_epochs": 300, "check.restarts": 4, "check.patience": 50}),
}


def is_timing(key: str) -> bool:
    return "second" in key  # wall-clock: seconds, seconds_per_epoch, images_per_second, ...


def run_twice(repo: Path, stage: str) -> list[dict]:
    cmd, settings = STAGES[stage]
    set_params(repo, **settings)
    results = []
    for attempt in ("first", "second"):
        out = repo / "runs" / attempt
        proc = subprocess.run([c.format(out=out) for c in cmd], cwd=repo, capture_output=True,
                              text=True, timeout=300,
                              env=tool_env(OMP_NUM_THREADS=1, NNSTUDIES_TRACKING="off"))
        assert proc.returncode == 0, proc.stderr
        results.append(json.loads((out / "metrics.json").read_text()))
    shutil.rmtree(repo / "runs")
    return results


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
    missing = [k for k in ("torch", "numpy", "threads") if k not in first]
    assert not missing, (f"{stage} metrics lack {missing}: include **nnstudies.runinfo.environment()"
                         " in the metrics JSON")
    assert first["threads"] == 1  # OMP_NUM_THREADS=1 was respected


def test_runinfo_environment_names_versions_and_threads():
    import numpy
    import torch

    env = runinfo.environment()
    assert env["torch"] == torch.__version__ and env["numpy"] == numpy.__version__
    assert env["threads"] == torch.get_num_threads() and env["device"] == "cpu"
