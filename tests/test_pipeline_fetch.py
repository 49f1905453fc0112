"""`dvc repro` of the fetch stage from the bundled sample, in a temp copy of the repo."""

import json

import pytest

from conftest import SAMPLE, run, set_params
from nnstudies import kmnist

pytestmark = pytest.mark.pipeline


def test_fetch_stage_from_sample_then_noop(repo):
    set_params(repo, **{"kmnist.source": SAMPLE})
    run(["dvc", "repro", "fetch_kmnist"], repo)
    sums = kmnist.parse_md5sums((repo / SAMPLE / "MD5SUMS").read_text(), "MD5SUMS")
    for name, md5 in sums.items():
        assert kmnist.md5sum(repo / "data" / "kmnist" / name) == md5
    metrics = json.loads((repo / "metrics" / "fetch_kmnist.json").read_text())
    assert metrics["train_images"] == 8000 and metrics["test_images"] == 1000
    again = run(["dvc", "repro", "fetch_kmnist"], repo)
    assert "didn't change" in again.stdout or "up to date" in again.stdout
    assert "Running stage" not in again.stdout


def test_official_source_offline_fails_fast_with_hint(repo):
    set_params(repo, **{"kmnist.source": "official"})  # the opt-in; the default is the sample
    proc = run(["dvc", "repro", "fetch_kmnist"], repo, check=False, timeout=120)
    if proc.returncode == 0:
        pytest.skip("this machine reaches the official KMNIST server")
    assert "-S kmnist.source=data/samples/kmnist-holdout" in proc.stderr + proc.stdout
