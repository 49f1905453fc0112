"""`nnstudies compare` and `nnstudies ui` over a real sqlite MLflow store written by
nnstudies.tracking: the comparison table, the real server started, queried over its REST API
and stopped by PID, the saved views and links it prints, the experiments' kind and
description (and their migration), run names, and the one-line failures (server down, bad
port).  What a browser shows of it: tests/test_ui_browser.py."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from unittest.mock import ANY

import pytest

from conftest import landed_run, run, tool_env
from nnstudies import tracking

STARTUP_TIMEOUT_S = 60


def log_run(root: Path, study: str, stage: str, metrics: dict, exp: str = "",
            params: dict | None = None) -> str:
    """Record one run in root's outbox; returns its record id."""
    os.environ.update(DVC_ROOT=str(root), DVC_EXP_NAME=exp)
    with tracking.start(study, stage, {**(params or {}),
                                       "tracking": {"enabled": True, "required": False}}) as r:
        r.log_metrics(metrics)
    time.sleep(0.01)  # distinct start times: "latest" is decided by them
    return r.record_id


def run_ids(root: Path, records: dict) -> dict:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    return {name: landed_run(client, rid).info.run_id for name, rid in records.items()}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A project folder whose mlflow.db holds six runs of four stages, one of them no training
    stage (tests only read it)."""
    root = tmp_path_factory.mktemp("store")
    (root / ".dvc").mkdir()
    with pytest.MonkeyPatch.context() as env:
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        env.delenv("NNSTUDIES_TRACKING", raising=False)
        env.delenv("NNSTUDIES_TRACKING_SYNC", raising=False)
        env.setenv("DVC_ROOT", str(root))  # undone when the block ends, as is DVC_EXP_NAME
        env.setenv("DVC_EXP_NAME", "")
        records = {
            "old": log_run(root, "kmnist", "train_kmnist@lin", {"test_accuracy": 0.61}),
            "lin": log_run(root, "kmnist", "train_kmnist@lin", {"test_accuracy": 0.69}),
            "lin-exp": log_run(root, "kmnist", "train_kmnist@lin", {"test_accuracy": 0.71},
                               exp="wispy-pads"),
            "conv": log_run(root, "kmnist", "train_kmnist@conv",
                            {"test_accuracy": 0.93, "test_loss": 0.25, "parameters": 421642}),
            "fetch": log_run(root, "kmnist", "fetch_kmnist", {"train_images": 8000}),
            "check": log_run(root, "checker", "train_checker", {"accuracy": 1.0}),
        }
    assert tracking.flush(root).failed == []
    return root, run_ids(root, records)


def nnstudies(root: Path, *args: str, **kw):
    return run([sys.executable, "-m", "nnstudies", *args], root, check=False, timeout=120,
               DVC_ROOT=root, **kw)


def tables(stdout: str) -> dict[str, list[list[str]]]:
    """`nnstudies compare`'s output: {study: [header cells, row cells, ...]} (no rule line)."""
    out, study = {}, None
    for line in stdout.splitlines():
        if line and not line.startswith("|"):
            study = line.split(" (")[0]
            out[study] = []
        elif line.startswith("|") and not set(line) <= set("|:- "):
            out[study].append([c.strip() for c in line.strip("|").split("|")])
    return out


def rows(stdout: str) -> list[list[str]]:
    """The runs of every study's table, in order."""
    return [row for table in tables(stdout).values() for row in table[1:]]


