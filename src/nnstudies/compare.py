"""Compare pipeline runs in MLflow: a Markdown table of the latest runs, and the local UI.

``latest`` reads the pipeline's MLflow experiments (one per study) with
``mlflow.search_runs`` and keeps the newest run of each (stage, DVC experiment) pair, so
the workspace run and every ``dvc exp run`` of a stage sit side by side.  ``ui_command``
is the ``mlflow server`` that ``nnstudies ui`` starts: loopback only, one worker,
background jobs and telemetry off, against the same store the stages log to.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from nnstudies import tracking
from nnstudies.errors import UserError


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def _require_store(uri: str) -> None:
    path = _sqlite_path(uri)
    if path is not None and not path.exists():
        raise UserError(f"no MLflow database at {path}: run the pipeline (`dvc repro`) first, "
                        "or set MLFLOW_TRACKING_URI")


def latest(stage_prefix: str | None = None, exp_name: str | None = None, uri: str | None = None):
    """DataFrame of the newest run per (stage, exp name), sorted by stage then start time."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = uri or tracking.tracking_uri()
    _require_store(uri)
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiments = [e for e in (client.get_experiment_by_name(n) for n in tracking.STUDIES.values()) if e]
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs([e.experiment_id for e in experiments],
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
    return runs.sort_values(["stage", "start_time"], ascending=[True, False])


def table(runs, metrics: list[str] | None = None) -> str:
    """Markdown: stage, exp name, run id, start time, status, and the chosen (or all) metrics."""
    if runs is None or len(runs) == 0:
        return "no pipeline runs found"
    available = sorted(c[len("metrics."):] for c in runs.columns if c.startswith("metrics."))
    missing = [m for m in metrics or [] if m not in available]
    if missing:
        raise UserError(f"no metric '{missing[0]}' in these runs (known: {', '.join(available)})")
    chosen = metrics or available
    header = ["stage", "exp name", "run id", "start time (UTC)", "status", *chosen]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for _, run in runs.iterrows():
        values = [run.get(f"metrics.{m}") for m in chosen]
        cells = [run["stage"], run["exp"] or "(workspace)", run["run_id"][:12],
                 run["start_time"].strftime("%Y-%m-%d %H:%M:%S"), run["status"],
                 *("" if v != v or v is None else f"{v:.4g}" for v in values)]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


# -- the MLflow UI --------------------------------------------------------------------

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
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            raise UserError(f"port {port} on 127.0.0.1 is in use: pass --port with a free one")


def serve(port: int) -> None:
    """Replace this process with the MLflow server, so its PID and Ctrl-C are the server's."""
    root = tracking.repo_root()
    command = ui_command(port, root)
    check_port_free(port)
    print(f"MLflow UI: http://127.0.0.1:{port}  (store {tracking.tracking_uri(root)}; "
          "Ctrl-C stops it)", flush=True)
    os.execve(command[0], command, ui_env())
