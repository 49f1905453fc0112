"""Sweeps: the Wilson interval, the per-size summary, the report's answer; faults on a real
Dask scheduler with two worker processes on 127.0.0.1; the DVC stages in a repo copy."""

from __future__ import annotations

import contextlib
import csv
import http.server
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run, set_params, tool_env
from nnstudies.report import document, sweeps
from nnstudies.sweep import checker, cluster, stats
from nnstudies.sweep.__main__ import main as rerun_point

# Tiny but real checkerboard points: ~1 s each on a busy 2-core machine.
CHECK = {"sweep": {"checker": {"hids": [2, 3], "seeds": 3, "max_epochs": 500}},
         "checker": {"train": {"act": "sig", "init": 0.15, "lr": 0.01, "weight_decay": 1e-5,
                               "patience": 300, "cpu_path": "host"}}}


# ---- statistics -----------------------------------------------------------------------

def test_summarize_counts_per_size_with_quartiles_of_successes():
    rows = [{"hid": 3, "success": True, "epochs_to_success": e} for e in (400, 100, 300, 200)]
    rows += [{"hid": 3, "success": False, "epochs_to_success": None}]
    rows += [{"hid": 2, "success": False, "epochs_to_success": None}] * 2
    summary = stats.summarize(rows)
    assert list(summary) == ["hid_2", "hid_3"]
    assert summary["hid_2"] == {"hid": 2, "runs": 2, "successes": 0, "rate": 0.0, "low": 0.0,
                                "high": stats.wilson(0, 2)[1], "epochs_to_success": None}
    three = summary["hid_3"]
    assert (three["runs"], three["successes"], three["rate"]) == (5, 4, 0.8)
    assert (three["low"], three["high"]) == stats.wilson(4, 5)
    assert three["epochs_to_success"] == {"q1": 175.0, "median": 250.0, "q3": 325.0}


def test_a_sweeps_sequences_are_the_start_of_the_stage_data():
    """Workers generate the sequences themselves: the same as make_seq's file."""
    import numpy as np

    from nnstudies.seq import languages
    from nnstudies.sweep import seq

    g = {"seed": 0, "validation_sequences": 20, "max_n": 8, "reber_min_length": 0}
    for task in seq.TASKS:
        full = languages.generate(task, 0, 3001, 20, 20, 8)  # as make_seq, more sequences
        mine = seq.make_sequences(task, g, epochs=1000)
        end = mine.train.starts[-1]
        assert len(mine.train) == 1001 and np.array_equal(mine.train.symbols, full.train.symbols[:end])
        assert np.array_equal(mine.train.starts, full.train.starts[:1002])
        assert np.array_equal(mine.validation.symbols, full.validation.symbols)
        assert np.array_equal(mine.prob_table[mine.validation.prob_index],
                              full.prob_table[full.validation.prob_index])


# ---- the report's answer ------------------------------------------------------------------

def _size(hid, k, n, epochs=None):
    low, high = stats.wilson(k, n)
    q = stats.quartiles(epochs or [])
    return {"hid": hid, "runs": n, "successes": k, "rate": k / n, "low": low, "high": high,
            "epochs_to_success": q}


def _write_sweeps(metrics: Path, plots: Path, check_sizes: dict) -> None:
    seq_sizes = {"hid_1": _size(1, 0, 5), "hid_2": _size(2, 5, 5, [5000, 7500, 7500, 10000, 12500])}
    seq = {"points": 30, "seeds": 5, "eval_every": 2500}
    for task, bounds in (("reber", {"error": 0.01, "separation": 0.9}), ("anbn", {"error": 0.03}),
                         ("anbncn", {"error": 0.03})):
        seq[task] = {"epochs": 50000, "success": bounds, "sizes": seq_sizes}
    files = {"sweep_checker.json": {"points": 30, "seeds": 10, "max_epochs": 5000, "patience": 2000,
                                  "sizes": check_sizes},
             "sweep_seq.json": seq}
    (metrics / "results").mkdir(exist_ok=True)
    for name, data in files.items():
        (metrics / "results" / name).write_text(json.dumps(data))
    (metrics / "results" / "train_checker.json").write_text(
        json.dumps({"settings": {"hid": 6, "restarts": 16}}))
    for study in ("sweep_checker", "sweep_seq"):
        (plots / study).mkdir(parents=True, exist_ok=True)
        (plots / study / "rate.png").write_bytes(b"\x89PNG\r\n\x1a\n")


