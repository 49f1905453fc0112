"""MLflow run log for every stage run.

- Default store: ``sqlite:///<repo root>/mlflow.db`` with artifacts in ``<repo root>/mlartifacts``.
  The root comes from ``DVC_ROOT`` when DVC runs the stage; a queued experiment runs in a
  temp copy under ``<main repo>/.dvc/tmp/exps/``, so the main repo above it is used instead.
- ``MLFLOW_TRACKING_URI`` overrides the store (e.g. a tracking server).
- One MLflow experiment per study; tags ``dvc.stage``, ``dvc.exp_name``, ``dvc.baseline_rev``
  and the git commit.
- mlflow is imported lazily; ``NNSTUDIES_TRACKING=off`` (unit tests) or
  ``tracking.enabled: false`` switches logging off.
- Tracking never costs the DVC outputs: when the store cannot be reached the stage warns and
  goes on, unless ``tracking.required`` is true, in which case it fails at once.

Metrics are buffered and sent in batches when the run ends: one short write per run keeps
two queued workers from contending for the sqlite database on every epoch.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from nnstudies.errors import UserError

STUDIES = {"kmnist": "kmnist-classifiers", "check": "checkerboard-mlp", "seq": "recurrent-dynamics",
           "report": "report"}


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


def _git_commit(root: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _retry(call, attempts: int = 8):
    """sqlite says 'database is locked' when two workers write at once: wait and retry."""
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:  # mlflow wraps sqlite errors in its own exception types
            if "locked" not in str(exc).lower() or attempt == attempts - 1:
                raise
            time.sleep(0.2 * 2 ** attempt)


@contextlib.contextmanager
def _store_lock(uri: str):
    """Two workers creating one sqlite store at once race on its schema migration
    ('duplicate column name'): an OS file lock beside the database lets one write at a time."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    with open(uri[len("sqlite:///"):] + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class Run:
    """One MLflow run for one stage execution; use as a context manager.

    ``log_metrics(values, step=None)`` buffers; ``log_artifact(path, subdir)`` queues a file;
    everything is sent when the block ends (status FINISHED, or FAILED on an exception).
    """

    def __init__(self, study: str, stage: str, params: dict, *, enabled: bool = True,
                 required: bool = False):
        self.study, self.stage, self.params = study, stage, params
        self.required = required
        self.enabled = enabled and os.environ.get("NNSTUDIES_TRACKING", "on").lower() not in (
            "off", "0", "false")
        self.run_id: str | None = None
        self._started_ms = int(time.time() * 1000)
        self._metrics: list[tuple[str, float, int, int]] = []
        self._artifacts: list[tuple[Path, str | None]] = []
        self._tags: dict[str, str] = {}

    # -- what a stage calls -------------------------------------------------
    def log_metrics(self, values: dict, step: int | None = None) -> None:
        now = int(time.time() * 1000)
        for key, value in values.items():
            self._metrics.append((key, float(value), now, int(step or 0)))

    def log_params(self, values: dict) -> None:
        """Params known only at run time (e.g. data checksums), logged beside params.yaml's."""
        self.params = {**self.params, **values}

    def log_artifact(self, path: str | Path, subdir: str | None = None) -> None:
        self._artifacts.append((Path(path), subdir))

    def set_tags(self, tags: dict) -> None:
        self._tags.update({k: str(v) for k, v in tags.items()})

    # -- lifecycle ----------------------------------------------------------
    def __enter__(self) -> "Run":
        # The run is created when the block ends, but it keeps the real start time, so the
        # run's duration in MLflow is the stage's wall time.
        self._started_ms = int(time.time() * 1000)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        # Bad input (a UserError) stops a stage before it produced anything worth a run:
        # it writes nothing, not even a FAILED run in the store.
        if self.enabled and not (exc_type and issubclass(exc_type, UserError)):
            status = "FINISHED" if exc_type is None else "FAILED"
            if exc_type is KeyboardInterrupt:
                status = "KILLED"
            try:
                with _store_lock(tracking_uri()):
                    self._send(status)
            except Exception as err:  # noqa: BLE001 - any store failure is handled the same way
                if self.required:
                    if exc_type is None:
                        raise TrackingError(f"MLflow tracking at {tracking_uri()} failed: "
                                            f"{_one_line(err)} (tracking.required is true)") from None
                else:
                    print(f"warning: MLflow tracking at {tracking_uri()} failed, the DVC outputs "
                          f"are written anyway: {_one_line(err)}", file=sys.stderr)
        return False

    def check_reachable(self) -> None:
        """Fail fast, before any work, when tracking is required and the server is down."""
        if not (self.enabled and self.required):
            return
        uri = tracking_uri()
        if uri.startswith(("http://", "https://")):
            import urllib.request

            try:
                urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5).read()
            except OSError as err:
                raise TrackingError(f"MLflow tracking server {uri} is not reachable ({err}); "
                                    "start it, unset MLFLOW_TRACKING_URI, or set "
                                    "tracking.required: false") from None

    def _send(self, status: str) -> None:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        # A server that is down should cost seconds, not mlflow's default minutes of retries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        import logging

        import mlflow
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient

        # The store's INFO chatter (schema migrations, new experiments) is not the stage's news.
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)

        root = repo_root()
        client = MlflowClient(tracking_uri=tracking_uri(root))
        name = STUDIES.get(self.study, self.study)
        experiment = _retry(lambda: client.get_experiment_by_name(name))
        if experiment is None:
            artifacts = None
            if tracking_uri(root).startswith("sqlite:"):
                artifacts = (root / "mlartifacts").as_uri()
            try:
                experiment_id = _retry(lambda: client.create_experiment(name, artifacts))
            except mlflow.exceptions.MlflowException:  # another worker created it first
                experiment_id = _retry(lambda: client.get_experiment_by_name(name)).experiment_id
        else:
            experiment_id = experiment.experiment_id
        tags = {
            "dvc.stage": self.stage,
            "dvc.exp_name": os.environ.get("DVC_EXP_NAME", ""),
            "dvc.baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", ""),
            "mlflow.source.git.commit": _git_commit(root),
            "mlflow.runName": f"{self.stage}" + (f" ({os.environ['DVC_EXP_NAME']})"
                                                 if os.environ.get("DVC_EXP_NAME") else ""),
            **self._tags,
        }
        run = _retry(lambda: client.create_run(experiment_id, start_time=self._started_ms,
                                                     tags=tags))
        self.run_id = run.info.run_id
        from nnstudies.params import flatten

        params = [Param(k, str(v)[:6000]) for k, v in flatten(self.params).items()]
        metrics = [Metric(k, v, ts, step) for k, v, ts, step in self._metrics]
        # log_batch takes at most 100 params and 1000 metrics per call.
        for i in range(0, len(params), 100):
            _retry(lambda i=i: client.log_batch(self.run_id, params=params[i:i + 100]))
        for i in range(0, len(metrics), 1000):
            _retry(lambda i=i: client.log_batch(self.run_id, metrics=metrics[i:i + 1000]))
        for path, subdir in self._artifacts:
            if path.exists():
                client.log_artifact(self.run_id, str(path), subdir)
        _retry(lambda: client.set_terminated(self.run_id, status))


def start(study: str, stage: str, params: dict) -> Run:
    """A Run configured by the ``tracking`` group of ``params`` (as loaded by nnstudies.params)."""
    settings = params.get("tracking", {"enabled": True, "required": False})
    run = Run(study, stage, params, enabled=settings["enabled"], required=settings["required"])
    run.check_reachable()
    return run


def _one_line(err: Exception) -> str:
    text = " ".join(str(err).split())
    return text[:300] + ("..." if len(text) > 300 else "")
