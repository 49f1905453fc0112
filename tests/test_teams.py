"""Team use (docs/teams.md): one MLflow server on PostgreSQL with its artifacts in S3, and
experiments shared between machines through a git remote and a DVC S3 remote.

Three clones of one bare git remote play "host A", "host B" and "reviewer".  A and B each
run `dvc exp run -S hid=...` at the same time, logging to the shared server (two clones at
once on one PostgreSQL store), then `dvc exp push origin` and `dvc push`; the reviewer pulls
both experiments, compares them, applies one and pulls its outputs without retraining.

Every server is started here on 127.0.0.1 and stopped when the module ends, even on failure:
- PostgreSQL: a throwaway cluster (initdb, pg_ctl) in a temp dir, run as the `postgres`
  user when the tests run as root (PostgreSQL refuses root); skipped, with the reason, only
  where Debian's server binaries (`apt-get install postgresql`) are missing.
- S3: moto's server (the test extra), holding the DVC remote's bucket and MLflow's artifacts.
- `mlflow server --backend-store-uri postgresql://... --serve-artifacts --artifacts-destination
  s3://...`, two workers, MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false (no job runner).
- For the basic-auth app's permission grant, a small second server (sqlite) of its own.
Credentials never enter a committed file: the database password (random per run) reaches the
server as PGPASSWORD, the S3 keys as AWS_* (hosts) or `.dvc/config.local` (reviewer).
"""

from __future__ import annotations

import base64
import contextlib
import csv
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from conftest import copy_repo, set_params, tool_env
from test_remote import S3_ENV, commit, moto_server
from test_tracking_server import background, free_port, stop

pytestmark = pytest.mark.pipeline

FAST = {"checker.train.patience": 200, "checker.train.max_epochs": 3000}  # train_checker in seconds
HOSTS = {"host-a": ("a-hid4", 4), "host-b": ("b-hid8", 8)}  # clone -> (experiment, hid)
OUTPUTS = ["models/checker.pt", "metrics/train_checker.json", "results/train_checker.json",
           "plots/train_checker/history.csv", "logs/train_checker/train.log"]


