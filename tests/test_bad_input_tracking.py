"""Bad input around tracking (issue 26's battery): an edited outbox record cannot upload a file
from outside its folder nor pick its store; records that cannot be sent can be dropped;
`nnstudies compare` / `ui` on a damaged mlflow.db or a server that answers /health but not
MLflow's API fail in one line, fast.  Real sqlite files, real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import http.server
import json
import sqlite3
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import landed_run, run
from nnstudies import tracking

ON = {"tracking": {"enabled": True, "required": False}}
SECRET = "root:x:0:0:a system file's content\n"


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A repo root inside tmp_path (beside it: a 'system' file no record may upload); tracking
    on, asynchronous, without the detached sender (each test flushes in-process)."""
    repo = tmp_path / "repo"
    (repo / ".dvc").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text(SECRET)
    monkeypatch.setenv("DVC_ROOT", str(repo))
    for name in ("MLFLOW_TRACKING_URI", "NNSTUDIES_TRACKING", "NNSTUDIES_TRACKING_SYNC",
                 "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tracking, "_start_sender", lambda root: None)
    return repo


def record(root: Path, stage: str = "s") -> Path:
    """A real record in the outbox, with one artifact (a copy of results/<stage>.json)."""
    result = root / "results" / f"{stage}.json"
    result.parent.mkdir(exist_ok=True)
    result.write_text('{"accuracy": 1.0}\n')
    with tracking.start("check", stage, ON) as r:
        r.log_metrics({"accuracy": 1.0})
        r.log_artifact(result, "results")
    return tracking.outbox(root) / r.record_id


def edit(path: Path, **changes) -> None:
    rec = json.loads((path / "record.json").read_text())
    (path / "record.json").write_text(json.dumps({**rec, **changes}))


def uploaded(root: Path) -> list[str]:
    """Every file's content in the store's artifact folder."""
    return [p.read_text() for p in (root / "mlartifacts").rglob("*") if p.is_file()]


def runs_of(root: Path, record_id: str) -> list:
    if not (root / "mlflow.db").exists():
        return []
    with sqlite3.connect(root / "mlflow.db") as db:
        return db.execute("SELECT run_uuid FROM tags WHERE key = ? AND value = ?",
                          (tracking.RECORD_TAG, record_id)).fetchall()


def test_an_edited_record_cannot_upload_a_file_from_outside_its_folder(root, tmp_path):
    secret = tmp_path / "secret.txt"
    good = record(root, "good")
    climbing, absolute, linked, folder = (record(root, s) for s in ("up", "abs", "link", "dir"))
    edit(climbing, artifacts=[["artifacts/0/../../../../../../secret.txt", "results"]])
    assert (climbing / "artifacts/0/../../../../../../secret.txt").resolve() == secret
    edit(absolute, artifacts=[[str(secret), "results"]])
    (linked / "artifacts/0/link.json").unlink()  # the copy replaced by a link out
    (linked / "artifacts/0/link.json").symlink_to(secret)
    edit(folder, artifacts=[["artifacts/0/dir.json", "../../../escaped"]])

    done = tracking.flush(root)
    assert [rid for rid, _ in done.landed] == [good.name]  # the untouched record lands
    assert uploaded(root) == ['{"accuracy": 1.0}\n']
    why = dict(done.failed)
    assert sorted(why) == sorted(p.name for p in (climbing, absolute, linked, folder))
    for path in (climbing, absolute, linked):
        assert why[path.name].startswith("artifact '") and "refused" in why[path.name]
        assert f"is not a file inside the record's folder {path}" in why[path.name]
    assert why[folder.name].startswith("artifact folder '../../../escaped' of 'artifacts/0/")
    for path in (climbing, absolute, linked, folder):  # nothing of them was sent, all kept
        assert runs_of(root, path.name) == [] and path.is_dir()
        assert (path / "error.txt").read_text().strip() == why[path.name]
    assert not list(tmp_path.rglob("escaped"))

    dropped = tracking.flush(root, drop=True)
    assert sorted(rid for rid, _ in dropped.dropped) == sorted(why) and not dropped.failed
    assert tracking.pending(root) == [] and uploaded(root) == ['{"accuracy": 1.0}\n']


def test_a_record_goes_only_to_a_store_the_user_names(root, tmp_path, monkeypatch):
    other_db = tmp_path / "elsewhere" / "other.db"
    (tmp_path / "elsewhere").mkdir()
    uris = {"sqlite": f"sqlite:///{other_db}", "file": f"file://{tmp_path}/store",
            "userinfo": "http://user:<pw>@127.0.0.1:9/", "query": "http://127.0.0.1:9/?x=1",
            "port": "http://127.0.0.1:notaport/"}
    records = {name: record(root, name) for name in uris}
    for name, uri in uris.items():
        edit(records[name], uri=uri)
    done = tracking.flush(root)
    assert done.landed == [] and sorted(rid for rid, _ in done.failed) == sorted(
        p.name for p in records.values())
    for name, uri in uris.items():
        assert dict(done.failed)[records[name].name] == (
            f"recorded for the MLflow store {uri!r}, which is neither this repo's mlflow.db nor "
            "an http(s) tracking server (host[:port][/path], no user, query or fragment): "
            "refused, set MLFLOW_TRACKING_URI to it to send it there")
    assert list((tmp_path / "elsewhere").iterdir()) == []  # no database, no lock file made
    assert not (root / "mlflow.db").exists() and not (tmp_path / "store").exists()

    # A server record while MLFLOW_TRACKING_URI names another store: refused, says which.
    (server,) = [record(root, "server")]
    edit(server, uri="http://127.0.0.1:9/")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{other_db}")
    assert dict(tracking.flush(root).failed)[server.name] == (
        f"recorded for the MLflow store http://127.0.0.1:9/, but MLFLOW_TRACKING_URI is now "
        f"sqlite:///{other_db}: set MLFLOW_TRACKING_URI=http://127.0.0.1:9/ to send it there")
    # The variable set to it: that store is named by the user now, and is tried.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9/")
    assert "is not reachable" in dict(tracking.flush(root).failed)[server.name]
    # This repo's own store is always allowed, whatever the variable says.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{other_db}")
    own = record(root, "own")  # recorded for other.db: rewrite it to this repo's store
    edit(own, uri=f"sqlite:///{root / 'mlflow.db'}")
    assert own.name in dict(tracking.flush(root).landed)


def test_runs_for_a_dead_server_can_be_dropped_and_every_message_says_how(root, monkeypatch,
                                                                          capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9/")  # mistyped: nothing there
    dead = record(root, "dead")
    assert [rid for rid, _ in tracking.flush(root).failed] == [dead.name]
    record(root, "next")  # a later stage warns, and says how to drop them
    err = capsys.readouterr().err
    assert err.startswith(f"warning: 1 MLflow run(s) wait in {tracking.outbox(root)} (last error: ")
    assert err.rstrip().endswith(f"; {tracking.DROP_HINT}") and err.count("\n") == 1

    env = {"DVC_ROOT": root, "MLFLOW_TRACKING_URI": "http://127.0.0.1:9/"}
    kept = run([sys.executable, "-m", "nnstudies", "flush"], root, check=False, timeout=120, **env)
    assert kept.returncode == 1 and "Traceback" not in kept.stderr
    assert kept.stdout.splitlines()[-1] == "0 run(s) landed in MLflow, 2 failed (kept in the outbox)"
    assert kept.stderr == (f"hint: they stay in {tracking.outbox(root)} and are retried after "
                           f"each stage; {tracking.DROP_HINT}\n")
    names = [p.name for p in tracking.pending(root)]
    dropped = run([sys.executable, "-m", "nnstudies", "flush", "--drop"], root, check=False,
                  timeout=120, **env)
    assert dropped.returncode == 0 and dropped.stderr == "", dropped.stderr
    lines = dropped.stdout.splitlines()
    assert [line.split(" ")[1] for line in lines[:-1]] == names
    assert all(line.startswith("dropped: ") and "(not sent: MLflow tracking server "
               "http://127.0.0.1:9/ is not reachable (" in line for line in lines[:-1])
    assert lines[-1] == "0 run(s) landed in MLflow, 0 failed (kept in the outbox), 2 dropped"
    assert tracking.pending(root) == []
    record(root, "after")  # nothing waits with an error any more: no warning
    assert capsys.readouterr().err == ""


# -- readers: a damaged store, a server that is not MLflow ---------------------------------

def nnstudies(root: Path, *args: str, **env):
    started = time.monotonic()
    proc = run([sys.executable, "-m", "nnstudies", *args], root, check=False, timeout=120,
               DVC_ROOT=root, **env)
    return proc, time.monotonic() - started


def one_line_error(proc, starts: str) -> None:
    assert proc.returncode == 2 and proc.stdout == "", (proc.stdout, proc.stderr)
    assert proc.stderr.startswith(f"error: {starts}") and proc.stderr.count("\n") == 1, proc.stderr


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """A real MLflow store whose experiments table's page is overwritten: sqlite still lists
    its tables, reading that one fails ('database disk image is malformed')."""
    repo = tmp_path_factory.mktemp("damaged")
    (repo / ".dvc").mkdir()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DVC_ROOT", str(repo))
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        env.delenv("NNSTUDIES_TRACKING", raising=False)
        env.setattr(tracking, "_start_sender", lambda root: None)
        with tracking.start("kmnist", "train_kmnist@lin", ON) as r:
            r.log_metrics({"test_accuracy": 0.7})
        assert tracking.flush(repo).failed == []
    db = repo / "mlflow.db"
    with sqlite3.connect(db) as con:
        size = con.execute("PRAGMA page_size").fetchone()[0]
        (page,) = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'experiments'").fetchone()
    data = bytearray(db.read_bytes())
    data[(page - 1) * size:page * size] = bytes(range(256)) * (size // 256)
    db.write_bytes(bytes(data))
    return repo


@pytest.mark.parametrize("kind", ["junk", "foreign", "damaged"])
def test_compare_and_ui_on_a_broken_mlflow_db_say_so_in_one_line(kind, tmp_path, damaged):
    root = damaged
    if kind != "damaged":
        root = tmp_path
        (root / ".dvc").mkdir()
        db = root / "mlflow.db"
        if kind == "junk":
            db.write_bytes(b"SQLite format 3\0" + bytes(range(256)) * 40)
        else:
            with sqlite3.connect(db) as con:
                con.execute("CREATE TABLE songs (title TEXT)")
    starts = {"junk": f"MLflow store {root / 'mlflow.db'} is not usable: not a sqlite database, "
                      "or a damaged one (file is not a database)",
              "foreign": f"MLflow store {root / 'mlflow.db'} is not usable: a sqlite database, "
                         "but not an MLflow store",
              "damaged": f"MLflow store sqlite:///{root / 'mlflow.db'} could not be read ("}[kind]
    for command in (["compare"], ["ui", "--port", str(free_port())]):
        proc, took = nnstudies(root, *command)
        one_line_error(proc, starts)
        assert took < 30 and (kind != "damaged" or "malformed" in proc.stderr), proc.stderr


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def health_only(api_status: int | None):
    """An HTTP server on 127.0.0.1 that answers GET /health with OK, and anything else with
    ``api_status`` (None: it never answers)."""
    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/health" and api_status is None:
                release.wait(30)
                return
            status, body = (200, b"OK") if self.path == "/health" else (api_status, b"<html>no</html>")
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_compare_and_ui_against_a_server_that_answers_health_but_not_the_api(tmp_path):
    (tmp_path / ".dvc").mkdir()
    with health_only(404) as url:
        for command in (["compare"], ["ui"]):
            proc, took = nnstudies(tmp_path, *command, MLFLOW_TRACKING_URI=url)
            one_line_error(proc, f"{url} answers /health but not MLflow's REST API (GET "
                                 "/api/2.0/mlflow/experiments/search: HTTP 404 Not Found): it is "
                                 "not an MLflow tracking server, or not a working one")
            assert took < 20, took


@pytest.mark.parametrize("status", [500, None, 200])
def test_the_server_probe_is_bounded_and_wants_mlflows_api(status, monkeypatch):
    monkeypatch.setattr(tracking, "PROBE_TIMEOUT", 1)
    with health_only(status) as url:
        started = time.monotonic()
        problem = tracking.store_problem(url)
        assert time.monotonic() - started < 5
    why = {500: "HTTP 500 Internal Server Error", None: "timed out",
           200: "the answer is not JSON"}[status]
    assert problem.startswith(f"{url} answers /health but not MLflow's REST API (GET ")
    assert why in problem, problem


def test_a_real_mlflow_store_passes_the_readers_checks(damaged, tmp_path):
    """The control: the same checks accept a working store (the one `damaged` is made from)."""
    (tmp_path / ".dvc").mkdir()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DVC_ROOT", str(tmp_path))
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        env.setattr(tracking, "_start_sender", lambda root: None)
        with tracking.start("kmnist", "train_kmnist@lin", ON) as r:
            r.log_metrics({"test_accuracy": 0.7})
        proc, _ = nnstudies(tmp_path, "compare")
    assert proc.returncode == 0, proc.stderr
    from mlflow.tracking import MlflowClient

    landed_run(MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"), r.record_id)
