"""dvc.yaml agrees with the code, stage by stage (the policy in dvc.yaml's header):

- the params a stage declares are exactly the groups its script loads (``PARAMS``; the
  skeleton hands the stage only those, so it cannot read another);
- its deps cover every project module its script imports, directly or through other project
  modules, except the allow-list below (modules that check, move, write or log outputs but
  decide none of their content: a change there reruns nothing, the tests cover it);
- its outs are what nnstudies.layout says the stage writes;
- a stage that computes with torch, numpy or numba (its script, or a project module it imports
  outside the allow-list, imports one) depends on numerics.txt, their pinned versions: an upgrade shows in `dvc status`.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import re
from pathlib import Path

import yaml

from nnstudies import layout

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "nnstudies"
ALLOWED = {  # never deps (see the module docstring and dvc.yaml's header)
    "__init__.py", "atomic.py", "cli.py", "cpu.py", "errors.py", "gitrepo.py", "layout.py", "outputs.py",
    "params.py", "progress.py", "restore.py", "retry.py", "stage.py", "tracking.py", "live.py",
    "served.py",
    "yamlfile.py",
    # the skeleton rounds metrics by their kind in gates.yaml: the written precision, not a
    # result; as a dep, every change of a gate's code would retrain every net
    "gates.py", "mdtable.py",
}

# Modules whose own imports run only to send a finished run to MLflow: served rebuilds the
# study's nets from a record to log them as models, which shapes no DVC output.
SENDER_ONLY = {"served.py"}


def expand(dvc: dict) -> dict[str, dict]:
    """dvc.yaml's stages with every foreach expanded: {"train_kmnist@lin": {...}}."""
    stages = {}
    for name, spec in dvc["stages"].items():
        if "foreach" not in spec:
            stages[name] = spec
            continue
        items = spec["foreach"]
        pairs = items.items() if isinstance(items, dict) else ((i, i) for i in items)
        for key, item in pairs:
            def fill(value, key=key, item=item):
                if isinstance(value, str):
                    value = value.replace("${key}", str(key))
                    value = re.sub(r"\$\{item\.(\w+)\}", lambda m: str(item[m.group(1)]), value)
                    return value.replace("${item}", str(item))
                if isinstance(value, list):
                    return [fill(v) for v in value]
                if isinstance(value, dict):
                    return {fill(k): fill(v) for k, v in value.items()}
                return value
            stages[f"{name}@{key}"] = fill(copy.deepcopy(spec["do"]))
    return stages


def _names(entries) -> list[str]:
    """A dvc.yaml list of paths, each a string or {path: options}."""
    return [e if isinstance(e, str) else next(iter(e)) for e in entries or []]


def script_of(spec: dict) -> Path:
    match = re.search(r"python (stages/\w+\.py)", spec["cmd"])
    assert match, f"cmd runs no stage script: {spec['cmd']}"
    return ROOT / match.group(1)


def declared_params(spec: dict) -> set[str]:
    out = set()
    for entry in spec.get("params") or []:
        if isinstance(entry, str):
            out.add(entry)
        else:  # {file: [keys]} or {file: None} (the whole file)
            (file, keys), = entry.items()
            out |= {f"{file}:{k}" for k in keys} if keys else {f"{file}:"}
    return out


def script_params(script: Path, item: str | None) -> set[str]:
    spec = importlib.util.spec_from_file_location(f"stage_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # stage scripts run nothing on import
    return {g.format(item=item) for g in module.PARAMS}


def imported_modules(path: Path, seen: set[Path] | None = None) -> set[Path]:
    """Project modules ``path`` imports, at any depth (every import statement counts, also
    those inside functions: a lazy import still runs)."""
    seen = set() if seen is None else seen
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if not name.startswith("nnstudies."):
                continue  # the package itself: its __init__ is allowed
            rel = Path(*name.split(".")[1:])
            for candidate in (PACKAGE / rel.with_suffix(".py"), PACKAGE / rel / "__init__.py"):
                if candidate.is_file() and candidate not in seen:
                    seen.add(candidate)
                    if candidate.name not in SENDER_ONLY:
                        imported_modules(candidate, seen)
    return seen


NUMERIC = {"torch", "torchvision", "numpy", "numba"}  # numerics.txt's packages


def third_party(paths) -> set[str]:
    """Top-level names of the packages the files import (at any place in them)."""
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.partition(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.partition(".")[0])
    return names


def problems(dvc: dict) -> list[str]:
    found = []
    for stage, spec in expand(dvc).items():
        script = script_of(spec)
        item = stage.partition("@")[2] or None
        deps = [ROOT / d for d in _names(spec.get("deps"))]
        if not any(d == script for d in deps):
            found.append(f"{stage}: its script {script.relative_to(ROOT)} is not a dep")
        declared = declared_params(spec)
        if declared != {"params.yaml:"}:
            loaded = script_params(script, item)
            if declared != loaded:
                found.append(f"{stage}: dvc.yaml params {sorted(declared)} != the script's "
                             f"PARAMS {sorted(loaded)}")
        computing = {m for m in imported_modules(script)
                     if not (m.name in ALLOWED and m.parent == PACKAGE)}
        if third_party({script, *computing}) & NUMERIC \
                and ROOT / "numerics.txt" not in deps:
            found.append(f"{stage}: computes with torch/numpy/numba but does not depend on "
                         "numerics.txt")
        for module in sorted(imported_modules(script)):
            if module.name in ALLOWED and module.parent == PACKAGE:
                continue
            if not any(module == d or d in module.parents for d in deps):
                found.append(f"{stage}: imports {module.relative_to(ROOT)} but does not depend on it")
        outs = [Path(o) for key in ("outs", "metrics", "plots") for o in _names(spec.get(key))]
        for out in outs:
            if not layout.owns(stage, out):
                found.append(f"{stage}: out {out} is not one of its outputs in nnstudies.layout")
        for expected in layout.outs(stage):
            if not any(o == expected or expected in o.parents for o in outs):
                found.append(f"{stage}: nnstudies.layout says it writes {expected}, dvc.yaml does not")
    return found


def test_dvc_yaml_agrees_with_the_code():
    assert problems(yaml.safe_load((ROOT / "dvc.yaml").read_text())) == []


def test_a_removed_dep_is_caught():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    spec = dvc["stages"]["train_seq"]["do"]
    removed = next(d for d in spec["deps"] if str(d).startswith("src/nnstudies/seq/"))
    spec["deps"].remove(removed)
    found = problems(dvc)
    assert any(f"imports {removed}" in p for p in found), found


def test_an_undeclared_param_and_a_stray_out_are_caught():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    spec = dvc["stages"]["train_kmnist"]["do"]
    spec["params"] = [p for p in spec["params"] if p != "tracking"]
    spec["outs"] = [*spec["outs"], "models/elsewhere.pt"]
    found = problems(dvc)
    assert any(p.startswith("train_kmnist@lin: dvc.yaml params") for p in found), found
    assert "train_kmnist@conv: out models/elsewhere.pt is not one of its outputs in nnstudies.layout" in found


def test_numerics_txt_pins_what_is_installed_and_constraints_take_it_from_there():
    from importlib.metadata import version

    pins = dict(line.split("==") for line in (ROOT / "numerics.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    assert {name: version(name) for name in pins} == pins
    assert set(pins) >= NUMERIC
    constraints = (ROOT / "constraints.txt").read_text().splitlines()
    assert constraints[0].startswith("-c numerics.txt")
    assert not [c for c in constraints if c.partition("==")[0] in pins]  # one source