def _report_text(tmp_path, check_sizes) -> str:
    _write_sweeps(tmp_path, tmp_path, check_sizes)
    return document.markdown(sweeps.section(tmp_path, tmp_path / "results", tmp_path), tmp_path)


def test_the_report_sentence_follows_the_data(tmp_path):
    sizes = {f"hid_{h}": _size(h, k, 10, [2500] * k) for h, k in ((2, 0), (3, 1), (4, 4), (5, 9), (6, 4))}
    text = _report_text(tmp_path, sizes)
    assert "How many hidden units does each task need?" in text
    assert ("**Checkerboard MLP**: the smallest size that succeeded in at least 90% of runs is "
            "**hid = 5**, 9 of 10 (90%, 95% interval 60-98%)") in text
    assert "The next smaller size, hid = 4: 4 of 10 (40%, 95% interval 17-69%)." in text
    assert "Not every larger size did as well: hid = 6: 4 of 10" in text
    assert "No run with hid 2 succeeded (10 runs)." in text
    # train_checker's hid = 6 and 16 restarts: 0.6 ** 16 = 0.028%
    assert "one run there succeeds in 4 of 10 (40%, 95% interval 17-69%), so the chance that " \
           "all its 16 restarts fail within this budget is 0.028%" in text
    assert "**a^n b^n**: the smallest size that succeeded in at least 90% of runs is **hid = 2**, " \
           "5 of 5 (100%, 95% interval 57-100%); its successful runs took a median of 7,500 epochs " \
           "(quartiles 7,500-10,000)" in text

    sizes["hid_5"] = _size(5, 6, 10, [2500] * 6)  # the data changes: so does the answer
    changed = _report_text(tmp_path, sizes)
    assert "**hid = 5**" not in changed and "No run with hid 2 succeeded" in changed
    assert ("**Checkerboard MLP**: no size from hid = 2 to 6 succeeded in 90% of runs; the best "
            "was hid = 5, 6 of 10 (60%") in changed
    sizes["hid_6"] = _size(6, 10, 10, [2500] * 10)
    assert "is **hid = 6**, 10 of 10 (100%, 95% interval 72-100%)" in _report_text(tmp_path, sizes)


# ---- MLflow: points are child runs of the sweep's run ------------------------------------

def test_child_runs_land_under_their_parent_and_a_half_sent_record_lands_once(tmp_path, monkeypatch):
    import shutil

    from mlflow.tracking import MlflowClient

    from nnstudies import tracking

    (tmp_path / ".dvc").mkdir()
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    for name in ("MLFLOW_TRACKING_URI", "NNSTUDIES_TRACKING", "NNSTUDIES_TRACKING_SYNC"):
        monkeypatch.delenv(name, raising=False)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    with tracking._store_lock(tracking.tracking_uri(), tmp_path):  # the sender waits
        with tracking.start("checker", "sweep_checker", {"sweep": {"checker": {"seeds": 2}}}) as run:
            for seed in (0, 1):
                run.log_child(f"sweep_checker checker hid=2 seed={seed}", {"hid": 2, "seed": seed},
                              {"success": seed, "seconds": 0.5}, {"dask.worker": "w0"})
        (record,) = tracking.pending(tmp_path)
        shutil.copytree(record, tmp_path / "kept")
    assert tracking.flush(tmp_path).failed == []
    tracking._SENDERS[-1].wait(timeout=120)

    def active():
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                  "tags.`dvc.stage` = 'sweep_checker'")
        parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        assert len(parents) == 1 and parents[0].info.status == "FINISHED"
        children = sorted((r for r in runs if r not in parents), key=lambda r: r.data.params["seed"])
        assert [r.data.tags["mlflow.parentRunId"] for r in children] == [parents[0].info.run_id] * 2
        return parents[0], children

    parent, children = active()
    assert [(c.data.params["seed"], c.data.metrics["success"], c.data.tags["dask.worker"])
            for c in children] == [("0", 0.0, "w0"), ("1", 1.0, "w0")]
    assert children[0].data.tags["mlflow.runName"] == "sweep_checker checker hid=2 seed=0"

    # A sender that died after creating the runs but before ending the parent: the next flush
    # deletes the half-sent parent with its children and sends the record again, once.
    client.update_run(parent.info.run_id, status="RUNNING")
    shutil.copytree(tmp_path / "kept", record)
    assert tracking.flush(tmp_path).failed == []
    again, again_children = active()
    assert again.info.run_id != parent.info.run_id and len(again_children) == 2
    assert client.get_run(children[0].info.run_id).info.lifecycle_stage == "deleted"


