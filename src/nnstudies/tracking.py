"""MLflow run log for every stage run, sent off the stage's critical path through an outbox.

- Default store: ``sqlite:///<repo root>/mlflow.db`` with artifacts in ``<repo root>/mlartifacts``.
  The root comes from ``DVC_ROOT`` when DVC runs the stage; a queued experiment runs in a
  temp copy under ``<main repo>/.dvc/tmp/exps/``, so the main repo above it is used instead.
- ``MLFLOW_TRACKING_URI`` overrides the store (e.g. a tracking server).
- One MLflow experiment per study; tags ``dvc.stage``, ``dvc.exp_name``, ``dvc.baseline_rev``,
  the git commit, ``host`` and, from the stage skeleton, ``host.cpu``, ``host.name`` and
  ``host.cores`` (the machine that ran the stage: never in a DVC-hashed output).  The
  experiment is the study's name (``kmnist``, ``checker``, ``seq``); the report stage's runs go to
  ``report-builds``, described (like each study) in the experiment's description; a run's
  name says what differs: the stage and the params that differ from the experiment's
  baseline (or HEAD's) params.yaml, ``train_checker hid=4``, whatever DVC named the experiment.
- ``NNSTUDIES_TRACKING=off`` (unit tests) or ``tracking.enabled: false`` switches logging off.

The outbox: importing mlflow and opening its store costs a stage seconds, so when a tracking
block ends the Run writes its complete record (params, buffered metrics, tags, times, status,
the store's URI, copies of its artifact files and the weights of the nets it trained, which
the sender logs as MLflow models: nnstudies.served) atomically into
``<repo root>/.nnstudies/outbox/<end time>-<id>/``, starts a detached sender
(``python -m nnstudies.tracking flush``) and returns without importing mlflow.  A sender
holds the store's lock, sends every pending record in order and deletes each only after it
landed; a record that fails stays for the next flush.  Each MLflow run is tagged with its
record id, so a record resent after a sender died half-way lands exactly once.  Readers
(``nnstudies compare``, ``nnstudies ui``, ``nnstudies flush``) call ``flush`` first.  A record
is a file anyone who can write the repo can edit: a sender uploads only the artifact copies
inside the record's own folder and sends only to a store the user names (``refused_store``).
``nnstudies flush --drop`` deletes the records that still cannot be sent (a dead or mistyped
server), naming each.

A stage that trains longer than a few seconds also gets a live run while it trains
(nnstudies.live), which its record's sender adopts.

``tracking.required: true`` (or ``NNSTUDIES_TRACKING_SYNC=1``) sends synchronously at the end
instead; required also checks the store up front, and a failure then fails the stage.
Otherwise tracking never costs the DVC outputs: a store that cannot be reached only delays
the run's arrival.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from nnstudies import gitrepo, live
from nnstudies.errors import UserError
from nnstudies.retry import retry

# The experiment of a run is its study's name, as the stage passes it (stage.main): nothing
# maps stages to experiments, so a new study's runs land in their own experiment and readers
# (`nnstudies compare`, the UI views) find runs by their `dvc.stage` tag in every experiment.
REPORT_EXPERIMENT = "report-builds"  # the report stage's runs: not a study
RENAMED = {  # old experiment name -> new one (migrate_store keeps their runs)
    "report": REPORT_EXPERIMENT, "kmnist-classifiers": "kmnist", "checkerboard-mlp": "checker",
    "recurrent-dynamics": "seq"}
NOTES = {  # the description (mlflow.note.content) the UI shows above each experiment's runs
    "kmnist": "Study 1: KMNIST classifiers (`train_kmnist@lin`, `@full`, `@conv`; "
              "`fetch_kmnist` logs the data it fetched; `compare_kmnist`: the three nets on the "
              "same test images, with intervals and McNemar tests; `seeds_kmnist`: every net "
              "over seeds, one child run per net and seed trained).",
    "checker": "Study 2: the 9-point checkerboard MLP (`train_checker`: the trained net, `hid` "
               "units; `hand_checker`: the hand-designed step net; `sweep_checker`: success "
               "rate per size).",
    "seq": "Study 3: hidden-unit dynamics of recurrent nets (`make_seq@<task>`, "
           "`train_seq@<task>`; `plot_seq@<task>`: the measured dynamics; `train_beyond@<net>`: "
           "LSTMs and a wider-range SRN on the counter languages; `beyond`: counting past the "
           "trained n; `sweep_seq`).",
    REPORT_EXPERIMENT: "Not a study: one run per build of the report by the `report` stage, "
                       "with reports/report.md and report.html as artifacts. The studies are "
                       "kmnist, checker and seq.",
}
NOTE_TAIL = (" A run is named after its stage and the params that differ from the committed "
             "params.yaml (the DVC experiment's name is its tag dvc.exp_name). `nnstudies ui` "
             "prints links to views of the runs (key params and metrics) and of their per-epoch "
             "curves.")
# What the MLflow UI calls an experiment's kind.  MLflow 3.x reads it from the experiment tag
# `mlflow.experimentKind` (mlflow/server/js/src/experiment-tracking/utils/ExperimentKindUtils.ts,
# EXPERIMENT_KIND_TAG_KEY) and opens an experiment on its Runs tab for every kind but
# "genai_development" (.../components/experiment-page/hooks/useNavigateToExperimentPageTab.tsx);
# "custom_model_development" is the value the UI itself writes for a "Machine learning"
# experiment (getExperimentKindForWorkflowType; the enum is in the bundle's main.*.js).  MLflow
# 3.17's UI has workflow-based navigation on (shouldEnableWorkflowBasedNavigation() is true in
# its bundle): there the browser-wide "GenAI | Model training" switch (URL parameter
# `workflowType`, else localStorage, default GenAI) decides instead of the tag, so the links
# that `nnstudies ui` prints carry `workflowType=machine_learning` (docs/compare.md).
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
RECORD_TAG = "nnstudies.record"
PARENT_TAG = "nnstudies.parent_record"  # on a child run: its parent's record id
_SENDERS: list[subprocess.Popen] = []  # held so that no "still running" warning fires on exit


class TrackingError(UserError):
    """The tracking store was required but could not be used."""


def repo_root(start: str | Path | None = None) -> Path:
    """The main repository root: DVC_ROOT (mapped out of queue temp copies) or the cwd's repo."""
    start = Path(start or os.environ.get("DVC_ROOT") or Path.cwd()).resolve()
    parts = start.parts
    for i in range(len(parts) - 3, 0, -1):  # <main>/.dvc/tmp/exps/<tmpdir>/...
        if parts[i:i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    for candidate in (start, *start.parents):
        if (candidate / ".dvc").is_dir():
            return candidate
    return start


def tracking_uri(root: Path | None = None) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(root or repo_root()) / 'mlflow.db'}"


