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

# Tiny but real checkerboard points: well under a second each on a busy 2-core machine.
CHECK = {"sweep": {"seeds": 3, "batch": 2, "threshold": 0.9, "checker": {"hids": [2, 3]}},
         "checker": {"train": {"act": "sig", "init": 0.15, "lr": 0.01, "weight_decay": 1e-5,
                               "max_epochs": 500, "patience": 300, "cpu_path": "host"}}}


def check_jobs(params=CHECK):
    return checker.batches(checker.points(params), params["sweep"]["batch"])


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
    seq_sizes = {"hid_1": _size(1, 0, 35), "hid_2": _size(2, 35, 35, [5000, 7500, 7500, 10000])}
    seq = {"points": 210, "seeds": 35, "eval_every": 1000, "success_window": 0.1}
    for task, bounds in (("reber", {"error": 0.01, "separation": 0.9}), ("anbn", {"error": 0.03}),
                         ("anbncn", {"error": 0.03})):
        seq[task] = {"epochs": 50000, "success": bounds, "sizes": seq_sizes,
                     "conclusion": stats.conclude(seq_sizes, 0.9)}
    files = {"sweep_checker.json": {"points": 175, "seeds": 35, "max_epochs": 200000,
                                    "patience": 2000, "sizes": check_sizes,
                                    "conclusion": stats.conclude(check_sizes, 0.9)},
             "sweep_seq.json": seq}
    (metrics / "results").mkdir(exist_ok=True)
    for name, data in files.items():
        (metrics / "results" / name).write_text(json.dumps(data))
    (metrics / "results" / "train_checker.json").write_text(
        json.dumps({"settings": {"hid": 6, "restarts": 16}}))
    (metrics / "results" / "hand_checker.json").write_text(
        json.dumps({"design": {"hid_bias": [0.0] * 4}, "step": {"correct": 9}}))
    for study in ("sweep_checker", "sweep_seq"):
        (plots / study).mkdir(parents=True, exist_ok=True)
        (plots / study / "rate.png").write_bytes(b"\x89PNG\r\n\x1a\n")


def _report_text(tmp_path, check_sizes) -> str:
    _write_sweeps(tmp_path, tmp_path, check_sizes)
    return document.markdown(sweeps.section(tmp_path, tmp_path / "results", tmp_path), tmp_path)