def call(cmd: list[str], cwd: Path, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (f"{cmd} exited {proc.returncode}\n--- stdout\n"
                                  f"{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")
    return proc


def pg_bindir() -> Path | None:
    """Debian keeps PostgreSQL's server programs in /usr/lib/postgresql/<major>/bin."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    return Path(shutil.which("pg_ctl")).parent if shutil.which("pg_ctl") else None


@contextlib.contextmanager
def postgres():
    """A throwaway cluster on 127.0.0.1: database `mlflow` owned by the role `mlflow` with a
    random password (password logins over TCP only).  Yields (port, password)."""
    bindir = pg_bindir()
    if bindir is None or not (bindir / "initdb").exists():
        pytest.skip("PostgreSQL server binaries not found: apt-get install postgresql")
    user = None
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        try:
            user = pwd.getpwnam("postgres")  # Debian's package creates it
        except KeyError:
            pytest.skip("running as root, and no `postgres` user to run PostgreSQL as")
    home = Path(tempfile.mkdtemp(prefix="nnstudies-pg-"))  # not under pytest's root-only tmp
    as_postgres = ["runuser", "-u", "postgres", "--"] if user else []
    if user:
        os.chown(home, user.pw_uid, user.pw_gid)
    port, password, data = free_port(), secrets.token_hex(16), home / "data"

    def pg(program: str, *args, check: bool = True, **kw) -> subprocess.CompletedProcess:
        proc = subprocess.run([*as_postgres, str(bindir / program), *map(str, args)],
                              capture_output=True, text=True, timeout=120, **kw)
        if check and proc.returncode:
            log = (home / "log").read_text()[-2000:] if (home / "log").exists() else ""
            pytest.fail(f"{program} exited {proc.returncode}: {proc.stdout[-2000:]}"
                        f"{proc.stderr[-2000:]}{log}")
        return proc

    try:
        pg("initdb", "-D", data, "-U", "postgres", "--auth-local=trust",
           "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale")
        pg("pg_ctl", "-D", data, "-l", home / "log", "-w", "start",
           "-o", f"-p {port} -k {home} -c listen_addresses=127.0.0.1")
        pg("psql", "-h", home, "-p", port, "-U", "postgres", "-q", "-v", "ON_ERROR_STOP=1",
           input=f"CREATE ROLE mlflow LOGIN PASSWORD '{password}';\n"
                 "CREATE DATABASE mlflow OWNER mlflow;\n")
        yield port, password
    finally:
        if data.exists():
            pg("pg_ctl", "-D", data, "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(home, ignore_errors=True)


class Team:
    """The shared services: S3 (moto), PostgreSQL and the MLflow server over both."""

    def __init__(self, tmp: Path, stack: contextlib.ExitStack):
        self.tmp, self.stack = tmp, stack
        self.s3_url = stack.enter_context(moto_server(tmp))
        import boto3

        self.s3 = boto3.client("s3", endpoint_url=self.s3_url, aws_access_key_id="test",
                               aws_secret_access_key="test", region_name="us-east-1")
        for bucket in ("dvc", "mlflow"):
            self.s3.create_bucket(Bucket=bucket)
        pg_port, password = stack.enter_context(postgres())
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = ["mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
                    "--backend-store-uri", f"postgresql://mlflow@127.0.0.1:{pg_port}/mlflow",
                    "--serve-artifacts", "--artifacts-destination", "s3://mlflow/artifacts",
                    "--workers", "2"]
        # MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false: no job runner (docs/teams.md)
        self.env = tool_env(PGPASSWORD=password, MLFLOW_S3_ENDPOINT_URL=self.s3_url, **S3_ENV,
                            MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", OMP_NUM_THREADS=1)
        self.starts = 0
        self.start()

    def start(self) -> None:
        self.starts += 1
        self.server = self.stack.enter_context(background(
            self.cmd, self.tmp / f"server-{self.starts}.log", self.url + "/health", self.env,
            "mlflow server on PostgreSQL + S3"))

    def restart(self) -> None:
        stop(self.server)  # SIGKILL of its process group: a crash, then the admin restarts it
        self.start()

    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.url)

    def runs(self, query: str):
        client = self.client()
        experiment = client.get_experiment_by_name("checker")
        return client.search_runs([experiment.experiment_id], query) if experiment else []


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    with contextlib.ExitStack() as stack:  # closed in reverse: mlflow, PostgreSQL, S3
        yield Team(tmp_path_factory.mktemp("team"), stack)


def host_env(team: Team) -> dict:
    return tool_env(**S3_ENV, MLFLOW_TRACKING_URI=team.url, OMP_NUM_THREADS=1)


@pytest.fixture(scope="module")
def shared(team, tmp_path_factory) -> dict[str, Path]:
    """origin.git and three clones; A and B have run, pushed and logged their experiments."""
    tmp = tmp_path_factory.mktemp("clones")
    seed = copy_repo(tmp / "seed")
    set_params(seed, **FAST)
    # `dvc exp apply` checks out every output of the pipeline and fails on any that the cache
    # lacks, so a team pushes the outputs of every stage (docs/teams.md).  Here the pipeline is
    # cut to train_checker, what it needs and the report after it, not run yet.
    pipeline = yaml.safe_load((seed / "dvc.yaml").read_text())
    pipeline["stages"] = {k: pipeline["stages"][k]
                          for k in ("validate_params", "train_checker", "report")}
    (seed / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    (seed / "dvc.lock").unlink()
    env = host_env(team)
    for args in (["add", "-d", "store", "s3://dvc/store"],
                 ["modify", "store", "endpointurl", team.s3_url],
                 ["modify", "store", "region", "us-east-1"]):
        call(["dvc", "remote", *args], seed, env)
    commit(seed, "team setup: DVC remote on S3, fast train_checker")
    # The first baseline, before anyone can `dvc pull` (docs/teams.md): run, commit, push.  It
    # logs to the seed's own store (no MLFLOW_TRACKING_URI): the server holds the hosts' runs.
    call(["dvc", "repro"], seed, tool_env(**S3_ENV, OMP_NUM_THREADS=1))
    commit(seed, "baseline")
    call(["dvc", "push"], seed, env)
    call(["git", "clone", "-q", "--bare", str(seed), str(tmp / "origin.git")], tmp, env)
    clones = {name: tmp / name for name in (*HOSTS, "reviewer")}
    for clone in clones.values():
        call(["git", "clone", "-q", str(tmp / "origin.git"), str(clone)], tmp, env)
    for host in HOSTS:  # each host starts from the baseline's outputs
        call(["dvc", "pull"], clones[host], env)
        assert (clones[host] / "models/checker.pt").read_bytes() == (seed / "models/checker.pt").read_bytes()

    # Both hosts at once: two clones log to the PostgreSQL-backed server at the same time.
    running = {host: subprocess.Popen(
        ["dvc", "exp", "run", "-n", exp, "-S", f"hid={hid}", "train_checker"], cwd=clones[host],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for host, (exp, hid) in HOSTS.items()}
    for host, proc in running.items():
        out = proc.communicate(timeout=600)[0]
        assert proc.returncode == 0, f"{host}: {out[-3000:]}"

    def share(host: str) -> None:
        call(["dvc", "exp", "push", "origin", HOSTS[host][0]], clones[host], env)
        call(["dvc", "push", "train_checker"], clones[host], env)
        flushed = call(["nnstudies", "flush"], clones[host], env)  # waits for its sender
        assert flushed.stdout.strip().endswith(", 0 failed (kept in the outbox)"), flushed.stdout

    with ThreadPoolExecutor(len(HOSTS)) as pool:  # each host on its own
        list(pool.map(share, HOSTS))
    return clones


def test_reviewer_pulls_both_experiments_and_one_experiments_outputs_unretrained(team, shared):
    reviewer = shared["reviewer"]
    env = {k: v for k, v in tool_env(MLFLOW_TRACKING_URI=team.url).items()
           if not k.startswith("AWS_")}
    # The reviewer's S3 keys live in the git-ignored .dvc/config.local, not in the environment.
    for key in ("access_key_id", "secret_access_key"):
        call(["dvc", "remote", "modify", "--local", "store", key, "test"], reviewer, env)
    assert call(["git", "status", "--porcelain"], reviewer, env).stdout == ""
    assert "access_key" not in (reviewer / ".dvc" / "config").read_text()

    call(["dvc", "exp", "pull", "origin"], reviewer, env)
    shown = call(["dvc", "exp", "show", "--csv"], reviewer, env).stdout
    hids = {row["Experiment"]: row.get("params.yaml:hid", row.get("hid"))  # prefixed only if ambiguous
            for row in csv.DictReader(shown.splitlines())}
    assert {exp: hids.get(exp) for exp, _ in HOSTS.values()} == {
        exp: str(hid) for exp, hid in HOSTS.values()}, shown
    (a, hid_a), (b, hid_b) = HOSTS.values()
    diff = json.loads(call(["dvc", "params", "diff", a, b, "--json"], reviewer, env).stdout)
    hid = diff["params.yaml"]["hid"]
    assert (hid["old"], hid["new"]) == (hid_a, hid_b), diff
    metrics = json.loads(call(["dvc", "metrics", "diff", a, b, "--json"], reviewer, env).stdout)
    assert "loss" in metrics["metrics/train_checker.json"], metrics

    runs_before = len(team.runs("tags.`dvc.stage` = 'train_checker'"))
    call(["dvc", "exp", "apply", a], reviewer, env)
    call(["dvc", "pull", "train_checker"], reviewer, env)
    host_a = shared["host-a"]
    for name in OUTPUTS:
        assert (reviewer / name).read_bytes() == (host_a / name).read_bytes(), name
    assert "up to date" in call(["dvc", "status", "train_checker"], reviewer, env).stdout
    dry = call(["dvc", "repro", "--dry", "train_checker"], reviewer, env).stdout
    assert "Running stage" not in dry, dry
    assert len(team.runs("tags.`dvc.stage` = 'train_checker'")) == runs_before  # nothing retrained
    assert not (reviewer / ".nnstudies").exists()  # no stage ran here: no run was recorded
    # The experiment ran train_checker only: the report's deps (metrics/, results/, plots/) now
    # hold A's files, so `dvc status` names the report, and `dvc repro` rebuilds just that.
    status = call(["dvc", "status"], reviewer, env).stdout
    assert status.startswith("report:") and "train_checker:" not in status, status
    repro = call(["dvc", "repro"], reviewer, env).stdout
    assert "Running stage 'report'" in repro and "Running stage 'train_checker'" not in repro, repro
    assert "up to date" in call(["dvc", "status"], reviewer, env).stdout
    assert len(team.runs("tags.`dvc.stage` = 'train_checker'")) == runs_before


def session(leader: int) -> list[str]:
    """Command lines of the processes in the session that ``leader`` leads: background() starts
    each server in a session of its own, so these are the server and all it started."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):  # a process that ended while we looked
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)"
            if int(fields[3]) == leader:  # state ppid pgrp session
                found.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode())
    return found


