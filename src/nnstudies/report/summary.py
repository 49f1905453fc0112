"""The run summary: which params, data, code and runs produced this report."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from nnstudies import gitrepo, yamlfile
from nnstudies.params import flatten


def params_diff(root: Path, params_path: Path) -> list[tuple[str, str, str]]:
    """(key, committed value, value used) for every param that differs from HEAD's params.yaml."""
    committed = gitrepo.committed_params(root)
    used = flatten(yamlfile.read(params_path) or {})
    keys = sorted(set(committed) | set(used))
    return [(k, str(committed.get(k, "-")), str(used.get(k, "-")))
            for k in keys if committed.get(k) != used.get(k)]


# What the pipeline's results are made from (dvc.yaml's deps and params live here): the commit
# behind a report is the last one that touched these.  Committing the results afterwards, or a
# test, doc or README, changes none of them, so a regeneration in a fresh clone names the same.
INPUTS = ("src", "stages", "params.yaml", "dvc.yaml", "gates.yaml", "numerics.txt", "data")


def code_version(root: Path) -> dict:
    """The commit of the code, params and data behind the results, and whether the work tree
    differs from it in any of them."""
    inputs = ["--", *INPUTS]
    commit = gitrepo.output(root, "log", "-1", "--format=%H", *inputs) or gitrepo.head(root)
    dirty = bool(gitrepo.output(root, "status", "--porcelain", "--untracked-files=no", *inputs))
    return {
        "commit": commit or "unknown",
        "dirty": dirty,
        "experiment": os.environ.get("DVC_EXP_NAME", ""),
        "baseline": os.environ.get("DVC_EXP_BASELINE_REV", ""),
    }


def _lock(root: Path) -> dict:
    """dvc.lock's stages that dvc.yaml still has (DVC keeps the entries of removed stages), or
    nothing where no stage has run yet (a report built by hand in a copy)."""
    path, dvc_yaml = Path(root) / "dvc.lock", Path(root) / "dvc.yaml"
    if not path.exists():
        return {}
    stages = (yamlfile.read(path) or {}).get("stages", {})
    if dvc_yaml.exists():
        defined = (yamlfile.read(dvc_yaml) or {}).get("stages", {})
        stages = {k: v for k, v in stages.items() if k.partition("@")[0] in defined}
    return {"stages": stages}


def lock_stages(root: Path) -> list[str]:
    """The stages dvc.lock records (foreach items as name@item)."""
    return list(_lock(root).get("stages", {}))


def fingerprints(root: Path) -> dict[str, str]:
    """Per stage (the report itself aside), a hash of what dvc.lock says it was made from: its
    deps' md5s and its params.  A commit that only regenerates results changes none of them."""
    out = {}
    for name, stage in _lock(root).get("stages", {}).items():
        if name == "report":
            continue
        inputs = {"deps": sorted((d["path"], d.get("md5") or d.get("hash", ""))
                                 for d in stage.get("deps", [])),
                  "params": stage.get("params", {})}
        out[name] = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:12]
    return out


# The README's set-up line (pinned environment); the report repeats it so that it stands alone.
SETUP = "python3 -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e . && . .venv/bin/activate"


def commands(commit: str, experiment: str, changed: list[tuple[str, str, str]]) -> str:
    """The shell commands that rebuild this report from its commit: a plain `dvc repro` when
    the params are the committed ones, else a DVC experiment setting exactly those that differ."""
    lines = [f"git checkout {commit}", SETUP]
    if changed:
        sets = " ".join(f"-S '{key}={used}'" for key, _, used in changed if used != "-")
        name = f" -n {experiment}" if experiment else ""
        lines.append(f"dvc exp run{name} {sets}")
    else:
        lines.append("dvc repro")
    return "\n".join(lines)


def _combined(root: Path) -> str:
    return hashlib.sha256(json.dumps(fingerprints(root), sort_keys=True).encode()).hexdigest()[:12]


def section(root: Path, params_path: Path, fetch: dict, profile: str) -> list:
    """``fetch``: results/fetch_kmnist.json (the data this run read)."""
    from nnstudies.report.document import Code, Heading, Para, Table

    code = code_version(root)
    changed = params_diff(root, params_path)
    blocks = [
        Heading(2, "Appendix F: run summary"),
        Para(f"Profile **{profile}**; code, params and data of git commit `{code['commit'][:12]}`"
             + (" (with uncommitted changes)" if code["dirty"] else "")
             + (f"; DVC experiment **{code['experiment']}** on baseline `{code['baseline'][:12]}`"
                if code["experiment"] else "; run in the workspace (not a DVC experiment)") + "."),
        *([Para("What every stage was made from, as dvc.lock records it: a hash of its deps' "
                "md5s and its params (the same after a commit that only regenerates results; "
                f"all stages together: `{_combined(root)}`)."),
           Table(["stage", "inputs (dvc.lock)"],
                 [[k, f"`{v}`"] for k, v in fingerprints(root).items()])]
          if fingerprints(root) else [Para("No dvc.lock: no stage's inputs are recorded.")]),
        Para(f"KMNIST source: `{fetch['source']}` ({fetch['train_images']:,} training "
             f"and {fetch['test_images']:,} test images, every file md5-verified)."),
        Table(["file", "md5", "bytes"],
              [[f["name"], f["md5"], f"{f['bytes']:,}"] for f in fetch["files"]]),
    ]
    if changed:
        blocks.append(Table(["param", "committed params.yaml", "used here"], changed,
                            caption="Params that differ from the committed params.yaml."))
    else:
        blocks.append(Para("Params: exactly the committed params.yaml."))
    blocks += [Para("To rebuild this report (in a clone of the repository, on any machine with "
                    "python3 and git; no network needed but the package index):"),
               Code(commands(code["commit"][:12], code["experiment"], changed))]
    blocks.append(Para("Every stage run is an MLflow run (one experiment per study) tagged with "
                       "its git commit, `dvc.stage` and `dvc.exp_name`, with its timings: "
                       "`nnstudies compare` or `nnstudies ui`. Timings and run ids stay there, "
                       "not here, so that rerunning this commit reproduces this report exactly."))
    return blocks