def test_the_report_sentence_follows_the_data(tmp_path):
    counts = ((2, 0), (4, 5), (6, 14), (8, 35), (12, 34))
    sizes = {f"hid_{h}": _size(h, k, 35, [2500] * k) for h, k in counts}
    text = _report_text(tmp_path, sizes)
    assert "How many hidden units does each task need?" in text
    assert ("**Checkerboard MLP**: **hid = 8** is the smallest size shown to succeed in at least "
            "90% of runs (95% lower bound >= 0.9): 35 of 35 (100%, 95% interval 90-100%)") in text
    assert "Next smaller, hid = 6: 14 of 35 (40%, 95% interval 26-56%)." in text
    assert ("Neighbours told apart (Fisher exact, Holm): hid 6 vs 8 (p = 4.8e-08); not: "
            "2 vs 4, 4 vs 6, 8 vs 12.") in text
    assert "Holm-adjusted over the pairs of one task, and told apart where p < 0.05" in text
    # train_checker's hid = 6 and 16 restarts: 0.6 ** 16 = 0.028%
    assert "one run there succeeds in 14 of 35 (40%, 95% interval 26-56%), so the chance that " \
           "all its 16 restarts fail within this budget is 0.028%" in text
    assert "**a^n b^n**: **hid = 2** is the smallest size shown to succeed in at least 90% of runs " \
           "(95% lower bound >= 0.9): 35 of 35 (100%, 95% interval 90-100%); median epochs to " \
           "success 7,500 (quartiles 6,875-8,125)" in text

    sizes["hid_8"] = _size(8, 33, 35, [2500] * 33)  # the data change: so does the answer
    changed = _report_text(tmp_path, sizes)
    assert "**hid = 8**" not in changed
    assert ("**Checkerboard MLP**: no size from hid = 2 to 12 is shown to succeed in 90% of runs "
            "at 95% confidence; the highest lower bound is hid = 12's, 34 of 35") in changed


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

    jobs = check_jobs()
    jobs[2].point = {**jobs[2].point, "lr": -1.0}  # torch's Adam refuses it, on the worker
    with Client(scheduler, timeout=30) as client, pytest.raises(cluster.SweepError) as err:
        cluster.run(client, jobs, "t")
    assert str(err.value) == ("sweep batch checker hid=3 seeds=0-1 failed: ValueError: Invalid "
                              "learning rate: -1.0; rerun it alone for the traceback: "
                              "python -m nnstudies.sweep checker --hid 3 --seed 0")

    # Through the stage: a value the schema allows but training cannot take (every weight
    # inf, the outputs NaN) fails every batch; the first is named; no output is written.
    work = _stage_dir(tmp_path, scheduler=scheduler, **{"checker.train.init": 1e300})
    (work / "metrics").mkdir()
    (work / "metrics/sweep_checker.json").write_text("old\n")
    proc = _stage(work, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: sweep batch checker hid=")
    assert "ValueError: the loss is not finite" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert (work / "metrics/sweep_checker.json").read_text() == "old\n"
    assert not (work / "plots").exists() and not (work / "results").exists()
    assert not (work / "points").exists()  # no batch finished: nothing cached


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


def _stage_dir(tmp_path: Path, scheduler: str, name: str = "stage", **dotted) -> Path:
    work = tmp_path / name
    work.mkdir()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["sweep"].update(CHECK["sweep"], scheduler=scheduler)
    params["checker"]["train"].update(CHECK["checker"]["train"])  # host: the shared workers' path
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    (work / "gates.yaml").write_text((ROOT / "gates.yaml").read_text())
    set_params(work, **dotted)
    return work


def _stage(work: Path, check=True):
    return run(["python", str(ROOT / "stages/sweep_checker.py")], work, check=check, timeout=300,
               NNSTUDIES_TRACKING="off")


# ---- the default LocalCluster, and the DVC stages ----------------------------------------

def test_local_cluster_one_single_threaded_worker_process_per_core_same_results():
    tiny = {**CHECK, "sweep": {**CHECK["sweep"], "seeds": 2, "checker": {"hids": [2]}}}
    jobs = check_jobs(tiny)
    with cluster.connect("local", 2) as client:
        assert cluster.describe(client).startswith("2 workers, 2 threads at tcp://127.0.0.1:")
        pids = set(client.run(os.getpid).values())
        outcomes = cluster.run(client, jobs, "t")
    assert len(pids) == 2 and os.getpid() not in pids  # processes, not threads of this one
    assert [r for r, _ in outcomes] == [r for r, _ in cluster.run_serial(jobs, "t")]


def test_strict_points_pin_the_cpu_path_on_fresh_workers_and_a_used_worker_says_so():
    from nnstudies import cpu

    check = {**CHECK, "sweep": {**CHECK["sweep"], "seeds": 2, "checker": {"hids": [2]}},
             "checker": {"train": {**CHECK["checker"]["train"], "max_epochs": 50}}}
    strict = {**check, "checker": {"train": {**check["checker"]["train"], "cpu_path": "strict"}}}
    with cluster.connect("local", 2) as client:
        outcomes = cluster.run(client, check_jobs(strict), "t")
        for _, timing in outcomes:
            assert timing["cpu_path"]["torch_capability"] == "AVX2"
            assert timing["cpu_path"]["variables"].items() >= cpu.STRICT.items()
    with cluster.connect("local", 1) as client:  # a worker that computed on the host's path
        cluster.run(client, check_jobs(check), "t")
        if client.run(lambda: __import__("torch").backends.cpu.get_cpu_capability()).popitem()[1] \
                == "AVX2":
            pytest.skip("this CPU's own path is AVX2: the strict one")
        with pytest.raises(cluster.SweepError, match="strict needs torch's AVX2 kernels, but this "
                                                     "process runs"):
            cluster.run(client, check_jobs(strict), "t")


# ---- the point cache ------------------------------------------------------------------------

def _points(work: Path) -> list[dict]:
    path = work / "points/sweep_checker.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_lost_scheduler_keeps_the_finished_points_and_only_new_points_train(tmp_path):
    """A scheduler killed mid-sweep: one line, the finished batches kept; the rerun trains
    only the rest; a fourth seed trains only its two points."""
    dask_dir = tmp_path / "dask"
    dask_dir.mkdir()
    sched = _dask("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                  "--scheduler-file", str(dask_dir / "s.json"), log=dask_dir / "s.log")
    try:
        deadline = time.monotonic() + 60
        while not (dask_dir / "s.json").exists():
            assert sched.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        address = json.loads((dask_dir / "s.json").read_text())["address"]
        worker = _dask("worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny",
                       "--no-dashboard", "--local-directory", str(dask_dir / "w"),
                       log=dask_dir / "w.log")
        # six batches of one point, each a million epochs (about a second): time to kill
        work = _stage_dir(tmp_path, scheduler=address, **{
            "sweep.batch": 1, "checker.train.max_epochs": 1_000_000,
            "checker.train.patience": 1_000_000})
        stage = subprocess.Popen(["python", str(ROOT / "stages/sweep_checker.py")], cwd=work,
                                 env=tool_env(NNSTUDIES_TRACKING="off"), text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 240
        while len(_points(work)) < 1:
            assert stage.poll() is None and time.monotonic() < deadline, stage.communicate()
            time.sleep(0.05)
        sched.kill()
        out, err = stage.communicate(timeout=120)
    finally:
        for proc in (sched, locals().get("worker")):
            if proc is not None:
                proc.kill()
                proc.wait(30)
    assert stage.returncode == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: the Dask scheduler went away after ")
    assert "the finished points are kept in the point cache" in err
    kept = len(_points(work))
    assert 1 <= kept < 6 and not (work / "metrics").exists()
    assert "Traceback" not in out + err and "distributed" not in out + err

    set_params(work, **{"sweep.scheduler": "local", "sweep.workers": 1})
    again = _stage(work)
    assert f"sweep_checker: {6 - kept} of 6 points to train ({kept} in the point cache)" \
        in again.stdout
    assert len(_points(work)) == 6
    set_params(work, **{"sweep.seeds": 4})
    more = _stage(work)
    assert "sweep_checker: 2 of 8 points to train (6 in the point cache)" in more.stdout
    assert sorted((p["point"]["hid"], p["point"]["seed"]) for p in _points(work)
                  if p["point"]["seed"] == 3) == [(2, 3), (3, 3)]
    assert json.loads((work / "metrics/sweep_checker.json").read_text())["sizes"]["hid_2"]["runs"] == 4


def test_a_seq_lane_is_the_same_alone_or_in_a_batch():
    """Bit for bit, success epoch included: the compiled kernel steps each lane on its own,
    and each lane is evaluated on its own tensors."""
    from nnstudies.sweep import seq

    p = {"sweep": {"seeds": 3, "threshold": 0.9, "seq": {t: {"hids": [2]} for t in seq.TASKS}},
         "seq": {"grammar": {"seed": 0, "validation_sequences": 20, "max_n": 4,
                             "reber_min_length": 0},
                 "train": {"optim": "adam", "lr": 0.01, "momentum": 0.0, "weight_decay": 1e-5,
                           "init": 0.1, "log_every": 100, "success_window": 0.3,
                           "cpu_path": "host"},
                 **{t: {"epochs": 600, "success": {"error": 0.2}} for t in seq.TASKS}}}
    points = [pt for pt in seq.points(p) if pt["task"] == "anbn"]
    share = cluster.sharer()
    (together,) = seq.batches(points, 3, share)
    batch = cluster.call(together.fn, together.point, *together.args)[0]
    assert [r["seed"] for r in batch] == [0, 1, 2]
    for pt, result in zip(points, batch):
        (job,) = seq.batches([pt], 1, share)
        assert cluster.call(job.fn, job.point, *job.args)[0] == [result]


def test_the_cache_key_follows_the_code_the_points_run(tmp_path):
    from nnstudies.sweep import cache, seq

    package = tmp_path / "nnstudies"
    for name in {*checker.CODE, "report/sweeps.py"}:
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_bytes((cache.PACKAGE / name).read_bytes())
    pins = tmp_path / "numerics.txt"
    pins.write_text("torch==2.14.1\n")
    before = cache.code_hash(checker.CODE, package, pins)
    (package / "report/sweeps.py").write_text("# the report changed\n")
    assert cache.code_hash(checker.CODE, package, pins) == before
    with open(package / "checker/compiled.py", "a") as f:
        f.write("\n# a comment is an edit: the point may not be what it was\n")
    edited = cache.code_hash(checker.CODE, package, pins)
    assert edited != before
    pins.write_text("torch==2.15.0\n")
    assert cache.code_hash(checker.CODE, package, pins) != edited
    point = checker.points(CHECK)[0]
    assert cache.key(point, before) != cache.key({**point, "lr": 0.02}, before)

    # CODE names every project module a batch's training imports (in a fresh interpreter).
    seq_point = {"task": "anbn", "hid": 2, "seed": 0, "epochs": 20, "success": {"error": 0.1},
                 "grammar": {"seed": 0, "validation_sequences": 5, "max_n": 3,
                             "reber_min_length": 0},
                 "optim": "adam", "lr": 0.01, "momentum": 0.0, "weight_decay": 0.0, "init": 0.1,
                 "log_every": 10, "success_window": 0.5, "cpu_path": "host"}
    calls = {checker: "checker.train_batch({**checker.points(CHECK)[0], 'seeds': [0]})",
             seq: "seq.train_batch({**POINT, 'seeds': [0]}, seq.make_sequences('anbn', "
                  "POINT['grammar'], 20))"}
    for study, call in calls.items():
        code = ("import sys, json; from nnstudies.sweep import checker, seq; "
                f"CHECK = json.loads({json.dumps(json.dumps(CHECK))}); "
                f"POINT = json.loads({json.dumps(json.dumps(seq_point))}); "
                "before = set(sys.modules); " + call + "; "
                "print(json.dumps(sorted(m for m in set(sys.modules) - before "
                "if m.startswith('nnstudies'))))")
        proc = subprocess.run(["python", "-c", code], capture_output=True, text=True,
                              env=tool_env(), timeout=300, check=True)
        loaded = {m.replace("nnstudies.", "").replace(".", "/") + ".py"
                  for m in json.loads(proc.stdout.splitlines()[-1])}
        loaded = {m for m in loaded if (cache.PACKAGE / m).is_file()}
        assert loaded and loaded <= set(study.CODE), loaded - set(study.CODE)


def test_check_recomputes_cached_points_and_names_a_stale_one(tmp_path, monkeypatch, capsys):
    from nnstudies.errors import UserError
    from nnstudies.sweep import __main__ as sweep_cli
    from nnstudies.sweep import cache

    work = _stage_dir(tmp_path, scheduler="local", **{"sweep.seeds": 2,
                                                      "sweep.checker.hids": [6]})
    monkeypatch.chdir(work)
    tiny = yaml.safe_load((work / "params.yaml").read_text())
    store = cache.PointCache("points/sweep_checker.jsonl", cache.code_hash(checker.CODE))
    for pt in checker.points(tiny):
        store.put([(pt, sweep_cli.alone(checker, pt))])
    monkeypatch.setattr(sweep_cli, "STUDIES", {"checker": sweep_cli.STUDIES["checker"]})
    assert sweep_cli.main(["check"]) == 0
    assert "sweep_checker hid=6 seed=1: recomputed, within tolerance" in capsys.readouterr().out
    lines = (work / "points/sweep_checker.jsonl").read_text().splitlines()
    entry = json.loads(lines[-1])
    entry["result"]["loss"] += 0.01  # as if trained by other code
    lines[-1] = json.dumps(entry, sort_keys=True)
    (work / "points/sweep_checker.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match="1 cached sweep point"):
        sweep_cli.main(["check"])
    assert "stale: loss" in capsys.readouterr().out


@pytest.mark.pipeline
def test_dvc_repro_then_exp_run_reruns_only_the_changed_sweep(repo, scheduler, workers, capsys):
    tiny = {"sweep.scheduler": scheduler, "sweep.checker.hids": [2], "sweep.seeds": 2,
            "sweep.batch": 2, "checker.train.max_epochs": 400, "checker.train.patience": 200,
            "seq.train.log_every": 100,
            # this module's shared workers ran host-path points already: a worker keeps the
            # CPU path of its first kernel (a strict point there fails, saying so)
            "checker.train.cpu_path": "host", "seq.train.cpu_path": "host"}
    for task in ("reber", "anbn", "anbncn"):
        tiny.update({f"sweep.seq.{task}.hids": [2], f"seq.{task}.epochs": 300})
    set_params(repo, **tiny)
    first = run(["dvc", "repro", "sweep_checker", "sweep_seq"], repo, timeout=600)
    assert (f"sweep_checker: 2 of 2 points to train (0 in the point cache), 1 batches on 2 "
            f"workers, 2 threads at {scheduler}") in first.stdout
    assert "sweep_checker: batch 1/1" in first.stdout and "sweep_seq: batch 3/3" in first.stdout
    metrics = json.loads((repo / "metrics/sweep_checker.json").read_text())
    assert list(metrics["sizes"]) == ["hid_2"] and metrics["sizes"]["hid_2"]["runs"] == 2
    paths = json.loads((repo / "results/sweep_checker.json").read_text())["cpu_paths"]
    assert len(paths) == 1 and paths[0]["threads"] == 1  # both workers: one machine, one path
    assert "variables" not in paths[0] or "ATEN_CPU_CAPABILITY" not in paths[0]["variables"]
    seq = json.loads((repo / "metrics/sweep_seq.json").read_text())
    assert [seq[t]["sizes"]["hid_2"]["runs"] for t in ("reber", "anbn", "anbncn")] == [2, 2, 2]
    for path in ("plots/sweep_checker/rate.csv", "plots/sweep_checker/rate.png",
                 "plots/sweep_seq/rate_anbncn.csv", "plots/sweep_seq/rate.png"):
        assert (repo / path).stat().st_size > 0, path
    cached = [json.loads(line) for line in (repo / "points/sweep_seq.jsonl").read_text().splitlines()]
    assert len([e for e in cached if e["point"]["epochs"] == 300]) == 6  # beside main's points

    # Any point reruns alone, here, with the same result as in the sweep, where it trained
    # as a lane beside another (`python -m nnstudies.sweep seq --task anbn --hid 2 --seed 1`).
    with open(repo / "plots/sweep_seq/points.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["task"] == "anbn" and r["seed"] == "1")
    capsys.readouterr()
    assert rerun_point(["seq", "--task", "anbn", "--hid", "2", "--seed", "1",
                        "--params", str(repo / "params.yaml")]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert {k: "" if v is None else str(v) for k, v in alone.items()} == row

    # MLflow: each batch is a child run of the sweep's run, with its params and metrics.
    from mlflow.tracking import MlflowClient

    from nnstudies import tracking

    assert tracking.flush(repo).failed == []
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name("checker")
    runs = client.search_runs([exp.experiment_id], "tags.`dvc.stage` = 'sweep_checker'")
    parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parent) == 1 and len(children) == 1
    assert children[0].data.tags["mlflow.parentRunId"] == parent[0].info.run_id
    assert children[0].data.params["seeds"] == "2" and children[0].data.params["hid"] == "2"
    assert children[0].data.metrics["seconds"] > 0
    assert parent[0].data.metrics["points_trained"] == 2

    # A changed sweep.checker reruns sweep_checker only, and trains only the new size's points;
    # the old ones come from the point cache, the same.
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny sweeps"], repo)
    again = run(["dvc", "exp", "run", "-S", "sweep.checker.hids=[2,3]", "sweep_checker", "sweep_seq"],
                repo, timeout=600)
    assert "Running stage 'sweep_checker'" in again.stdout
    assert "sweep_checker: 2 of 4 points to train (2 in the point cache)" in again.stdout
    assert "Running stage 'sweep_seq'" not in again.stdout
    rerun = json.loads((repo / "metrics/sweep_checker.json").read_text())
    assert list(rerun["sizes"]) == ["hid_2", "hid_3"]
    assert rerun["sizes"]["hid_2"] == metrics["sizes"]["hid_2"]
    # Another scheduler, the science unchanged: the stage reruns (a param changed) and trains nothing.
    local = run(["dvc", "exp", "run", "-S", "sweep.scheduler=local", "-S", "sweep.workers=1",
                 "sweep_checker"], repo, timeout=600)
    assert "sweep_checker: all 4 points are in the point cache" in local.stdout


def test_worker_killed_mid_sweep_its_points_rerun_on_the_other(scheduler, workers):
    from distributed import Client

    # batches of a couple of seconds each (the rule out of reach): time to kill one mid-batch
    slow = {**CHECK, "checker": {"train": {**CHECK["checker"]["train"], "max_epochs": 2_000_000,
                                           "patience": 10**7}}}
    jobs = check_jobs(slow)
    killed = {}
    with Client(scheduler, timeout=30) as client:
        pids = client.run(os.getpid)  # worker address -> pid
        assert len(pids) == 2

        def kill_one(i, outcome):
            if killed:
                return
            time.sleep(0.3)  # both workers are inside a batch now, not between two
            victim, keys = max(client.processing().items(), key=lambda item: len(item[1]))
            assert keys, "no worker was busy: nothing to kill mid-batch"
            os.kill(pids[victim], signal.SIGKILL)
            killed.update(worker=victim, jobs={int(k.rsplit("-", 1)[1]) for k in keys})

        outcomes = cluster.run(client, jobs, "t", on_result=kill_one)
    assert len(outcomes) == len(jobs) and all(o is not None for o in outcomes)
    survivor = {t["worker"] for _, t in outcomes} - {killed["worker"]}
    assert len(survivor) == 1
    rerun = [i for i in killed["jobs"] if outcomes[i][1]["worker"] in survivor]
    assert rerun, "no batch of the killed worker was rerun elsewhere"
    # Each batch is deterministic: the rerun one equals the same batch run alone here.
    for i in rerun:
        assert outcomes[i][0] == cluster.call(jobs[i].fn, jobs[i].point)[0]
    assert [r["hid"] for batch, _ in outcomes for r in batch] == [2] * 3 + [3] * 3
