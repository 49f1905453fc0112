"""Compare pipeline runs in MLflow: a Markdown table of the latest runs, and the local UI.

``latest`` reads the pipeline's MLflow experiments (one per study) with
``mlflow.search_runs`` and keeps the newest run of each (stage, DVC experiment) pair, so
the workspace run and every ``dvc exp run`` of a stage sit side by side.  ``ui_command``
is the ``mlflow server`` that ``nnstudies ui`` starts: loopback only, one worker,
background jobs and telemetry off, against the same store the stages log to.  Both first
send the runs that wait in the tracking outbox (``tracking.flush``), so that they show
every finished stage.  ``nnstudies ui`` also saves, in each study's experiment, a view of its
training runs (key params and metrics as columns, best first, per-epoch curves as charts)
and prints its links (``save_views``, ``VIEWS``).
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from nnstudies import mdtable, tracking
from nnstudies.errors import UserError


def _require_server(uri: str) -> None:
    """Fail fast: a tracking server that is down would cost mlflow's minutes of retries."""
    problem = tracking.store_problem(uri) if uri.startswith(("http://", "https://")) else None
    if problem:
        raise UserError(f"{problem}: start it, or unset MLFLOW_TRACKING_URI to read this repo's "
                        "mlflow.db")


def _require_store(uri: str) -> None:
    path = tracking.sqlite_path(uri)
    if path is not None and not path.exists():
        raise UserError(f"no MLflow database at {path}: run the pipeline (`dvc repro`) first, "
                        "or set MLFLOW_TRACKING_URI")
    problem = tracking.store_problem(uri, write=False) if path is not None else None
    if problem:  # junk or a foreign database: mlflow would answer with a long traceback
        raise UserError(f"{problem}: move it aside (the pipeline's next run starts a new one), or "
                        "set MLFLOW_TRACKING_URI")


@contextlib.contextmanager
def _reading(uri: str):
    """A store that passed the checks above can still fail when read (a sqlite file damaged
    inside, a server that breaks mid-way): one line, whatever mlflow, sqlalchemy or the
    network raised."""
    try:
        yield
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure of the store is the store's
        raise UserError(f"MLflow store {uri} could not be read ({tracking._one_line(err)}); "
                        "repair or move it aside, or set MLFLOW_TRACKING_URI") from None


def flush_outbox(root: Path | None = None) -> None:
    """Readers must see every finished stage: send the runs waiting in the outbox first.
    Runs that cannot be sent stay there; each is one warning line."""
    for record_id, why in tracking.flush(root).failed:
        print(f"warning: MLflow run {record_id} not sent yet: {why}; {tracking.DROP_HINT}",
              file=sys.stderr)


def latest(stage_prefix: str | None = None, exp_name: str | None = None, uri: str | None = None):
    """DataFrame of the newest run per (stage, exp name), sorted by stage then start time.

    Runs are found by their ``dvc.stage`` tag in every experiment of the store (the report's
    builds excepted), so no study can be missed; ``study`` is the run's experiment."""
    uri = uri or tracking.tracking_uri()
    _require_server(uri)
    flush_outbox()
    _require_store(uri)
    import mlflow

    with _reading(uri):
        client = tracking._client(uri)  # telemetry off, one retry: a dying server costs seconds
        experiments = [e for e in client.search_experiments()
                       if e.name != tracking.REPORT_EXPERIMENT]
        mlflow.set_tracking_uri(uri)
        runs = mlflow.search_runs([e.experiment_id for e in experiments],
                                  filter_string="tags.`dvc.stage` LIKE '%'",
                                  order_by=["attributes.start_time DESC"]) if experiments else None
    if runs is None or runs.empty or "tags.dvc.stage" not in runs:
        return None
    names = {e.experiment_id: e.name for e in experiments}
    exp = runs["tags.dvc.exp_name"].fillna("") if "tags.dvc.exp_name" in runs else ""
    runs = runs.assign(study=runs["experiment_id"].map(names),
                       stage=runs["tags.dvc.stage"].fillna(""), exp=exp)
    if stage_prefix:
        runs = runs[runs["stage"].str.startswith(stage_prefix)]
    if exp_name is not None:
        runs = runs[runs["exp"] == exp_name]
    runs = runs.drop_duplicates(["stage", "exp"])  # newest first, so this keeps the latest
    return runs.sort_values(["study", "stage", "start_time"], ascending=[True, True, False])


WIDTH = 160  # a terminal: every table of `nnstudies compare` fits it


def table(runs, metrics: list[str] | None = None, width: int = WIDTH) -> str:
    """One Markdown table per study: stage, exp name, run id, its key metrics first (the
    study's view, else the chosen ``metrics``), then the params that differ between its runs,
    as many columns as fit ``width``; the rest are named below the table."""
    if runs is None or len(runs) == 0:
        return "no pipeline runs found"
    available = sorted(c[len("metrics."):] for c in runs.columns if c.startswith("metrics."))
    missing = [m for m in metrics or [] if m not in available]
    if missing:
        raise UserError(f"no metric '{missing[0]}' in these runs (known: {', '.join(available)})")
    parts = []
    for study, group in runs.groupby("study", sort=True):
        parts.append(_study_table(study, group, metrics, width))
    return "\n\n".join(parts)