def test_compare_latest_run_per_stage_and_experiment(store):
    root, ids = store
    proc = nnstudies(root, "compare")
    assert proc.returncode == 0, proc.stderr
    # One table per study (its experiment), its key metrics first; every line fits 160 columns.
    found = tables(proc.stdout)
    assert list(found) == ["checker", "kmnist"]
    assert found["checker"] == [["stage", "exp", "run", "started (UTC)", "accuracy"],
                                ["train_checker", "(workspace)", ids["check"][:8], ANY, "1"]]
    assert found["kmnist"][0] == ["stage", "exp", "run", "started (UTC)", "test_accuracy", "test_loss",
                                  "parameters"]
    # Training stages only (no fetch_kmnist), best test accuracy first, numbers as written.
    assert [(r[0], r[1], r[2], *r[-3:]) for r in found["kmnist"][1:]] == [
        ("train_kmnist@conv", "(workspace)", ids["conv"][:8], "0.93", "0.25", "421642"),
        ("train_kmnist@lin", "wispy-pads", ids["lin-exp"][:8], "0.71", "", ""),
        ("train_kmnist@lin", "(workspace)", ids["lin"][:8], "0.69", "", ""),  # not "old"
    ]
    assert max(map(len, proc.stdout.splitlines())) <= 160
    every = nnstudies(root, "compare", "--all")
    assert every.returncode == 0, every.stderr
    stages = [(r[0], r[-1]) for r in tables(every.stdout)["kmnist"][1:]]
    assert len(stages) == 4 and stages[-1] == ("fetch_kmnist", "")  # no test accuracy: last