def test_server_runs_no_job_runner(team):
    # With job execution on (MLflow 3.17's default), the server also starts
    # `mlflow.server.jobs._job_runner` and 7 `huey.bin.huey_consumer` processes (measured: 13
    # processes and 2.2 GB RSS with 2 workers, against 5 and 0.8 GB without).
    procs = session(team.server.pid)
    assert len(procs) >= 4, procs  # mlflow, uvicorn, its two workers: the scan sees the server
    runners = [c for c in procs if any(w in c for w in ("_job_runner", "_executor_runner", "huey"))]
    assert not runners, runners


def landed_whole(client, run, clone: Path) -> bool:
    """Every logged epoch of the stage's loss curve (history.csv), and its final value."""
    with open(clone / "plots" / "train_checker" / "history.csv") as f:
        epochs = {int(row["epoch"]) for row in csv.DictReader(f)}
    final = json.loads((clone / "metrics" / "train_checker.json").read_text())["epochs_run"]
    steps = {m.step for m in client.get_metric_history(run.info.run_id, "loss")}
    return len(epochs) > 1 and steps == epochs | {final}


def test_both_hosts_runs_land_whole_in_the_shared_server(team, shared, tmp_path):
    client = team.client()
    runs = {r.data.tags["dvc.exp_name"]: r for r in team.runs("tags.`dvc.stage` = 'train_checker'")}
    assert sorted(runs) == sorted(exp for exp, _ in HOSTS.values())
    for host, (exp, hid) in HOSTS.items():
        run, clone = runs[exp], shared[host]
        assert run.info.status == "FINISHED" and run.data.params["hid"] == str(hid)
        assert run.data.tags["host"] == socket.gethostname()
        assert run.data.tags["mlflow.runName"] == f"train_checker hid={hid}"  # DVC named it exp
        assert run.data.metrics["accuracy"] == 1.0
        assert landed_whole(client, run, clone)
        # The artifacts went through the server into S3, byte for byte.
        wanted = (clone / "plots" / "train_checker" / "history.csv").read_bytes()
        got = client.download_artifacts(run.info.run_id, "plots/train_checker/history.csv",
                                        str(tmp_path / exp))
        key = (f"artifacts/{run.info.experiment_id}/{run.info.run_id}/artifacts/plots/"
               "train_checker/history.csv")
        assert Path(got).read_bytes() == wanted
        assert team.s3.get_object(Bucket="mlflow", Key=key)["Body"].read() == wanted
        assert not (clone / "mlartifacts").exists() and not (clone / "mlflow.db").exists()
        log = clone / ".nnstudies" / "outbox" / "sender.log"
        assert "not sent" not in log.read_text() and "Traceback" not in log.read_text()
    a, b = (runs[exp].info for exp, _ in HOSTS.values())
    assert a.start_time < b.end_time and b.start_time < a.end_time  # the two stages overlapped