def _study_table(study: str, runs, metrics: list[str] | None, width: int) -> str:
    import pandas as pd

    view = VIEWS.get(study)
    has = lambda col: col in runs and runs[col].notna().any()  # noqa: E731
    keys = metrics or [m for m in (view.metrics if view else ()) if has(f"metrics.{m}")] or \
        [c[len("metrics."):] for c in runs.columns if c.startswith("metrics.") and has(c)]
    differing = [c for c in runs.columns if c.startswith("params.") and not c.startswith(
        "params.tracking.") and runs[c].astype(str).nunique() > 1]
    frame = pd.DataFrame({"stage": runs["stage"], "exp": runs["exp"].replace("", "(workspace)"),
                          "run": runs["run_id"].str[:8],
                          "started (UTC)": runs["start_time"].dt.strftime("%m-%d %H:%M")})
    for m in keys:
        frame[m] = [_number(v) for v in runs.get(f"metrics.{m}", pd.Series(index=runs.index))]
    for c in differing:
        frame[_short(c[len("params."):])] = runs[c].fillna("").astype(str)
    shown, left = [], []
    for column in frame.columns:  # keep columns while the table fits the terminal
        trial = frame[shown + [column]]
        (shown if len(_markdown(trial).split("\n", 1)[0]) <= width else left).append(column)
    text = f"{study} ({len(frame)} runs)\n{_markdown(frame[shown])}"
    if left:
        note = f"({len(left)} more columns do not fit {width} columns: {', '.join(left)})"
        text += "\n" + (note if len(note) <= width else note[:width - 5] + " ...)")
    return text


def _number(value) -> str:
    return "" if value is None or value != value else f"{value:.4g}"


def _short(key: str) -> str:
    """``kmnist.train.lr`` -> ``train.lr``: the study's group prefix adds nothing in its table."""
    return key.split(".", 1)[1] if key.count(".") >= 2 else key


def _markdown(frame) -> str:
    return mdtable.render(list(frame.columns), frame.values.tolist())


# -- the MLflow UI --------------------------------------------------------------------

@dataclass(frozen=True)
class View:
    """What the runs page of one study shows: its training runs (``stages``, a LIKE pattern on
    the tag dvc.stage), best first by ``sort`` (higher is better), ``metrics`` and ``params``
    as columns (fnmatch patterns; every param that differs between the runs joins them), and
    the per-epoch ``curves`` as charts."""
    stages: str
    sort: str
    metrics: tuple[str, ...]
    params: tuple[str, ...]
    curves: tuple[str, ...]


VIEWS = {
    "kmnist": View(
        "train_kmnist@%", "test_accuracy",
        ("test_accuracy", "test_loss", "train_loss", "parameters"),
        ("kmnist.train.epochs", "kmnist.*.lr", "kmnist.full.hidden", "kmnist.conv.channels?",
         "kmnist.conv.fc"),
        ("test_accuracy", "test_loss", "train_loss")),
    "checker": View(
        "train_checker", "accuracy",
        ("accuracy", "epochs_to_100", "restarts_succeeded", "loss", "output_margin"),
        ("hid", "checker.train.act", "checker.train.init", "checker.train.lr",
         "checker.train.restarts"),
        ("accuracy", "loss", "restarts_at_100")),
    "seq": View(
        "train_seq@%", "success_count",
        ("success_count", "test.error", "test.final", "test.separation", "validation.error"),
        ("seq.*.model", "seq.*.hid", "seq.train.lr", "seq.train.restarts"),
        ("error", "final", "loss", "separation")),
}
# MLflow 3.17's runs page restores a saved view -- search facets (filter, sort) and UI state
# (selected columns, chart filter) -- from the experiment tag `mlflow.sharedViewState.<id>`
# when its URL carries `viewStateShareKey=<id>`; `compareRunsMode` picks TABLE or CHART
# (mlflow/server/js/src/experiment-tracking/components/experiment-page/hooks/
# useSharedExperimentViewState.ts and utils/savedViewEnvelope.ts: the tag holds
# {"name", "createdAt", "updatedAt", "state": JSON text}).  A column is `metrics.`key`` or
# `params.`key``; `chartsSearchFilter` is a case-insensitive regex on the charts' metrics.
VIEW_ID = "nnstudies"
VIEW_NAME = "nnstudies: key params and metrics"