def outbox(root: Path) -> Path:
    return root / ".nnstudies" / "outbox"


def _switched_on(name: str, default: str) -> bool:
    return os.environ.get(name, default).lower() not in ("off", "0", "false", "no", "")


def _baseline_params(root: Path) -> dict:
    """The params a run is compared with: its DVC experiment's baseline commit (a queued
    experiment may run after HEAD moved on), else HEAD's params.yaml; flattened."""
    from nnstudies.params import flatten
    from nnstudies.yamlfile import parse

    baseline = os.environ.get("DVC_EXP_BASELINE_REV", "")
    if not baseline:
        return gitrepo.committed_params(root)
    text = gitrepo.output(root, "show", f"{baseline}:params.yaml")
    try:
        data = parse(text, f"{baseline[:8]}:params.yaml") if text else None
    except UserError:
        return {}
    return flatten(data) if isinstance(data, dict) else {}


def _run_name(stage: str, exp_name: str, params: dict, root: Path) -> str:
    """What tells this run from the stage's others: ``stage key=value ...`` with the params
    that differ from the baseline's params.yaml (``train_checker hid=4``), each key by the
    shortest dotted suffix that names it among the stage's params (``lr=0.05``), whatever
    name DVC gave the experiment (that stays in the tag dvc.exp_name).  When no param
    differs: ``stage (exp name)`` for a DVC experiment (code changed), else ``stage``."""
    committed = _baseline_params(root)

    def short(key: str) -> str:
        parts = key.split(".")
        return next((s for s in (".".join(parts[i:]) for i in range(len(parts) - 1, -1, -1))
                     if not any(k != key and (k == s or k.endswith("." + s)) for k in params)), key)

    changed = [f"{short(k)}={v}" for k, v in params.items() if k in committed and committed[k] != v]
    if changed:
        return " ".join([stage, *changed[:3], *(["..."] if len(changed) > 3 else [])])
    return f"{stage} ({exp_name})" if exp_name else stage


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` store URI (None for any other store)."""
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def _retry(call, *args, **kwargs):
    """sqlite says 'database is locked' when two workers write at once: wait and retry.
    (mlflow wraps sqlite's errors in its own exception types: the message tells.)"""
    return retry(call, *args, attempts=8, delay=0.2, when=lambda exc: "locked" in str(exc).lower(),
                 **kwargs)


def lock_path(uri: str, root: Path) -> Path:
    """The file whose OS lock makes one writer at a time create runs in a store."""
    database = sqlite_path(uri)
    path = database.with_name(database.name + ".lock") if database else root / ".nnstudies" / "send.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _store_lock(uri: str, root: Path):
    """One sender at a time per store.  For sqlite an OS file lock beside the database (two
    workers creating one store at once race on its schema migration: 'duplicate column
    name'); for any other store a lock beside the outbox, so that two senders of this repo
    never send one record twice."""
    import fcntl

    with open(lock_path(uri, root), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# -- checking a store without mlflow ----------------------------------------------------

PROBE_TIMEOUT = 5  # seconds a server has to answer one probe: a dead one costs seconds


def store_problem(uri: str, write: bool = True) -> str | None:
    """Why the store cannot take a run now (or, ``write=False``, be read), or None.  Servers
    must answer /health and MLflow's REST API; a sqlite file must be an MLflow store (or empty,
    or creatable); other stores are asked through mlflow."""
    if uri.startswith(("http://", "https://")):
        return _server_problem(uri)
    if sqlite_path(uri):
        return _sqlite_problem(sqlite_path(uri), write)
    try:
        _client(uri).search_experiments(max_results=1)
    except Exception as err:  # noqa: BLE001 - whatever the store says, it is not usable
        return f"MLflow store {uri} is not usable ({_one_line(err)})"
    return None


def _server_problem(uri: str) -> str | None:
    """/health alone is not enough: any web server (or a proxy in front of a dead MLflow) may
    answer it, and mlflow's client then retries each call for many seconds before a
    traceback.  So ask one cheap API call too: it must answer JSON within the probe's time.
    401/403 is an MLflow behind authentication, which the client's credentials handle."""
    import urllib.error
    import urllib.request

    base = uri.rstrip("/")
    try:
        urllib.request.urlopen(base + "/health", timeout=PROBE_TIMEOUT).read()
    except (OSError, ValueError) as err:
        return f"MLflow tracking server {uri} is not reachable ({err})"
    api = "/api/2.0/mlflow/experiments/search?max_results=1"
    try:
        with urllib.request.urlopen(base + api, timeout=PROBE_TIMEOUT) as answer:
            json.loads(answer.read(1 << 20))
        return None
    except urllib.error.HTTPError as err:
        if err.code in (401, 403):
            return None
        why = f"HTTP {err.code} {err.reason}"
    except (OSError, ValueError) as err:  # no answer in time, closed, or not JSON
        why = _one_line(err) if not isinstance(err, ValueError) else "the answer is not JSON"
    return (f"{uri} answers /health but not MLflow's REST API (GET {api.split('?')[0]}: {why}): "
            "it is not an MLflow tracking server, or not a working one")


def _sqlite_problem(path: Path, write: bool = True) -> str | None:
    import sqlite3

    where = f"MLflow store {path}"
    if not path.exists():
        if path.parent.is_dir() and os.access(path.parent, os.W_OK):
            return None  # MLflow creates it
        return f"{where} cannot be created: {path.parent} is not a writable folder"
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as err:
        return f"{where} is not usable: not a sqlite database, or a damaged one ({err})"
    if tables and "experiments" not in tables:
        return f"{where} is not usable: a sqlite database, but not an MLflow store"
    if write and not os.access(path, os.W_OK):
        return f"{where} is not usable: the file is read-only"
    return None


# -- the stage's side: a Run that writes a record ----------------------------------------

class Run:
    """One MLflow run for one stage execution; use as a context manager.

    ``log_metrics(values, step=None)`` buffers; ``log_artifact(path, subdir)`` queues a file
    (copied when the block ends); ``log_model(served, step)`` queues a trained net
    (:class:`nnstudies.served.Served`), which the sender logs as an MLflow model.  When the
    block ends (status FINISHED, FAILED on an exception, KILLED on Ctrl-C) the run is
    recorded in the outbox and sent in the background; ``record_id`` names it (MLflow tag
    ``nnstudies.record``).  ``run_id`` is set only when the run was sent synchronously
    (required, or NNSTUDIES_TRACKING_SYNC=1).
    """

    def __init__(self, study: str, stage: str, params: dict, *, enabled: bool = True,
                 required: bool = False):
        self.study, self.stage, self.params = study, stage, params
        self.required = required
        self.enabled = enabled and _switched_on("NNSTUDIES_TRACKING", "on")
        self.run_id: str | None = None
        self.record_id: str | None = None
        self._started_ms = int(time.time() * 1000)
        self._metrics: list[tuple[str, float, int, int]] = []
        self._artifacts: list[tuple[Path, str | None]] = []
        self._tags: dict[str, str] = {}
        self._children: list[dict] = []
        self._feed: live.Feed | None = None  # the live run's feed (nnstudies.live), if any
        self._live_tried = False
        self._models: list[tuple[object, int]] = []

    # -- what a stage calls -------------------------------------------------
    def log_metrics(self, values: dict, step: int | None = None) -> None:
        now = int(time.time() * 1000)
        new = [(key, float(value), now, int(step or 0)) for key, value in values.items()]
        self._metrics += new
        if self._feed is not None:
            self._feed.append(new)
        elif not self._live_tried and self.enabled and live.delay() is not None \
                and now - self._started_ms >= 1000 * live.delay():
            self._start_feed()

    def log_params(self, values: dict) -> None:
        """Params known only at run time (e.g. data checksums), logged beside params.yaml's."""
        self.params = {**self.params, **values}

    def log_artifact(self, path: str | Path, subdir: str | None = None) -> None:
        self._artifacts.append((Path(path), subdir))

    def log_model(self, served, step: int | None = None) -> None:
        """A trained net (:class:`nnstudies.served.Served`); ``step``: the step of the run's
        metrics that MLflow links to the model (the final ones)."""
        self._models.append((served, int(step or 0)))

    def set_tags(self, tags: dict) -> None:
        self._tags.update({k: str(v) for k, v in tags.items()})

    def log_child(self, name: str, params: dict, metrics: dict, tags: dict | None = None,
                  start_ms: int | None = None, end_ms: int | None = None) -> None:
        """A nested run (e.g. one point of a sweep), MLflow tag ``mlflow.parentRunId`` = this
        run.  It travels in this run's record, because its parent's run id exists only once
        the record is sent; the sender creates it after the parent, FINISHED."""
        from nnstudies.params import flatten

        now = int(time.time() * 1000)
        self._children.append({
            "name": name, "params": {k: str(v)[:6000] for k, v in flatten(params).items()},
            "metrics": {k: float(v) for k, v in metrics.items()},
            "tags": {k: str(v) for k, v in (tags or {}).items()},
            "start_ms": start_ms or now, "end_ms": end_ms or now})

    # -- lifecycle ----------------------------------------------------------
    def __enter__(self) -> Run:
        # The run is created when it is sent, but it keeps the real start and end times, so
        # the run's duration in MLflow is the stage's wall time.
        self._started_ms = int(time.time() * 1000)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        # Bad input (a UserError) stops a stage before it produced anything worth a run:
        # it writes nothing, not even a FAILED run in the store.
        if not self.enabled or (exc_type and issubclass(exc_type, UserError)):
            if self._feed is not None:
                self._feed.end("discard")
            return False
        status = "FINISHED" if exc_type is None else "FAILED"
        if exc_type is KeyboardInterrupt:
            status = "KILLED"
        root, uri = repo_root(), tracking_uri()
        try:
            draft = self._write_record(status, root, uri)
        except OSError as err:
            if self._feed is not None:
                self._feed.end("discard")
            return self._failed(uri, err, exc_type, kept=False)
        if self._feed is not None:
            self._feed.end("record")
        if self.required or _switched_on("NNSTUDIES_TRACKING_SYNC", "off"):
            self._send_now(draft, root, uri, exc_type)
        else:
            _publish(draft)
            _warn_if_stuck(root)
            _start_sender(root)
        return False

    def check_reachable(self) -> None:
        """Fail fast, before any work, when tracking is required and the store is unusable."""
        if self.enabled and self.required:
            problem = store_problem(tracking_uri())
            if problem:
                raise TrackingError(f"{problem}; start it, fix or unset MLFLOW_TRACKING_URI, or "
                                    "set tracking.required: false")

    def _write_record(self, status: str, root: Path, uri: str) -> Path:
        """The complete run, with copies of its artifacts (the next stage may overwrite the
        originals), in a draft folder that no sender looks at."""
        from nnstudies.params import flatten

        ended_ms = int(time.time() * 1000)
        self.record_id = (time.strftime("%Y%m%dT%H%M%S", time.gmtime(ended_ms / 1000))
                          + f".{ended_ms % 1000:03d}Z-{uuid.uuid4().hex[:12]}")
        draft = outbox(root) / f".draft-{os.getpid()}-{self.record_id}"
        draft.mkdir(parents=True)
        artifacts = []
        for i, (path, subdir) in enumerate(self._artifacts):
            if path.is_file():
                copy = draft / "artifacts" / str(i) / path.name  # MLflow names it path.name
                copy.parent.mkdir(parents=True)
                shutil.copyfile(path, copy)
                artifacts.append([str(copy.relative_to(draft)), subdir])
        models = [self._write_model(draft / "models" / str(i), served, step)
                  for i, (served, step) in enumerate(self._models)]
        tags = {**self._base_tags(root), **self._tags, RECORD_TAG: self.record_id}
        record = {"id": self.record_id, "uri": uri, "experiment": self.study,
                  "params": {k: str(v)[:6000] for k, v in flatten(self.params).items()},
                  "metrics": self._metrics, "tags": tags, "artifacts": artifacts,
                  "start_ms": self._started_ms, "end_ms": ended_ms, "status": status,
                  "children": self._children, "models": models,
                  "live": self._feed and self._feed.ident}
        (draft / "record.json").write_text(json.dumps(record))
        return draft

    def _start_feed(self) -> None:
        """A live run (nnstudies.live) for a stage still logging after the delay."""
        from nnstudies.params import flatten

        self._live_tried = True
        root = repo_root()
        start = {"uri": tracking_uri(root), "experiment": self.study,
                 "params": {k: str(v)[:6000] for k, v in flatten(self.params).items()},
                 "tags": self._base_tags(root), "start_ms": self._started_ms}
        try:
            self._feed = live.Feed(root, start, self._metrics)
        except OSError:
            pass  # no live run; the record still lands at the end

    def _base_tags(self, root: Path) -> dict[str, str]:
        """The DVC, git and host tags of this run, and its name."""
        from nnstudies.params import flatten

        exp_name = os.environ.get("DVC_EXP_NAME", "")
        return {"dvc.stage": self.stage, "dvc.exp_name": exp_name,
                "dvc.baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", ""),
                "mlflow.source.git.commit": gitrepo.head(root), "host": socket.gethostname(),
                "mlflow.runName": _run_name(self.stage, exp_name, flatten(self.params), root)}

    @staticmethod
    def _write_model(folder: Path, served, step: int) -> dict:
        """One trained net's weights (tensors only) and input example (a plain .npy), and
        its entry in record.json (paths relative to the record's folder)."""
        import numpy as np
        import torch

        folder.mkdir(parents=True)
        torch.save({k: v.detach().cpu().contiguous() for k, v in served.state.items()},
                   folder / "state.pt")
        np.save(folder / "example.npy", np.ascontiguousarray(served.example, np.float32),
                allow_pickle=False)
        rel = folder.relative_to(folder.parents[1])
        return {"name": served.name, "family": served.family, "config": served.config,
                "state": str(rel / "state.pt"), "example": str(rel / "example.npy"), "step": step}

    def _send_now(self, draft: Path, root: Path, uri: str, exc_type) -> None:
        """The old way: send this record before the stage ends (nobody else sees the draft)."""
        try:
            with _store_lock(uri, root):
                self.run_id = _send_record(_open_store(uri), draft, root)
            shutil.rmtree(draft)
        except Exception as err:  # noqa: BLE001 - any store failure is handled the same way
            if self.required:
                shutil.rmtree(draft, ignore_errors=True)  # the stage fails and reruns next time
            else:
                _publish(draft)  # kept: the next flush sends it
            self._failed(uri, err, exc_type, kept=not self.required)

    def _failed(self, uri: str, err: Exception, exc_type, kept: bool) -> bool:
        if not self.required:
            where = f"; the run waits in {outbox(repo_root())} for `nnstudies flush`" if kept else ""
            print(f"warning: MLflow tracking at {uri} failed, the DVC outputs are written "
                  f"anyway: {_one_line(err)}{where}", file=sys.stderr)
        elif exc_type is None:
            raise TrackingError(f"MLflow tracking at {uri} failed: {_one_line(err)} "
                                "(tracking.required is true)") from None
        return False


def start(study: str, stage: str, params: dict) -> Run:
    """A Run configured by the ``tracking`` group of ``params`` (as loaded by nnstudies.params)."""
    settings = params.get("tracking", {"enabled": True, "required": False})
    run = Run(study, stage, params, enabled=settings["enabled"], required=settings["required"])
    run.check_reachable()
    return run


# -- the outbox ---------------------------------------------------------------------------

def _publish(draft: Path) -> None:
    """A rename makes the whole record visible to senders at once."""
    os.rename(draft, draft.parent / draft.name.split("-", 2)[2])


def pending(root: Path) -> list[Path]:
    """Records waiting in the outbox, oldest first; sweeps what dead writers left behind."""
    from nnstudies.atomic import _alive

    box = outbox(root)
    if not box.is_dir():
        return []
    records = []
    for path in box.iterdir():
        if path.name.startswith(".draft-") and not _alive(int(path.name.split("-")[1])):
            shutil.rmtree(path, ignore_errors=True)  # its stage was SIGKILLed while writing
        elif path.name.startswith(".sent-"):
            shutil.rmtree(path, ignore_errors=True)  # landed; its sender died deleting it
        elif path.is_dir() and not path.name.startswith("."):
            records.append(path)
    return sorted(records)


DROP_HINT = "`nnstudies flush --drop` deletes the ones that still cannot be sent, naming each"


def _warn_if_stuck(root: Path) -> None:
    """Senders run unseen: say so in the stage's output when earlier runs could not be sent."""
    stuck = [p for p in pending(root) if (p / "error.txt").exists()]
    if stuck:
        print(f"warning: {len(stuck)} MLflow run(s) wait in {outbox(root)} (last error: "
              f"{(stuck[-1] / 'error.txt').read_text().strip()}); they are retried after each "
              f"stage and by `nnstudies flush`; {DROP_HINT}", file=sys.stderr)


def _start_sender(root: Path) -> None:
    """A detached ``python -m nnstudies.tracking flush``: it outlives the stage (and DVC does
    not wait for it), runs this same code even from a queue's temp copy, and logs to the outbox."""
    box = outbox(root)
    log = box / "sender.log"
    if log.exists() and log.stat().st_size > 1 << 20:
        os.replace(log, box / "sender.log.1")  # keep it bounded
    src = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    with open(log, "a") as out:
        _SENDERS.append(subprocess.Popen(
            [sys.executable, "-m", "nnstudies.tracking", "flush", "--root", str(root), "--log"],
            cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True))


@dataclass
class Flushed:
    landed: list[tuple[str, str]] = field(default_factory=list)  # (record id, run id or "")
    failed: list[tuple[str, str]] = field(default_factory=list)  # (record id, one-line error)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (record id, why not sent)

    def lines(self) -> list[str]:
        return ([f"not sent: {rid}: {why}" for rid, why in self.failed]
                + [f"dropped: {rid} (not sent: {why})" for rid, why in self.dropped]
                + [f"{len(self.landed)} run(s) landed in MLflow, {len(self.failed)} failed (kept "
                   "in the outbox)" + (f", {len(self.dropped)} dropped" if self.dropped else "")])


class RecordError(Exception):
    """A record that must not be sent as it is (edited, or from elsewhere)."""


def flush(root: str | Path | None = None, drop: bool = False) -> Flushed:
    """Send every pending record of ``root``'s outbox, oldest first, each to the store it was
    recorded for (if allowed: ``refused_store``); waits for a sender that is already at work
    (it holds the store's lock).  ``drop``: delete each record that could not be sent."""
    root = Path(root).resolve() if root else repo_root()
    done = Flushed()
    by_uri: dict[str, list[str]] = {}
    for path in pending(root):
        try:
            uri = json.loads((path / "record.json").read_text())["uri"]
            if not isinstance(uri, str):
                raise ValueError(f"its uri is {type(uri).__name__}, not text")
        except (OSError, ValueError, KeyError, TypeError) as err:
            _failed(done, path, f"unreadable record ({_one_line(err)})", drop)
            continue
        refused = refused_store(uri, root)
        if refused:  # checked before the lock too: a sqlite lock file is made beside the store
            _failed(done, path, refused, drop)
        else:
            by_uri.setdefault(uri, []).append(path.name)
    for uri, names in by_uri.items():
        with _store_lock(uri, root):
            mine = [n for n in names if (outbox(root) / n).is_dir()]
            done.landed += [(n, "") for n in names if n not in mine]  # by a sender we waited for
            _flush_store(uri, mine, root, done, drop)
    return done


def refused_store(uri: str, root: Path) -> str | None:
    """Why a record may not go to the store it names, or None.  A record is a file anyone who
    can write the repo can edit, and its params, metrics and artifacts go where its ``uri``
    says.  Allowed: this repo's own store (sqlite:///<root>/mlflow.db), the store that
    MLFLOW_TRACKING_URI names now, and, while that is unset, an http(s) tracking server (so a
    run recorded while its server was down lands later from a shell without the variable).
    Never another sqlite file (a path anywhere on this machine, created if missing) nor any
    other scheme (file:, databases, plugins) that the user does not name now."""
    current = os.environ.get("MLFLOW_TRACKING_URI")
    if uri in (f"sqlite:///{root / 'mlflow.db'}", current):
        return None
    if current:
        return (f"recorded for the MLflow store {uri}, but MLFLOW_TRACKING_URI is now {current}: "
                f"set MLFLOW_TRACKING_URI={uri} to send it there")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if parts and parts.scheme in ("http", "https") and parts.hostname and not (
            parts.username or parts.password or parts.query or parts.fragment):
        return None
    return (f"recorded for the MLflow store {uri!r}, which is neither this repo's mlflow.db nor "
            "an http(s) tracking server (host[:port][/path], no user, query or fragment): "
            "refused, set MLFLOW_TRACKING_URI to it to send it there")


def _failed(done: Flushed, path: Path, why: str, drop: bool) -> None:
    """A record not sent: dropped (``flush --drop``), or kept with its error, which the next
    stage shows (_warn_if_stuck)."""
    if drop:
        gone = path.with_name(".sent-" + path.name)  # swept by pending() if we die here
        os.rename(path, gone)
        shutil.rmtree(gone, ignore_errors=True)
        done.dropped.append((path.name, why))
        return
    done.failed.append((path.name, why))
    with contextlib.suppress(OSError):
        (path / "error.txt").write_text(why + "\n")


def _flush_store(uri: str, names: list[str], root: Path, done: Flushed, drop: bool) -> None:
    if not names:
        return
    # A store that is down or broken would cost every record its retries: ask once.
    problem = store_problem(uri) if uri.startswith(("http://", "https://", "sqlite:///")) else None
    client = None
    for name in names:
        path = outbox(root) / name
        try:
            if problem:
                raise RuntimeError(problem)
            client = client or _open_store(uri)
            done.landed.append((name, _send_record(client, path, root)))
        except Exception as err:  # noqa: BLE001 - kept for the next flush, whatever went wrong
            _failed(done, path, _one_line(err), drop)
            continue
        sent = path.with_name(".sent-" + name)
        os.rename(path, sent)  # atomic: a record is either pending or gone
        shutil.rmtree(sent, ignore_errors=True)


# -- talking to MLflow --------------------------------------------------------------------

def _client(uri: str):
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # A server that is down should cost seconds, not mlflow's default minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    import logging

    from mlflow.tracking import MlflowClient

    # The store's INFO chatter (schema migrations, new experiments) is not the stage's news.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=uri)


def _open_store(uri: str):
    """A client of the store, whose experiments got the tags this version gives them."""
    client = _client(uri)
    migrate_store(client)
    return client


def experiment_tags(name: str) -> dict[str, str]:
    """The UI's kind and description of one of the project's experiments."""
    return {EXPERIMENT_KIND[0]: EXPERIMENT_KIND[1], "mlflow.note.content": NOTES[name] + NOTE_TAIL}


def migrate_store(client) -> list[str]:
    """Bring a store's experiments up to this version, idempotently: rename the old report
    experiment, give every experiment of the project its kind and description.  Returns what
    it changed (nothing the second time)."""
    changes = []
    for old, new in RENAMED.items():
        experiment = _retry(client.get_experiment_by_name, old)
        if experiment and not _retry(client.get_experiment_by_name, new):
            _retry(client.rename_experiment, experiment.experiment_id, new)
            changes.append(f"renamed experiment {old} to {new}")
    for name in NOTES:
        experiment = _retry(client.get_experiment_by_name, name)
        for key, value in experiment_tags(name).items() if experiment else ():
            if experiment.tags.get(key) != value:
                _retry(client.set_experiment_tag, experiment.experiment_id, key, value)
                changes.append(f"{name}: set {key}")
    return changes


def _experiment_id(client, name: str, uri: str, root: Path) -> str:
    import mlflow

    experiment = _retry(client.get_experiment_by_name, name)
    if experiment is not None:
        return experiment.experiment_id
    artifacts = (root / "mlartifacts").as_uri() if uri.startswith("sqlite:") else None
    tags = experiment_tags(name) if name in NOTES else None
    try:
        return _retry(client.create_experiment, name, artifacts, tags)
    except mlflow.exceptions.MlflowException:  # another worker created it first
        return _retry(client.get_experiment_by_name, name).experiment_id


def _send_record(client, path: Path, root: Path) -> str:
    """One record as one MLflow run; returns its run id.  Idempotent: a run tagged with the
    record's id that was terminated is the record, landed already (its sender died before
    deleting it); one still RUNNING is a sender's half-sent copy: deleted, sent again."""
    from mlflow.entities import Metric, Param, RunTag

    rec = json.loads((path / "record.json").read_text())
    artifacts = _artifacts(rec, path)  # before anything is sent: all or nothing
    models = _models(rec, path)
    experiment_id = _experiment_id(client, rec["experiment"], rec["uri"], root)
    for run in _retry(client.search_runs, [experiment_id],
                                                 f"tags.`{RECORD_TAG}` = '{rec['id']}'"):
        if run.info.status != "RUNNING":
            live.forget(rec, root)
            return run.info.run_id
        _retry(client.delete_run, run.info.run_id)
        for model in _retry(client.search_logged_models, [experiment_id],  # its models, too
                            f"source_run_id = '{run.info.run_id}'"):
            _retry(client.delete_logged_model, model.model_id)
        for child in _retry(client.search_runs,   # its children, sent before it ends
                [experiment_id], f"tags.`{PARENT_TAG}` = '{rec['id']}'"):
            _retry(client.delete_run, child.info.run_id)
    adopted = live.adopt(client, experiment_id, rec, root)  # the run a user watched grow
    if adopted:
        run_id, sent, sent_params = adopted
        _retry(client.log_batch, run_id, tags=[RunTag(k, v) for k, v in rec["tags"].items()])
    else:
        run_id, sent, sent_params = _retry(client.create_run, experiment_id, start_time=rec["start_ms"],
                                           tags=rec["tags"]).info.run_id, 0, set()
    params = [Param(k, v) for k, v in rec["params"].items() if k not in sent_params]
    metrics = [Metric(k, v, ts, step) for k, v, ts, step in rec["metrics"][sent:]]
    # log_batch takes at most 100 params and 1000 metrics per call.
    for i in range(0, len(params), 100):
        _retry(client.log_batch, run_id, params=params[i:i + 100])
    for i in range(0, len(metrics), 1000):
        _retry(client.log_batch, run_id, metrics=metrics[i:i + 1000])
    for copy, subdir in artifacts:
        client.log_artifact(run_id, str(copy), subdir)
    for model in models:
        model.log(client, rec["uri"], experiment_id, run_id)
    for i, child in enumerate(rec.get("children", [])):
        _send_child(client, experiment_id, run_id, rec, i, child)
    with contextlib.redirect_stdout(io.StringIO()):  # not our output: a server's run links
        _retry(client.set_terminated, run_id, rec["status"], end_time=rec["end_ms"])
    live.forget(rec, root)
    return run_id


def _artifacts(rec: dict, path: Path) -> list[tuple[Path, str | None]]:
    """The record's artifact files and their folders in the run, checked.  A stage copies each
    artifact into its record's own folder (Run._write_record), so a file that resolves (after
    symlinks) anywhere else -- `../` segments, an absolute path, a link, a record folder that
    is itself a link -- is an edited record that would upload any readable file: refused.
    The folder in the run must stay inside the run's artifacts (relative, no `..`)."""
    checked = []
    for entry in rec["artifacts"]:
        copy, subdir = entry if isinstance(entry, list) and len(entry) == 2 else (entry, None)
        where = _inside(path, copy)
        if where is None:
            raise RecordError(f"artifact {copy!r} is not a file inside the record's folder "
                              f"{_home(path)}: refused (a record sends only the copies its "
                              "stage made there)")
        folder = PurePosixPath(subdir) if isinstance(subdir, str) else None
        if subdir is not None and (folder is None or folder.is_absolute() or ".." in folder.parts):
            raise RecordError(f"artifact folder {subdir!r} of {copy!r} is not a relative path "
                              "inside the run (no `..`): refused")
        checked.append((where, subdir))
    return checked


def _home(path: Path) -> Path:
    return path.parent.resolve() / path.name  # not path.resolve(): a linked record is refused


def _inside(path: Path, rel) -> Path | None:
    """The file ``rel`` names in the record folder ``path``, or None if it resolves (after
    symlinks) anywhere else or is no file."""
    if not isinstance(rel, str):
        return None
    where = (path / rel).resolve()
    return where if where.is_relative_to(_home(path)) and where.is_file() else None


def _models(rec: dict, path: Path) -> list:
    """The record's trained nets, rebuilt (nnstudies.served.Rebuilt) before anything is
    sent, checked like its artifacts: weights and example files inside the record's folder,
    a family that nnstudies.served knows (a record is editable: it never names code to
    import), and a config and weights that make that family's net."""
    entries = rec.get("models", [])
    if not entries:
        return []
    from nnstudies import served  # imports torch: only for a record with models

    rebuilt = []
    for i, entry in enumerate(entries if isinstance(entries, list) else [entries]):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) \
                or not isinstance(entry.get("config"), dict) or not isinstance(entry.get("step"), int):
            raise RecordError(f"model entry {i} is not a dict with a name, a config and a step: "
                              "refused")
        name, family = entry["name"], entry.get("family")
        if not isinstance(family, str) or family not in served.REGISTRY:
            raise RecordError(f"model {name!r}: family {family!r} is not one of "
                              f"{', '.join(sorted(served.REGISTRY))}: refused (a record builds "
                              "only the nets nnstudies.served knows)")
        state, example = (_inside(path, entry.get(key)) for key in ("state", "example"))
        if state is None or example is None:
            raise RecordError(f"model {name!r}: its state and example must be files inside the "
                              f"record's folder {_home(path)}: refused")
        try:
            rebuilt.append(served.rebuild(name, family, entry["config"], state, example,
                                          entry["step"]))
        except Exception as err:  # noqa: BLE001 - whatever the files hold, not a net we send
            raise RecordError(f"model {name!r}: its {family} net cannot be rebuilt from the "
                              f"record ({_one_line(err)}): refused") from None
    return rebuilt


def _send_child(client, experiment_id: str, parent_id: str, rec: dict, i: int, child: dict) -> None:
    """One nested run under ``parent_id``, with the parent's DVC and git tags."""
    from mlflow.entities import Metric, Param

    tags = {**{k: v for k, v in rec["tags"].items() if k not in ("mlflow.runName", RECORD_TAG)},
            **child["tags"], "mlflow.parentRunId": parent_id, "mlflow.runName": child["name"],
            RECORD_TAG: f"{rec['id']}/{i}", PARENT_TAG: rec["id"]}
    run_id = _retry(client.create_run, experiment_id, start_time=child["start_ms"],
                                              tags=tags).info.run_id
    params = [Param(k, v) for k, v in child["params"].items()]
    metrics = [Metric(k, v, child["end_ms"], 0) for k, v in child["metrics"].items()]
    _retry(client.log_batch, run_id, params=params[:100], metrics=metrics[:1000])
    with contextlib.redirect_stdout(io.StringIO()):
        _retry(client.set_terminated, run_id, "FINISHED", end_time=child["end_ms"])


def _one_line(err: Exception) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text[:300] + ("..." if len(text) > 300 else "")


# -- python -m nnstudies.tracking flush ---------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nnstudies.tracking",
                                     description="send the runs waiting in the outbox to MLflow")
    parser.add_argument("command", choices=["flush"])
    parser.add_argument("--root", help="repository root (default: DVC_ROOT or the cwd's repo)")
    parser.add_argument("--log", action="store_true",
                        help="as a background sender: time-stamped lines, silent when idle")
    parser.add_argument("--drop", action="store_true",
                        help="delete each run that cannot be sent now (e.g. recorded for a dead or "
                             "mistyped MLFLOW_TRACKING_URI), naming it")
    args = parser.parse_args(argv)
    done = flush(args.root, drop=args.drop)
    if args.log:
        if done.landed or done.failed:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            print("\n".join(f"{stamp} [{os.getpid()}] {line}" for line in
                            [f"landed {rid} as run {run_id}" for rid, run_id in done.landed]
                            + done.lines()), flush=True)
    else:
        print("\n".join(done.lines()), flush=True)
        if done.failed:
            print(f"hint: they stay in {outbox(Path(args.root or repo_root()).resolve())} and are "
                  f"retried after each stage; {DROP_HINT}", file=sys.stderr)
    return 1 if done.failed else 0


if __name__ == "__main__":
    from nnstudies import cli

    cli.run(main)