def test_compare_and_ui_read_the_shared_server(team, shared):
    reviewer, env = shared["reviewer"], tool_env(MLFLOW_TRACKING_URI=team.url)
    # Columns: stage, exp, run, started, accuracy, then the params that differ (hid).
    table = call(["nnstudies", "compare", "--stage", "train_checker", "--metrics", "accuracy"],
                 reviewer, env).stdout.splitlines()
    rows = {line.split("|")[2].strip(): line.split("|")[6].strip()
            for line in table[3:] if line.startswith("|")}  # then the notes on dvc.lock
    assert rows == {exp: str(hid) for exp, hid in HOSTS.values()}, table

    shown = call(["nnstudies", "ui"], reviewer, env, timeout=120).stdout.splitlines()
    experiment = team.client().get_experiment_by_name("checker")
    assert shown[0].startswith(f"MLflow UI: {team.url}  (the tracking server")
    runs_page = f"{team.url}/#/experiments/{experiment.experiment_id}/runs"
    view = "viewStateShareKey=nnstudies&compareRunsMode=TABLE&workflowType=machine_learning"
    assert f"  checker runs:   {runs_page}?{view}" in shown, shown
    assert "mlflow.sharedViewState.nnstudies" in experiment.tags  # the view, saved on the server


def test_server_restarted_mid_run_keeps_the_outputs_and_lands_the_run(team, tmp_path):
    repo = copy_repo(tmp_path / "repo")
    set_params(repo, **FAST)
    commit(repo, "fast train_checker")
    head = call(["git", "rev-parse", "HEAD"], repo, tool_env()).stdout.strip()
    env = {**host_env(team), "PYTHONUNBUFFERED": "1"}
    stage = subprocess.Popen(["dvc", "repro", "train_checker"], cwd=repo, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in stage.stdout:
        seen.append(line)
        if "Running stage 'train_checker'" in line:
            break
    assert stage.poll() is None, "".join(seen)
    team.restart()  # while the stage trains: its server dies and comes back
    out = "".join(seen) + stage.communicate(timeout=600)[0]
    assert stage.returncode == 0 and "Traceback" not in out, out
    for name in OUTPUTS:
        assert (repo / name).stat().st_size > 0, name
    # Its sender landed the run (the server was back in time) or kept it: flush lands it.
    flushed = call(["nnstudies", "flush"], repo, env)
    assert flushed.stdout.strip().endswith(", 0 failed (kept in the outbox)"), flushed.stdout
    (run,) = team.runs(f"tags.`mlflow.source.git.commit` = '{head}'")
    assert run.info.status == "FINISHED" and run.data.tags["dvc.stage"] == "train_checker"
    assert landed_whole(team.client(), run, repo)


def test_basic_auth_admin_grants_a_user_edit_on_an_experiment(tmp_path, monkeypatch):
    """docs/teams.md's permission grant on MLflow 3.17's basic-auth app: its own small server
    (sqlite for runs and users), one worker, on 127.0.0.1."""
    pytest.importorskip("flask_wtf", reason="the basic-auth app needs Flask-WTF: pip install 'mlflow[auth]'")
    config = tmp_path / "basic_auth.ini"
    config.write_text(f"[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{tmp_path}/auth.db\n"
                      "admin_username = admin\n"
                      "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    admin, bob = secrets.token_urlsafe(16), secrets.token_urlsafe(16)  # passwords: 12+ characters
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = ["mlflow", "server", "--app-name", "basic-auth", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", f"sqlite:///{tmp_path}/runs.db", "--workers", "1"]
    env = tool_env(MLFLOW_AUTH_CONFIG_PATH=config, MLFLOW_AUTH_ADMIN_PASSWORD=admin,
                   MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(16),
                   MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", OMP_NUM_THREADS=1)

    def rest(path: str, body: dict, user: str, password: str) -> tuple[int, dict | str]:
        login = base64.b64encode(f"{user}:{password}".encode()).decode()
        request = urllib.request.Request(url + path, json.dumps(body).encode(), method="POST", headers={
            "Content-Type": "application/json", "Authorization": f"Basic {login}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()[:300]

    with background(cmd, tmp_path / "server.log", url + "/health", env, "mlflow basic-auth server"):
        assert rest("/api/2.0/mlflow/users/create", {"username": "bob", "password": bob}, "admin", admin)[0] == 200
        status, created = rest("/api/2.0/mlflow/experiments/create", {"name": "checker"}, "admin", admin)
        assert status == 200, created
        experiment = created["experiment_id"]
        # Bob logs through MLflow's client with the documented variables; READ is not enough.
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "bob")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", bob)
        with pytest.raises(MlflowException, match="Permission denied"):
            MlflowClient(url).create_run(experiment)
        grant = {"username": "bob", "resource_type": "experiment", "resource_id": experiment,
                 "permission": "EDIT"}
        assert rest("/api/3.0/mlflow/users/permissions/grant", grant, "bob", bob)[0] == 403  # admins only
        # MLflow 2.x's per-experiment endpoint is gone in 3.17.
        old = {"experiment_id": experiment, "username": "bob", "permission": "EDIT"}
        assert rest("/api/2.0/mlflow/experiments/permissions/create", old, "admin", admin)[0] == 404
        assert rest("/api/3.0/mlflow/users/permissions/grant", grant, "admin", admin) == (200, {})
        run = MlflowClient(url).create_run(experiment)
        assert run.info.experiment_id == experiment