def view_state(view: View, runs) -> dict:
    """The saved view of ``view`` over ``runs`` (MLflow Run objects of its stages)."""
    column = lambda kind, key: f"{kind}.`{key}`"  # noqa: E731
    values: dict[str, set] = {}
    for run in runs:
        for key, value in run.data.params.items():
            values.setdefault(key, set()).add(value)
    params = [k for k in sorted(values) if not k.startswith("tracking.") and
              (len(values[k]) > 1 or any(fnmatch.fnmatchcase(k, p) for p in view.params))]
    columns = [column("metrics", m) for m in view.metrics] + [column("params", p) for p in params]
    return {"searchFilter": f"tags.`dvc.stage` LIKE '{view.stages}'",
            "orderByKey": column("metrics", view.sort), "orderByAsc": False,
            "selectedColumns": columns, "columnOrder": columns,
            "chartsSearchFilter": f"^({'|'.join(view.curves)})$"}


def save_views(uri: str, root: Path) -> dict[str, str]:
    """Bring the store up to date (tracking.migrate_store) and save each study's view in its
    experiment; returns {experiment name: id} of the project's experiments in the store."""
    now = int(time.time() * 1000)
    ids = {}
    with _reading(uri), tracking._store_lock(uri, root):
        client = tracking._client(uri)
        tracking.migrate_store(client)
        for experiment in tracking._retry(client.search_experiments):
            name = experiment.name
            if name == "Default":
                continue
            ids[name] = experiment.experiment_id
            if name in VIEWS:
                view = VIEWS[name]
                runs = client.search_runs([experiment.experiment_id],
                                          f"tags.`dvc.stage` LIKE '{view.stages}'")
                envelope = {"name": VIEW_NAME, "createdAt": now, "updatedAt": now,
                            "state": json.dumps(view_state(view, runs))}
                tracking._retry(client.set_experiment_tag, experiment.experiment_id,
                                f"mlflow.sharedViewState.{VIEW_ID}", json.dumps(envelope))
    order = list(VIEWS)  # the studies in their report order, then any other experiment
    return dict(sorted(ids.items(), key=lambda kv: (kv[0] not in VIEWS,
                                                    order.index(kv[0]) if kv[0] in VIEWS else 0, kv[0])))


def runs_url(base: str, experiment_id: str, mode: str | None = None) -> str:
    """The runs page of an experiment, in the UI's "Model training" mode (not GenAI); with a
    ``mode`` (TABLE or CHART), through the study's saved view."""
    view = f"viewStateShareKey={VIEW_ID}&compareRunsMode={mode}&" if mode else ""
    return f"{base}/#/experiments/{experiment_id}/runs?{view}workflowType=machine_learning"


def ui_lines(base: str, ids: dict[str, str]) -> list[str]:
    """What ``nnstudies ui`` prints below the server's address: where each study's runs are."""
    lines = []
    for name, experiment_id in ids.items():
        if name in VIEWS:
            lines += [f"  {name} runs:   {runs_url(base, experiment_id, 'TABLE')}",
                      f"  {name} curves: {runs_url(base, experiment_id, 'CHART')}"]
        else:
            lines.append(f"  {name} (not a study): {runs_url(base, experiment_id)}")
    return lines


def ui_env() -> dict:
    """Fast start: no background job runner, no telemetry."""
    return {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_DISABLE_TELEMETRY": "true"}


def ui_command(port: int, root: Path | None = None) -> list[str]:
    """``mlflow server`` on 127.0.0.1:port over the pipeline's store and mlartifacts/."""
    root = root or tracking.repo_root()
    uri = tracking.tracking_uri(root)
    if uri.startswith(("http://", "https://")):
        raise UserError(f"MLFLOW_TRACKING_URI is already a server ({uri}): open it in a browser")
    _require_store(uri)
    return [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--backend-store-uri", uri,
            "--artifacts-destination", str(root / "mlartifacts")]


def check_port_free(port: int) -> None:
    """The server must be able to listen on 127.0.0.1:port (checked before it starts)."""
    if not 0 < port < 65536:
        raise UserError(f"--port {port} is not a TCP port: pass one from 1 to 65535")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as err:
            why = "is in use" if err.errno == errno.EADDRINUSE else f"cannot be used ({err.strerror})"
            raise UserError(f"port {port} on 127.0.0.1 {why}: pass --port with a free one") from None


def serve(port: int) -> None:
    """Replace this process with the MLflow server, so its PID and Ctrl-C are the server's.
    When MLFLOW_TRACKING_URI is a server (a team's), that server is the UI: save the views
    there and print its links; nothing is started."""
    root = tracking.repo_root()
    uri = tracking.tracking_uri(root)
    if uri.startswith(("http://", "https://")):
        _require_server(uri)
        flush_outbox(root)
        base = uri.rstrip("/")
        print(f"MLflow UI: {base}  (the tracking server in MLFLOW_TRACKING_URI; nothing started)",
              *ui_lines(base, save_views(uri, root)), sep="\n", flush=True)
        return
    check_port_free(port)
    flush_outbox(root)
    command = ui_command(port, root)
    base = f"http://127.0.0.1:{port}"
    lines = ui_lines(base, save_views(uri, root))
    print(f"MLflow UI: {base}  (store {uri}; ready in a few seconds; Ctrl-C stops it)",
          *lines, sep="\n", flush=True)
    os.execve(command[0], command, ui_env())
