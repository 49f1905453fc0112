"""Compare pipeline runs in MLflow: a Markdown table of the latest runs, and the local UI.

``search`` reads the pipeline's MLflow experiments (one per study) with
``mlflow.search_runs``; ``latest`` keeps the newest run of each (training stage, DVC
experiment) pair, so the workspace run and every ``dvc exp run`` of a stage sit side by side,
and ``restored`` names the run whose outputs DVC restored from its run-cache (it logs none).
``ui_command`` is the ``mlflow server`` that ``nnstudies ui`` starts: loopback only, one worker,
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


def search(uri: str | None = None):
    """DataFrame of every pipeline run in the store, newest first, with its ``study`` (its
    experiment), ``stage`` and ``exp`` (DVC experiment name, "" for the workspace); None when
    there is none.

    Runs are found by their ``dvc.stage`` tag in every experiment of the store (the report's
    builds excepted), so no study can be missed."""
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
    return runs.assign(study=runs["experiment_id"].map(names),
                       stage=runs["tags.dvc.stage"].fillna(""), exp=exp)


def training(study: str, stage: str) -> bool:
    """A stage that trains a net: its study's view says which (else a ``train_`` stage)."""
    view = VIEWS.get(study)
    return fnmatch.fnmatchcase(stage, view.stages.replace("%", "*")) if view else \
        stage.startswith("train_")


def latest(stage_prefix: str | None = None, exp_name: str | None = None, uri: str | None = None,
           all_stages: bool = False, runs=None):
    """The newest run per (stage, exp name) of the training stages (``all_stages``: of every
    stage), from ``runs`` (``search``'s frame) or the store."""
    runs = search(uri) if runs is None else runs
    if runs is None:
        return None
    if not all_stages:
        runs = runs[[training(study, stage) for study, stage in zip(runs["study"], runs["stage"])]]
    if stage_prefix:
        runs = runs[runs["stage"].str.startswith(stage_prefix)]
    if exp_name is not None:
        runs = runs[runs["exp"] == exp_name]
    return runs.drop_duplicates(["stage", "exp"])  # newest first, so this keeps the latest


def restored(runs, lock_path: Path, stages: set[str] | None = None) -> dict[str, list[str]]:
    """{study: lines} naming, for each stage of dvc.lock (of ``stages``, if given) whose newest
    MLflow run does not have the params its outputs were made with, the earlier run that has
    them: DVC restored those outputs from its run-cache, which starts no stage and so logs no
    new run."""
    from nnstudies.params import flatten
    from nnstudies.yamlfile import read

    if runs is None or not lock_path.is_file():
        return {}
    locked = (read(lock_path) or {}).get("stages") or {}
    notes: dict[str, list[str]] = {}
    for stage, entry in locked.items():
        mine = runs[runs["stage"] == stage] if stages is None or stage in stages else runs[:0]
        wanted = {k: str(v) for k, v in flatten((entry.get("params") or {}).get("params.yaml") or {}).items()}
        if mine.empty or not wanted:
            continue
        same = [all(row.get(f"params.{k}") == v for k, v in wanted.items())
                for row in mine.to_dict("records")]
        if same[0]:
            continue  # the newest run made them
        study = mine["study"].iloc[0]
        if any(same):
            run = mine[same].iloc[0]
            name = run.get("tags.mlflow.runName") or stage
            notes.setdefault(study, []).append(
                f"{stage}: the workspace's outputs (dvc.lock) are run {run['run_id'][:8]} `{name}` of "
                f"{run['start_time']:%m-%d %H:%M}, restored by DVC from its run-cache (no new run)")
        else:
            notes.setdefault(study, []).append(
                f"{stage}: no run in the store has the params of the workspace's outputs (dvc.lock)")
    return notes


WIDTH = 160  # a terminal: every table of `nnstudies compare` fits it


def table(runs, metrics: list[str] | None = None, width: int = WIDTH,
          notes: dict[str, list[str]] | None = None) -> str:
    """One Markdown table per study, best first (its view's ``sort`` metric, then ``then``):
    stage, exp name, run id, its key metrics first (the study's view, else the chosen
    ``metrics``), then the params that differ between its runs, as many columns as fit
    ``width``; the rest are named below the table, then the study's ``notes``."""
    if runs is None or len(runs) == 0:
        return "no pipeline runs found"
    available = sorted(c[len("metrics."):] for c in runs.columns if c.startswith("metrics."))
    missing = [m for m in metrics or [] if m not in available]
    if missing:
        raise UserError(f"no metric '{missing[0]}' in these runs (known: {', '.join(available)})")
    parts = []
    for study, group in runs.groupby("study", sort=True):
        parts.append("\n".join([_study_table(study, group, metrics, width),
                                 *(notes or {}).get(study, [])]))
    return "\n\n".join(parts)