def test_compare_sends_the_runs_waiting_in_the_outbox_first(tmp_path, monkeypatch):
    (tmp_path / ".dvc").mkdir()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("NNSTUDIES_TRACKING", raising=False)
    monkeypatch.delenv("NNSTUDIES_TRACKING_SYNC", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.setenv("DVC_EXP_NAME", "")
    with tracking._store_lock(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path):
        record = log_run(tmp_path, "checker", "hand_checker", {"accuracy": 1.0})
        sender = tracking._SENDERS[-1]  # waiting for the lock: stopped, only compare can send
        sender.kill()
        sender.wait()
    assert [p.name for p in tracking.pending(tmp_path)] == [record]
    proc = nnstudies(tmp_path, "compare", "--all")  # hand_checker trains nothing
    assert proc.returncode == 0, proc.stderr
    assert [r[0] for r in rows(proc.stdout)] == ["hand_checker"] and not tracking.pending(tmp_path)
    assert rows(proc.stdout)[0][2] == run_ids(tmp_path, {"r": record})["r"][:8]


def test_compare_filters_and_metric_columns(store):
    root, ids = store
    proc = nnstudies(root, "compare", "--stage", "train_kmnist", "--experiment", "",
                     "--metrics", "test_accuracy")
    assert proc.returncode == 0, proc.stderr
    assert tables(proc.stdout)["kmnist"][0][-1] == "test_accuracy"
    assert [(r[0], r[2], r[-1]) for r in rows(proc.stdout)] == [
        ("train_kmnist@conv", ids["conv"][:8], "0.93"), ("train_kmnist@lin", ids["lin"][:8], "0.69")]
    bad = nnstudies(root, "compare", "--metrics", "acc")
    assert bad.returncode == 2 and bad.stderr.startswith("error: no metric 'acc' in these runs")


def test_compare_against_a_server_that_is_down_fails_fast_in_one_line(tmp_path):
    (tmp_path / ".dvc").mkdir()
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    proc = nnstudies(tmp_path, "compare", MLFLOW_TRACKING_URI=uri)
    took = time.monotonic() - started
    assert proc.returncode == 2 and proc.stdout == "" and took < 30, (took, proc.stderr)
    assert proc.stderr.startswith(f"error: MLflow tracking server {uri} is not reachable (")
    assert proc.stderr.endswith(": start it, or unset MLFLOW_TRACKING_URI to read this repo's "
                                "mlflow.db\n") and proc.stderr.count("\n") == 1


def test_compare_and_ui_without_a_store_say_so(tmp_path):
    for command in (["compare"], ["ui", "--port", str(free_port())]):
        proc = nnstudies(tmp_path, *command)
        assert proc.returncode == 2
        assert proc.stderr.startswith(f"error: no MLflow database at {tmp_path / 'mlflow.db'}")
    assert not (tmp_path / "mlflow.db").exists()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def listen_addresses(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp writes them) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if Path(table).exists():
            for line in Path(table).read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:
                    found.add(address)
    return found


def api(port: int, path: str, body: dict) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/2.0/mlflow/{path}",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def get_experiment(port: int, experiment_id: str) -> dict:
    url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get?experiment_id={experiment_id}"
    with urllib.request.urlopen(url, timeout=10) as response:
        experiment = json.loads(response.read())["experiment"]
    return {**experiment, "tags": {t["key"]: t["value"] for t in experiment.get("tags", [])}}


def test_ui_serves_the_pipeline_runs_on_loopback_and_stops_by_pid(store, tmp_path_factory):
    root, ids = store
    port = free_port()
    log = tmp_path_factory.mktemp("ui") / "server.log"
    started = time.monotonic()
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "-m", "nnstudies", "ui", "--port", str(port)],
                                  cwd=root, env=tool_env(DVC_ROOT=root), stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, f"server exited {server.returncode}: {log.read_text()[-3000:]}"
            assert time.monotonic() - started < STARTUP_TIMEOUT_S, log.read_text()[-3000:]
            time.sleep(0.25)
        startup_s = time.monotonic() - started
        print(f"mlflow server answered after {startup_s:.1f} s")
        if listen_addresses(port):  # Linux: bound to 127.0.0.1 only
            assert listen_addresses(port) == {"0100007F"}
        experiments = api(port, "experiments/search", {"max_results": 100})["experiments"]
        by_name = {e["name"]: e["experiment_id"] for e in experiments}
        assert {"kmnist", "checker"} <= set(by_name)
        found = api(port, "runs/search", {"experiment_ids": list(by_name.values()), "max_results": 100})
        assert {r["info"]["run_id"] for r in found["runs"]} == set(ids.values())
        lin = next(r for r in found["runs"] if r["info"]["run_id"] == ids["lin-exp"])
        tags = {t["key"]: t["value"] for t in lin["data"]["tags"]}
        assert tags["dvc.stage"] == "train_kmnist@lin" and tags["dvc.exp_name"] == "wispy-pads"

        # It printed, per study, the runs view and the curves view: links into saved views.
        base = f"http://127.0.0.1:{port}"
        printed = log.read_text().splitlines()
        assert printed[0].startswith(f"MLflow UI: {base}  (store sqlite:///{root / 'mlflow.db'};")
        view = "viewStateShareKey=nnstudies&compareRunsMode={}&workflowType=machine_learning"
        assert printed[1:5] == [
            f"  {name} {what} {base}/#/experiments/{by_name[name]}/runs?{view.format(mode)}"
            for name in ("kmnist", "checker")
            for what, mode in (("runs:  ", "TABLE"), ("curves:", "CHART"))]
        assert printed[5].startswith('  In a browser\'s first visit click "Model training" (top left) once')
        kmnist = get_experiment(port, by_name["kmnist"])["tags"]
        assert kmnist["mlflow.experimentKind"] == "custom_model_development"
        assert kmnist["mlflow.note.content"].startswith("Study 1: KMNIST classifiers")
        saved = json.loads(kmnist["mlflow.sharedViewState.nnstudies"])
        assert saved["name"] == "nnstudies: key params and metrics"
        state = json.loads(saved["state"])
        assert state["searchFilter"] == "tags.`dvc.stage` LIKE 'train_kmnist@%'"
        assert (state["orderByKey"], state["orderByAsc"]) == ("metrics.`test_accuracy`", False)
        assert state["selectedColumns"][0] == "metrics.`test_accuracy`"
        assert re.search(state["chartsSearchFilter"], "test_loss")
        assert not re.search(state["chartsSearchFilter"], "parameters")
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its worker, by process group
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    assert not port_open(port)


def test_ui_refuses_a_busy_port_or_no_port_in_one_line(store):
    root, _ = store
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = nnstudies(root, "ui", "--port", str(port))
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == f"error: port {port} on 127.0.0.1 is in use: pass --port with a free one\n"
    for port in ("99999", "0", "-1"):
        proc = nnstudies(root, "ui", "--port", port)
        assert (proc.returncode, proc.stdout) == (2, "")
        assert proc.stderr == f"error: --port {port} is not a TCP port: pass one from 1 to 65535\n"


