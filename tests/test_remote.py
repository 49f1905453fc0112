"""DVC remotes: push models and data, then a fresh clone pulls every output without retraining.

Two real remotes: a local directory, and an S3-compatible server (moto's server mode) on
127.0.0.1 through dvc-s3.  Credentials come from the environment, never from the repo.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
from pathlib import Path

import pytest

from conftest import SAMPLE, copy_repo, run, set_params, tool_env
from test_tracking_server import background, free_port

pytestmark = pytest.mark.pipeline

STAGES = ["validate_params", "fetch_kmnist", "train_kmnist@lin"]  # and what they depend on
S3_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
          "AWS_DEFAULT_REGION": "us-east-1"}


def commit(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message], repo)


def outputs(repo: Path) -> dict[str, str]:
    """Every file the pipeline wrote (DVC-cached and git-committed), by md5."""
    found = {}
    for folder in ("data/kmnist", "models", "metrics", "plots"):
        for path in sorted((repo / folder).rglob("*")):
            if path.is_file():
                found[str(path.relative_to(repo))] = hashlib.md5(path.read_bytes()).hexdigest()
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A repo copy whose fetch + linear-net stages have run (sample data, one epoch)."""
    repo = copy_repo(tmp_path_factory.mktemp("remote") / "repo")
    set_params(repo, **{"kmnist.source": SAMPLE, "kmnist.train.epochs": 1})
    run(["dvc", "repro", *STAGES], repo, NNSTUDIES_TRACKING="off", OMP_NUM_THREADS=1)
    commit(repo, "pipeline run")
    return repo


def push_clone_pull(repo: Path, remote: str, clone: Path, **env) -> subprocess.CompletedProcess:
    run(["dvc", "push", "-r", remote, *STAGES], repo, **env)
    run(["git", "clone", "-q", str(repo), str(clone)], clone.parent)
    # Only these stages ran here: a whole-pipeline pull would also ask for models never built.
    run(["dvc", "pull", "-r", remote, *STAGES], clone, **env)
    return run(["dvc", "status", *STAGES], clone, **env)


def assert_restored(repo: Path, clone: Path, status: subprocess.CompletedProcess) -> None:
    wanted = outputs(repo)
    assert "models/kmnist_lin.pt" in wanted and "data/kmnist/train-images-idx3-ubyte.gz" in wanted
    assert outputs(clone) == wanted
    assert "up to date" in status.stdout, status.stdout  # no stage would rerun
    dry = run(["dvc", "repro", "--dry", *STAGES], clone)
    assert "Running stage" not in dry.stdout, dry.stdout


def test_directory_remote_push_then_fresh_clone_pulls_everything(built, tmp_path):
    run(["dvc", "remote", "add", "-d", "store", str(tmp_path / "store")], built)
    commit(built, "directory remote")
    status = push_clone_pull(built, "store", tmp_path / "clone")
    assert any((tmp_path / "store").rglob("*")), "nothing was pushed"
    assert_restored(built, tmp_path / "clone", status)


@contextlib.contextmanager
def moto_server(tmp: Path):
    """moto's S3 server on loopback; yields its URL, or skips when it cannot start."""
    url = f"http://127.0.0.1:{free_port()}"
    cmd = ["moto_server", "-H", "127.0.0.1", "-p", url.rsplit(":", 1)[1]]
    with background(cmd, tmp / "moto.log", url + "/moto-api/", tool_env(),
                    "the local S3 server (moto_server, from the test extra moto[server])",
                    cannot_start=pytest.skip):
        yield url


def test_s3_remote_push_then_fresh_clone_pulls_everything(built, tmp_path, monkeypatch):
    import boto3

    with moto_server(tmp_path) as url:
        for key, value in S3_ENV.items():
            monkeypatch.setenv(key, value)
        boto3.client("s3", endpoint_url=url).create_bucket(Bucket="nnstudies")
        run(["dvc", "remote", "add", "s3store", "s3://nnstudies/dvcstore"], built)
        run(["dvc", "remote", "modify", "s3store", "endpointurl", url], built)
        commit(built, "s3 remote")
        config = (built / ".dvc" / "config").read_text()
        assert "access_key" not in config and "secret" not in config  # no credentials in git
        status = push_clone_pull(built, "s3store", tmp_path / "clone", **S3_ENV)
        listed = boto3.client("s3", endpoint_url=url).list_objects_v2(Bucket="nnstudies")
        assert listed.get("KeyCount", 0) > 0 and all(
            o["Key"].startswith("dvcstore/") for o in listed["Contents"])
    assert_restored(built, tmp_path / "clone", status)
