"""The run summary: which params, data, code and runs produced this report."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from nnstudies.params import flatten


def _git(root: Path, *args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def params_diff(root: Path, params_path: Path) -> list[tuple[str, str, str]]:
    """(key, committed value, value used) for every param that differs from HEAD's params.yaml."""
    committed_text = _git(root, "show", "HEAD:params.yaml")
    committed = flatten(yaml.safe_load(committed_text) or {}) if committed_text else {}
    used = flatten(yaml.safe_load(Path(params_path).read_text()) or {})
    keys = sorted(set(committed) | set(used))
    return [(k, str(committed.get(k, "-")), str(used.get(k, "-")))
            for k in keys if committed.get(k) != used.get(k)]


def code_version(root: Path) -> dict:
    commit = _git(root, "rev-parse", "HEAD")
    dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no"))
    return {
        "commit": commit or "unknown",
        "dirty": dirty,
        "experiment": os.environ.get("DVC_EXP_NAME", ""),
        "baseline": os.environ.get("DVC_EXP_BASELINE_REV", ""),
    }


def mlflow_runs(exp_name: str) -> list[list[str]]:
    """[stage, run id, wall time] of the newest MLflow run of each stage for this experiment.

    Empty when tracking is off or the store is unreachable: the report never fails on it.
    """
    from nnstudies import compare

    try:
        runs = compare.latest(exp_name=exp_name)
    except Exception:  # noqa: BLE001 - a missing or unreachable store just means no run ids
        return []
    if runs is None:
        return []
    import pandas as pd

    rows = []
    for _, run in runs.iterrows():
        end, start = run["end_time"], run["start_time"]
        seconds = f"{(end - start).total_seconds():.1f}" if pd.notna(end) else "-"
        rows.append([run["stage"], run["run_id"], seconds, run["status"]])
    return rows


def section(root: Path, params_path: Path, fetch_metrics: dict, profile: str) -> list:
    from nnstudies.report.document import Heading, Para, Table

    code = code_version(root)
    changed = params_diff(root, params_path)
    runs = mlflow_runs(code["experiment"])
    blocks = [
        Heading(2, "Run summary"),
        Para(f"Profile **{profile}**; git commit `{code['commit'][:12]}`"
             + (" (with uncommitted changes)" if code["dirty"] else "")
             + (f"; DVC experiment **{code['experiment']}** on baseline `{code['baseline'][:12]}`"
                if code["experiment"] else "; run in the workspace (not a DVC experiment)") + "."),
        Para(f"KMNIST source: `{fetch_metrics['source']}` ({fetch_metrics['train_images']:,} training "
             f"and {fetch_metrics['test_images']:,} test images, every file md5-verified)."),
        Table(["file", "md5", "bytes"],
              [[name, info["md5"], f"{info['bytes']:,}"] for name, info in fetch_metrics["files"].items()]),
    ]
    if changed:
        blocks.append(Table(["param", "committed params.yaml", "used here"], changed,
                            caption="Params that differ from the committed params.yaml."))
    else:
        blocks.append(Para("Params: exactly the committed params.yaml."))
    if runs:
        blocks.append(Table(["stage", "MLflow run id", "wall time (s)", "status"], runs,
                            caption="The newest MLflow run of each stage (a stage restored from "
                                    "DVC's run-cache shows the run that first produced it)."))
    else:
        blocks.append(Para("MLflow: no runs found (tracking off or the store unreachable)."))
    return blocks