def fake_runs(*params: dict) -> list:
    return [SimpleNamespace(data=SimpleNamespace(params=p)) for p in params]


def test_a_view_shows_the_params_that_differ_first_then_the_key_params():
    from nnstudies import compare

    runs = fake_runs({"hid": "4", "checker.train.lr": "0.01", "checker.train.seed": "0",
                      "checker.train.patience": "9", "tracking.required": "False"},
                     {"hid": "4", "checker.train.lr": "0.01", "checker.train.seed": "1",
                      "checker.train.patience": "9", "tracking.required": "True"})
    state = compare.view_state(compare.VIEWS["checker"], runs)
    assert state["selectedColumns"] == [
        "metrics.`accuracy`", "metrics.`epochs_to_100`", "metrics.`restarts_succeeded`",
        "metrics.`loss`", "metrics.`output_margin`",
        # first the param that differs, then the study's key params; not patience, not tracking
        "params.`checker.train.seed`", "params.`checker.train.lr`", "params.`hid`"]
    assert state["columnOrder"] == state["selectedColumns"]  # the sort metric first
    assert state["chartsSearchFilter"] == "^(accuracy|loss|restarts_at_100)$"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty project folder whose runs log to its own mlflow.db."""
    (tmp_path / ".dvc").mkdir()
    for name in ("MLFLOW_TRACKING_URI", "NNSTUDIES_TRACKING", "NNSTUDIES_TRACKING_SYNC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.setenv("DVC_EXP_NAME", "")
    return tmp_path


def test_the_sender_migrates_an_old_store_once(project):
    """A store from before: experiments under their old names, no kind, no description."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    old = {name: client.create_experiment(name) for name in ("report", "checkerboard-mlp")}
    log_run(project, "kmnist", "train_kmnist@lin", {"test_accuracy": 0.7})  # a new experiment
    assert tracking.flush(project).failed == []
    experiments = {e.name: e for e in client.search_experiments()}
    assert set(experiments) == {"Default", "report-builds", "checker", "kmnist"}
    assert experiments["report-builds"].experiment_id == old["report"]  # renamed: runs kept
    assert experiments["checker"].experiment_id == old["checkerboard-mlp"]
    for name in ("report-builds", "checker", "kmnist"):
        assert experiments[name].tags["mlflow.experimentKind"] == "custom_model_development"
        assert experiments[name].tags["mlflow.note.content"] == (tracking.NOTES[name]
                                                                 + tracking.NOTE_TAIL)
    assert experiments["report-builds"].tags["mlflow.note.content"].startswith("Not a study:")
    assert tracking.migrate_store(client) == []  # idempotent


def test_compare_shows_the_params_that_differ_and_fits_160_columns():
    import pandas as pd

    from nnstudies import compare

    runs = pd.DataFrame({
        "study": ["seq"] * 3, "stage": ["train_seq@reber"] * 3, "exp": ["", "a", "b"],
        "run_id": ["r1" * 16, "r2" * 16, "r3" * 16],
        "start_time": pd.to_datetime(["2026-11-26 10:00"] * 3),
        "metrics.success_count": [16.0, 12.0, 3.0], "metrics.test.error": [0.0015, 0.002, 0.1],
        "metrics.unlisted": [1.0, 2.0, 3.0],
        "params.seq.train.lr": ["0.001", "0.01", "0.1"], "params.seq.train.seed": ["0"] * 3,
        **{f"params.seq.reber.knob{i}": ["x" * 12, "y" * 12, str(i)] for i in range(12)},
    })
    text = compare.table(runs)
    lines = text.splitlines()
    assert lines[0] == "seq (3 runs)"
    header = [c.strip() for c in lines[1].strip("|").split("|")]
    assert header[:6] == ["stage", "exp", "run", "started (UTC)", "success_count", "test.error"]
    assert "train.lr" in header and "train.seed" not in header  # differs / does not
    assert "unlisted" not in header  # not a key metric of the study's view
    assert max(map(len, lines)) <= 160
    assert lines[-1].startswith("(") and "do not fit 160 columns" in lines[-1]


