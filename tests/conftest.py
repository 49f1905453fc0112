"""Shared fixtures: temp copies of the repo for running the real stages through DVC."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# Headless Debian chromium driven by chromedriver (the report's layout, the MLflow UI).
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def webdriver_or_skip():
    """selenium.webdriver, or the calling test module skipped with the reason."""
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs Debian's chromium and chromedriver: apt-get install chromium "
                    "chromium-driver", allow_module_level=True)
    return pytest.importorskip("selenium.webdriver", reason="needs selenium: pip install -e '.[test]'")
SAMPLE = "data/samples/kmnist-holdout"

# A shell starts a background job (`cmd &` in a script, CI runners) with SIGINT ignored, exec
# keeps it ignored, and Python then installs no KeyboardInterrupt handler: every stage the tests
# start would ignore their Ctrl-C.  A handler here is reset to the default in each child (as a
# terminal's processes have it), so the tests see what a user's Ctrl-C does.
signal.signal(signal.SIGINT, signal.default_int_handler)


def tool_env(**extra) -> dict:
    """The environment for subprocesses: this venv first on PATH, tracking telemetry off."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("DVC_ROOT", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(cmd, cwd, check=True, timeout=900, **env):
    """Run a command (list or shell string) and return the CompletedProcess (text)."""
    proc = subprocess.run(cmd, cwd=cwd, env=tool_env(**env), capture_output=True, text=True,
                          timeout=timeout, shell=isinstance(cmd, str))
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
                             f"\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


def copy_repo(dest: Path) -> Path:
    """Copy the git-visible files of this checkout into ``dest`` and commit them there."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    run(["git", "init", "-q", "-b", "main"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"], dest)
    return dest


def landed_run(client, record_id: str):
    """The one active MLflow run a tracking record landed as (call tracking.flush first)."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, f"tags.`nnstudies.record` = '{record_id}'")
    assert len(runs) == 1, f"record {record_id}: {len(runs)} runs"
    return runs[0]


def set_params(repo: Path, **dotted) -> None:
    """Edit params.yaml in ``repo``: set_params(repo, **{"kmnist.source": "x"})."""
    path = repo / "params.yaml"
    data = yaml.safe_load(path.read_text())
    for key, value in dotted.items():
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def tiny_seq(train_sequences: int, epochs: int, checkpoint_every: int, **more) -> dict:
    """Params for a seconds-long run of the recurrent nets (set_params(repo, **tiny_seq(...)))."""
    from nnstudies.params import BEYOND_NETS
    from nnstudies.seq.languages import LANGUAGES
    return {"tracking.enabled": False,
            "seq.grammar.train_sequences": train_sequences,
            "seq.grammar.validation_sequences": 20, "seq.grammar.test_sequences": 20,
            "seq.train.restarts": 2, "seq.train.log_every": 200,
            "seq.train.checkpoint_every": checkpoint_every,
            **{f"seq.{task}.epochs": epochs for task in LANGUAGES},
            **{f"seq.beyond.{net}.epochs": epochs for net in BEYOND_NETS}, **more}


@pytest.fixture
def repo(tmp_path) -> Path:
    """A fresh committed copy of the repo (own DVC cache, own mlflow.db)."""
    return copy_repo(tmp_path / "repo")


@pytest.fixture(scope="session")
def ci_pipeline(tmp_path_factory) -> Path:
    """The whole pipeline, run once through `dvc repro` on the CI profile (bundled real sample).

    Shared by the tests that check what the full pipeline produces (report, gates).
    """
    path = copy_repo(tmp_path_factory.mktemp("ci") / "repo")
    run(["nnstudies", "profile", "ci"], path)  # left uncommitted: the report shows the diff
    proc = run(["dvc", "repro"], path, timeout=1800)
    (path / "repro.log").write_text(proc.stdout + proc.stderr)
    return path
