"""Determinism: the same params and seed give identical metrics on two CPU runs, and the
results record what could explain a difference elsewhere (versions, the CPU path, threads)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import copy_repo, set_params, tool_env
from nnstudies import cpu, layout, stage

# Stage -> the params for a small run.  The stage runs as dvc.yaml runs it, writing where
# nnstudies.layout says; its environment (versions, threads) is in its results file.
STAGES = {
    "train_kmnist@lin": {"kmnist.train.epochs": 2, "kmnist.train.threads": 1},
    "train_checker": {"checker.train.max_epochs": 300, "checker.train.restarts": 4,
                      "checker.train.patience": 50, "checker.train.threads": 1},
}
BEFORE = {"train_kmnist@lin": ["fetch_kmnist"]}  # stages whose outputs it reads (not in git)


def is_timing(key: str) -> bool:
    return "second" in key  # wall-clock: seconds, seconds_per_epoch, images_per_second, ...


def run_twice(repo: Path, stage: str) -> list[dict]:
    """The metrics of two runs, each with its results' environment under "environment"."""
    set_params(repo, **STAGES[stage])
    name, _, item = stage.partition("@")
    # OMP_NUM_THREADS says 2: the params' one thread must win (threads shape the last bits).
    env = tool_env(OMP_NUM_THREADS=2, NNSTUDIES_TRACKING="off")
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


def test_results_record_versions_the_cpu_path_and_the_params_threads(twice):
    stage, (first, _) = twice
    env = first["environment"]
    missing = [k for k in ("torch", "numpy", "cpu_path") if k not in env]
    assert not missing, f"{stage} results lack environment {missing}"
    assert env["cpu_path"]["threads"] == 1  # the params' count, not OMP_NUM_THREADS=2
    assert env["cpu_path"]["blas"]
    # The committed params run the strict path: its variables, set by the stage itself.
    assert env["cpu_path"]["torch_capability"] == "AVX2"
    assert env["cpu_path"]["variables"].items() >= cpu.STRICT.items()


def test_the_environment_names_versions_and_threads():
    import numpy
    import torch

    env = stage.environment()
    assert env["torch"] == torch.__version__ and env["numpy"] == numpy.__version__
    assert env["cpu_path"]["threads"] == torch.get_num_threads()
    assert env["cpu_path"]["torch_capability"] == torch.backends.cpu.get_cpu_capability()


@pytest.mark.pipeline
def test_a_forced_rerun_leaves_dvc_lock_and_every_output_unchanged(repo):
    """Model files hold no random name (torch.save into a buffer, then one atomic write), so
    a rerun on one CPU path hashes the same: dvc.lock does not change, the run-cache works."""
    set_params(repo, **STAGES["train_checker"])
    env = tool_env(NNSTUDIES_TRACKING="off")
    subprocess.run(["dvc", "repro", "train_checker"], cwd=repo, check=True, env=env,
                   capture_output=True, timeout=600)
    outputs = sorted(p for out in layout.outs("train_checker") for p in
                     ([repo / out] if (repo / out).is_file() else (repo / out).rglob("*")))
    before = {p: p.read_bytes() for p in [repo / "dvc.lock", *outputs] if p.is_file()}
    assert repo / layout.CHECKER_MODEL in before and repo / "dvc.lock" in before
    subprocess.run(["dvc", "repro", "-f", "train_checker"], cwd=repo, check=True, env=env,
                   capture_output=True, timeout=600)
    changed = [str(p.relative_to(repo)) for p, data in before.items() if p.read_bytes() != data]
    assert changed == []
