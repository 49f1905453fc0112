"""The run summary: which params, data, code and runs produced this report."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from nnstudies import yamlfile
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
    committed = flatten(yamlfile.parse(committed_text, "HEAD:params.yaml") or {}) if committed_text else {}
    used = flatten(yamlfile.read(params_path) or {})
    keys = sorted(set(committed) | set(used))
    return [(k, str(committed.get(k, "-")), str(used.get(k, "-")))
            for k in keys if committed.get(k) != used.get(k)]


# What the pipeline's results are made from (dvc.yaml's deps and params live here): the commit
# behind a report is the last one that touched these.  Committing the results afterwards, or a
# test, doc or README, changes none of them, so a regeneration in a fresh clone names the same.
INPUTS = ("src", "stages", "params.yaml", "dvc.yaml", "gates.yaml", "data")


def code_version(root: Path) -> dict:
    """The commit of the code, params and data behind the results, and whether the work tree
    differs from it in any of them."""
    inputs = ["--", *INPUTS]
    commit = _git(root, "log", "-1", "--format=%H", *inputs) or _git(root, "rev-parse", "HEAD")
    dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no", *inputs))
    return {
        "commit": commit or "unknown",
        "dirty": dirty,
        "experiment": os.environ.get("DVC_EXP_NAME", ""),
        "baseline": os.environ.get("DVC_EXP_BASELINE_REV", ""),
    }


def section(root: Path, params_path: Path, fetch_metrics: dict, profile: str) -> list:
    from nnstudies.report.document import Heading, Para, Table

    code = code_version(root)
    changed = params_diff(root, params_path)
    blocks = [
        Heading(2, "Run summary"),
        Para(f"Profile **{profile}**; code, params and data of git commit `{code['commit'][:12]}`"
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
    blocks.append(Para("Every stage run is an MLflow run (one experiment per study) tagged with "
                       "its git commit, `dvc.stage` and `dvc.exp_name`, with its timings: "
                       "`nnstudies compare` or `nnstudies ui`. Timings and run ids stay there, "
                       "not here, so that rerunning this commit reproduces this report exactly."))
    return blocks