def test_compare_sorts_by_the_key_metric_then_its_tie_break_and_prints_numbers_plainly():
    import pandas as pd

    from nnstudies import compare

    runs = pd.DataFrame({
        "study": ["checker"] * 4, "stage": ["train_checker"] * 4, "exp": ["a", "b", "c", "d"],
        "run_id": [c * 32 for c in "abcd"],
        "start_time": pd.to_datetime([f"2026-11-26 10:0{i}" for i in range(4)]),
        "metrics.accuracy": [0.889, 1.0, 1.0, None], "metrics.epochs_to_100": [None, 987.0, 421642.0, None],
        "metrics.loss": [0.0123456789, 1.5e-7, 2.0, None], "params.hid": ["4", "8", "6", "5"]})
    found = tables("checker\n" + compare.table(runs).split("\n", 1)[1])["checker"]
    assert found[0] == ["stage", "exp", "run", "started (UTC)", "accuracy", "epochs_to_100", "loss", "hid"]
    assert [(r[1], *r[4:]) for r in found[1:]] == [  # a tie on accuracy: fewer epochs first
        ("b", "1", "987", "0.00000015", "8"), ("c", "1", "421642", "2", "6"),
        ("a", "0.889", "", "0.01235", "4"), ("d", "", "", "", "5")]


def test_compare_names_the_earlier_run_whose_outputs_dvc_restored(project):
    """`dvc exp run -S hid=6` after hid=5 restores hid=6's outputs from DVC's run-cache: no
    stage runs, so the newest MLflow run (hid=5) is not the one that made the workspace's
    outputs; dvc.lock's params name the run that did."""
    checker = lambda hid, exp: log_run(project, "checker", "train_checker",  # noqa: E731
                                       {"accuracy": 1.0}, exp, {"hid": hid, "checker": {"train": {"lr": 0.01}}})
    records = {"hid6": checker(6, ""), "hid5": checker(5, "lofty-dado")}
    log_run(project, "kmnist", "train_kmnist@lin", {"test_accuracy": 0.7}, "", {"kmnist": {"lin": {"lr": 0.1}}})
    log_run(project, "checker", "hand_checker", {"step.accuracy": 1.0}, "", {"checker": {"hand": {"w": 1}}})
    assert tracking.flush(project).failed == []
    ids = run_ids(project, records)
    lock = {"schema": "2.0", "stages": {
        "train_checker": {"cmd": "x", "params": {"params.yaml": {"hid": 6, "checker.train": {"lr": 0.01}}}},
        "train_kmnist@lin": {"cmd": "x", "params": {"params.yaml": {"kmnist.lin.lr": 0.2}}},
        "hand_checker": {"cmd": "x", "params": {"params.yaml": {"checker.hand": {"w": 2}}}}}}
    (project / "dvc.lock").write_text(json.dumps(lock))  # JSON is YAML
    proc = nnstudies(project, "compare")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [r[2] for r in tables(proc.stdout)["checker"][1:]] == [ids["hid5"][:8], ids["hid6"][:8]]
    assert re.fullmatch(rf"train_checker: the workspace's outputs \(dvc.lock\) are run {ids['hid6'][:8]} "
                        r"`train_checker` of \d\d-\d\d \d\d:\d\d, restored by DVC from its run-cache "
                        r"\(no new run\)", lines[lines.index("checker (2 runs)") + 5])
    assert ("train_kmnist@lin: no run in the store has the params of the workspace's outputs "
            "(dvc.lock)") in lines
    assert "hand_checker" not in proc.stdout  # not a training stage: neither row nor note
    every = nnstudies(project, "compare", "--all").stdout.splitlines()
    assert "hand_checker: no run in the store has the params of the workspace's outputs (dvc.lock)" in every
    lock["stages"]["train_checker"]["params"]["params.yaml"]["hid"] = 5  # the newest made them
    (project / "dvc.lock").write_text(json.dumps(lock))
    assert "train_checker:" not in nnstudies(project, "compare").stdout