def _study_table(study: str, runs, metrics: list[str] | None, width: int) -> str:
    import pandas as pd

    view = VIEWS.get(study)
    has = lambda col: col in runs and runs[col].notna().any()  # noqa: E731
    if view:  # best first; runs without the metric (a stage of --all) last, newest first
        order = [(f"metrics.{m}", up) for m, up in ((view.sort, False), (view.then, True))
                 if has(f"metrics.{m}")]
        runs = runs.sort_values([c for c, _ in order] + ["start_time"],
                                ascending=[up for _, up in order] + [False], na_position="last")
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
    """Plainly, as a reader writes it: 421642 (not 4.216e+05), 0.889, 0.0015; 4 significant
    digits, whole numbers from 1000 on."""
    import numpy as np

    if value is None or value != value:
        return ""
    if abs(value) >= 1000 or float(value).is_integer():
        return f"{value:.0f}"
    return np.format_float_positional(value, precision=4, unique=False, fractional=False, trim="-")


def _short(key: str) -> str:
    """``kmnist.train.lr`` -> ``train.lr``: the study's group prefix adds nothing in its table."""
    return key.split(".", 1)[1] if key.count(".") >= 2 else key


def _markdown(frame) -> str:
    return mdtable.render(list(frame.columns), frame.values.tolist())


# -- the MLflow UI --------------------------------------------------------------------

@dataclass(frozen=True)
class View:
    """What the runs page of one study shows: its training runs (``stages``, a LIKE pattern on
    the tag dvc.stage), best first by ``sort`` (higher is better; ties by ``then``, lower is
    better: MLflow's UI sorts by one column only), ``metrics`` and ``params``
    as columns (fnmatch patterns; every param that differs between the runs joins them), and
    the per-epoch ``curves`` as charts."""
    stages: str
    sort: str
    then: str
    metrics: tuple[str, ...]
    params: tuple[str, ...]
    curves: tuple[str, ...]


VIEWS = {
    "kmnist": View(
        "train_kmnist@%", "test_accuracy", "test_loss",
        ("test_accuracy", "test_loss", "train_loss", "parameters"),
        ("kmnist.train.epochs", "kmnist.*.lr", "kmnist.full.hidden", "kmnist.conv.channels?",
         "kmnist.conv.fc"),
        ("test_accuracy", "test_loss", "train_loss")),
    "checker": View(
        "train_checker", "accuracy", "epochs_to_100",
        ("accuracy", "epochs_to_100", "restarts_succeeded", "loss", "output_margin"),
        ("hid", "checker.train.act", "checker.train.init", "checker.train.lr",
         "checker.train.restarts"),
        ("accuracy", "loss", "restarts_at_100")),
    "seq": View(
        "train_%", "success_count", "test.error",  # train_seq@<task>, train_beyond@<net>
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
    keys = [k for k in sorted(values) if not k.startswith("tracking.")]
    differing = [k for k in keys if len(values[k]) > 1]  # first: what tells the runs apart
    params = differing + [k for k in keys if k not in differing and
                          any(fnmatch.fnmatchcase(k, p) for p in view.params)]
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


# What the server cannot set: MLflow 3.17 takes the UI's mode from the URL (the printed links
# carry it) or from the browser's stored choice, which only a click on the switch stores.
UI_HINT = ("  In a browser's first visit click \"Model training\" (top left) once: MLflow remembers "
           "it, so Compare and Experiments -> a study stay on the training runs, not GenAI.")


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
              *ui_lines(base, save_views(uri, root)), UI_HINT, sep="\n", flush=True)
        return
    check_port_free(port)
    flush_outbox(root)
    command = ui_command(port, root)
    base = f"http://127.0.0.1:{port}"
    lines = ui_lines(base, save_views(uri, root))
    print(f"MLflow UI: {base}  (store {uri}; ready in a few seconds; Ctrl-C stops it)",
          *lines, UI_HINT, sep="\n", flush=True)
    os.execve(command[0], command, ui_env())