# ---- Dask: a real scheduler and two worker processes on 127.0.0.1 ------------------------

def _dask(*args, log: Path) -> subprocess.Popen:
    return subprocess.Popen(["dask", *args], env=tool_env(OMP_NUM_THREADS=1),
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dask")
    proc = _dask("scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", "127.0.0.1:0",
                 "--scheduler-file", str(tmp / "scheduler.json"), log=tmp / "scheduler.log")
    deadline = time.monotonic() + 60
    while not (tmp / "scheduler.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, (tmp / "scheduler.log").read_text()
        time.sleep(0.2)
    time.sleep(0.2)  # the file is written whole, but give the scheduler a moment to listen
    yield json.loads((tmp / "scheduler.json").read_text())["address"]
    proc.terminate()
    proc.wait(30)


@pytest.fixture(scope="module")
def workers(scheduler, tmp_path_factory):
    """Two single-threaded worker processes without a nanny (a killed one stays dead), shared
    by this module's tests (a fresh worker costs seconds of imports); the test that kills one
    comes last."""
    from distributed import Client

    tmp = tmp_path_factory.mktemp("workers")
    procs = [_dask("worker", scheduler, "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny",
                   "--no-dashboard", "--local-directory", str(tmp / f"w{i}"), "--name", f"w{i}",
                   log=tmp / f"w{i}.log") for i in range(2)]
    with Client(scheduler, timeout=30) as client:
        client.wait_for_workers(2, timeout=60)
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait(30)


def test_point_that_raises_fails_the_sweep_naming_it_and_writes_nothing(scheduler, workers, tmp_path):
    from distributed import Client

    jobs = checker.jobs(CHECK)
    jobs[4].point = {**jobs[4].point, "lr": -1.0}  # torch's Adam refuses it, on the worker
    with Client(scheduler, timeout=30) as client, pytest.raises(cluster.SweepError) as err:
        cluster.run(client, jobs, "t")
    assert str(err.value) == ("sweep point checker hid=3 seed=1 failed: ValueError: Invalid learning "
                              "rate: -1.0; rerun it alone for the traceback: "
                              "python -m nnstudies.sweep checker --hid 3 --seed 1")

    # Through the stage: a value the schema allows but training cannot take (every weight
    # inf, the outputs NaN) fails every point; the first is named; no output is written.
    work = _stage_dir(tmp_path, scheduler=scheduler, **{"checker.train.init": 1e300})
    (work / "metrics").mkdir()
    (work / "metrics/sweep_checker.json").write_text("old\n")
    proc = _stage(work, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: sweep point checker hid=")
    assert "RuntimeError: all elements of input should be between 0 and 1" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert (work / "metrics/sweep_checker.json").read_text() == "old\n"
    assert not (work / "plots").exists() and not (work / "results").exists()


def test_unreachable_scheduler_is_one_line_before_any_work(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    work = _stage_dir(tmp_path, scheduler=f"tcp://127.0.0.1:{port}")
    started = time.monotonic()
    proc = _stage(work, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: params.yaml: sweep.scheduler = 'tcp://127.0.0.1:{port}': "
                                  "no Dask scheduler answers there (")
    assert proc.stderr.rstrip().endswith("set sweep.scheduler: local")
    assert len(proc.stderr.strip().splitlines()) == 1 and "point" not in proc.stdout
    assert not (work / "plots").exists() and not (work / "metrics").exists()
    assert time.monotonic() - started < cluster.CONNECT_TIMEOUT + 30


@contextlib.contextmanager
def _not_dask(kind: str):
    """A server on 127.0.0.1 that accepts TCP but is not Dask: silent (holds every connection,
    says nothing) or a plain HTTP server."""
    if kind == "http":
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield f"tcp://127.0.0.1:{server.server_address[1]}"
        server.shutdown()
        server.server_close()
        return
    held = []
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sock.settimeout(0.2)

        def accept():
            with contextlib.suppress(OSError):  # closed when the test ends
                while True:
                    with contextlib.suppress(TimeoutError):
                        held.append(sock.accept()[0])

        threading.Thread(target=accept, daemon=True).start()
        yield f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    for conn in held:
        conn.close()


@pytest.mark.parametrize("kind", ["silent", "http"])
def test_a_scheduler_address_that_is_not_dask_fails_in_bounded_time_in_one_line(kind, scheduler,
                                                                                monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1.0)
    cluster._handshake(scheduler)  # the control: a real scheduler passes the probe
    raised = []

    def attempt():  # in a thread: a hang (the bug) fails the test instead of hanging it
        try:
            with cluster.connect(address):
                pass
        except cluster.SweepError as err:
            raised.append(err)

    with _not_dask(kind) as address:
        worker = threading.Thread(target=attempt, daemon=True)
        worker.start()
        worker.join(2 * cluster.CONNECT_TIMEOUT + 3)
        assert not worker.is_alive(), f"connecting to {address} hangs"
    message = str(raised[0])
    assert message.startswith(f"params.yaml: sweep.scheduler = {address!r}: no Dask scheduler "
                              "answers there (a server ")
    assert message.endswith("set sweep.scheduler: local") and "\n" not in message
    if kind == "silent":
        assert "accepts connections there but sent no Dask handshake within 2 s" in message


def _stage_dir(tmp_path: Path, scheduler: str, **dotted) -> Path:
    work = tmp_path / "stage"
    work.mkdir()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["sweep"]["scheduler"] = scheduler
    params["sweep"]["checker"] = CHECK["sweep"]["checker"]
    params["checker"]["train"]["cpu_path"] = "host"  # the shared workers' path (CHECK's)
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    set_params(work, **dotted)
    return work


def _stage(work: Path, check=True):
    return run(["python", str(ROOT / "stages/sweep_checker.py")], work, check=check, timeout=300,
               NNSTUDIES_TRACKING="off")


# ---- the default LocalCluster, and the DVC stages ----------------------------------------

def test_local_cluster_one_single_threaded_worker_process_per_core_same_results():
    jobs = checker.jobs({**CHECK, "sweep": {"checker": {"hids": [2], "seeds": 2, "max_epochs": 300}}})
    with cluster.connect("local", 2) as client:
        assert cluster.describe(client).startswith("2 workers, 2 threads at tcp://127.0.0.1:")
        pids = set(client.run(os.getpid).values())
        outcomes = cluster.run(client, jobs, "t")
    assert len(pids) == 2 and os.getpid() not in pids  # processes, not threads of this one
    assert [r for r, _ in outcomes] == [r for r, _ in cluster.run_serial(jobs, "t")]


def test_strict_points_pin_the_cpu_path_on_fresh_workers_and_a_used_worker_says_so():
    from nnstudies import cpu

    check = {**CHECK, "sweep": {"checker": {"hids": [2], "seeds": 2, "max_epochs": 50}}}
    strict = {**check, "checker": {"train": {**CHECK["checker"]["train"], "cpu_path": "strict"}}}
    with cluster.connect("local", 2) as client:
        outcomes = cluster.run(client, checker.jobs(strict), "t")
        for _, timing in outcomes:
            assert timing["cpu_path"]["torch_capability"] == "AVX2"
            assert timing["cpu_path"]["variables"].items() >= cpu.STRICT.items()
    with cluster.connect("local", 1) as client:  # a worker that computed on the host's path
        cluster.run(client, checker.jobs(check), "t")
        if client.run(lambda: __import__("torch").backends.cpu.get_cpu_capability()).popitem()[1] \
                == "AVX2":
            pytest.skip("this CPU's own path is AVX2: the strict one")
        with pytest.raises(cluster.SweepError, match="strict needs torch's AVX2 kernels, but this "
                                                     "process runs"):
            cluster.run(client, checker.jobs(strict), "t")


@pytest.mark.pipeline
def test_dvc_repro_then_exp_run_reruns_only_the_changed_sweep(repo, scheduler, workers, capsys):
    tiny = {"sweep.scheduler": scheduler, "sweep.checker.hids": [2], "sweep.checker.seeds": 2,
            "sweep.checker.max_epochs": 400, "checker.train.patience": 200, "sweep.seq.seeds": 1,
            "sweep.seq.eval_every": 100,
            # this module's shared workers ran host-path points already: a worker keeps the
            # CPU path of its first kernel (a strict point there fails, saying so)
            "checker.train.cpu_path": "host", "seq.train.cpu_path": "host"}
    for task in ("reber", "anbn", "anbncn"):
        tiny.update({f"sweep.seq.{task}.hids": [2], f"sweep.seq.{task}.epochs": 300})
    set_params(repo, **tiny)
    first = run(["dvc", "repro", "sweep_checker", "sweep_seq"], repo, timeout=600)
    assert f"sweep_checker: 2 points on 2 workers, 2 threads at {scheduler}" in first.stdout
    assert "sweep_checker: point 2/2" in first.stdout and "sweep_seq: point 3/3" in first.stdout
    metrics = json.loads((repo / "metrics/sweep_checker.json").read_text())
    assert list(metrics["sizes"]) == ["hid_2"] and metrics["sizes"]["hid_2"]["runs"] == 2
    paths = json.loads((repo / "results/sweep_checker.json").read_text())["cpu_paths"]
    assert len(paths) == 1 and paths[0]["threads"] == 1  # both workers: one machine, one path
    assert "variables" not in paths[0] or "ATEN_CPU_CAPABILITY" not in paths[0]["variables"]
    seq = json.loads((repo / "metrics/sweep_seq.json").read_text())
    assert [seq[t]["sizes"]["hid_2"]["runs"] for t in ("reber", "anbn", "anbncn")] == [1, 1, 1]
    for path in ("plots/sweep_checker/rate.csv", "plots/sweep_checker/rate.png",
                 "plots/sweep_seq/rate_anbncn.csv", "plots/sweep_seq/rate.png"):
        assert (repo / path).stat().st_size > 0, path

    # Any point reruns alone, here, with the same result as in the sweep
    # (`python -m nnstudies.sweep seq --task anbn --hid 2 --seed 0`, called in this process).
    with open(repo / "plots/sweep_seq/points.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["task"] == "anbn")
    capsys.readouterr()
    assert rerun_point(["seq", "--task", "anbn", "--hid", "2", "--seed", "0",
                        "--params", str(repo / "params.yaml")]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert {k: "" if v is None else str(v) for k, v in alone.items()} == row

    # MLflow: each point is a child run of the sweep's run, with its params and metrics.
    from mlflow.tracking import MlflowClient

    from nnstudies import tracking

    assert tracking.flush(repo).failed == []
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name("checker")
    runs = client.search_runs([exp.experiment_id], "tags.`dvc.stage` = 'sweep_checker'")
    parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parent) == 1 and len(children) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent[0].info.run_id}
    assert sorted(r.data.params["seed"] for r in children) == ["0", "1"]
    assert all(r.data.params["hid"] == "2" and r.data.metrics["seconds"] > 0 for r in children)

    # A changed sweep.checker reruns sweep_checker only; its old points come out the same.
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny sweeps"], repo)
    again = run(["dvc", "exp", "run", "-S", "sweep.checker.hids=[2,3]", "sweep_checker", "sweep_seq"],
                repo, timeout=600)
    assert "Running stage 'sweep_checker'" in again.stdout
    assert "Running stage 'sweep_seq'" not in again.stdout
    rerun = json.loads((repo / "metrics/sweep_checker.json").read_text())
    assert list(rerun["sizes"]) == ["hid_2", "hid_3"]
    assert rerun["sizes"]["hid_2"] == metrics["sizes"]["hid_2"]


def test_worker_killed_mid_sweep_its_points_rerun_on_the_other(scheduler, workers):
    from distributed import Client

    jobs = checker.jobs(CHECK)
    killed = {}
    with Client(scheduler, timeout=30) as client:
        pids = client.run(os.getpid)  # worker address -> pid
        assert len(pids) == 2

        def kill_one(i, outcome):
            if killed:
                return
            time.sleep(0.3)  # both workers are inside a point now, not between two
            victim, keys = max(client.processing().items(), key=lambda item: len(item[1]))
            assert keys, "no worker was busy: nothing to kill mid-point"
            os.kill(pids[victim], signal.SIGKILL)
            killed.update(worker=victim, jobs={int(k.rsplit("-", 1)[1]) for k in keys})

        outcomes = cluster.run(client, jobs, "t", on_result=kill_one)
    assert len(outcomes) == len(jobs) and all(o is not None for o in outcomes)
    survivor = {t["worker"] for _, t in outcomes} - {killed["worker"]}
    assert len(survivor) == 1
    rerun = [i for i in killed["jobs"] if outcomes[i][1]["worker"] in survivor]
    assert rerun, "no point of the killed worker was rerun elsewhere"
    # Each point is deterministic: the rerun one equals the same point run alone here.
    for i in rerun:
        assert outcomes[i][0] == cluster.call(jobs[i].fn, jobs[i].point)[0]
    assert [r["hid"] for r, _ in outcomes] == [2] * 3 + [3] * 3
