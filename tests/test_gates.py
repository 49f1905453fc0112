"""`nnstudies gate`: bounds from gates.yaml against real metrics files, and the tolerance
compare (`--base REV`) against the real `dvc metrics diff --json` of a temp git + DVC repo."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run

GATES = {
    "ci": {
        "metrics/train.json": {"test_accuracy": {"min": 0.8}, "final.loss": {"max": 0.5}},
        "metrics/seq.json": {"anbn.error": {"max": 0.03}, "successes": {"min": 10, "max": 16}},
    },
    "paper": {"metrics/train.json": {"test_accuracy": {"min": 0.93}}},
}


def squeeze(text: str) -> str:
    """Markdown tables with their column padding removed: `| a | b |` whatever the widths."""
    return "\n".join(re.sub(r" *\| *", " | ", line).strip() for line in text.splitlines())


def gate(cwd: Path, *args: str):
    return run([sys.executable, "-m", "nnstudies", "gate", *args], cwd, check=False, timeout=120)


@pytest.fixture
def measured(tmp_path) -> Path:
    """A project folder with real metrics JSON and gates.yaml."""
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "train.json").write_text(
        json.dumps({"test_accuracy": 0.85, "final": {"loss": 0.42}}))
    (tmp_path / "metrics" / "seq.json").write_text(
        json.dumps({"anbn": {"error": 0.01}, "successes": 12}))
    (tmp_path / "gates.yaml").write_text(yaml.safe_dump(GATES))
    (tmp_path / "params.yaml").write_text("profile: ci\n")
    return tmp_path


def edit_gates(folder: Path, profile: str, file: str, metric: str, bounds: dict) -> None:
    data = yaml.safe_load((folder / "gates.yaml").read_text())
    data[profile][file][metric] = bounds
    (folder / "gates.yaml").write_text(yaml.safe_dump(data))


def test_all_within_bounds_pass_with_markdown_table(measured):
    proc = gate(measured)  # profile from params.yaml: ci
    assert proc.returncode == 0, proc.stderr
    lines = squeeze(proc.stdout).splitlines()
    assert "| metrics file | metric | value | bound | result |" in lines
    assert "| metrics/train.json | test_accuracy | 0.85 | >= 0.8 | pass |" in lines
    assert "| metrics/train.json | final.loss | 0.42 | <= 0.5 | pass |" in lines
    assert "| metrics/seq.json | successes | 12 | >= 10, <= 16 | pass |" in lines
    assert "4/4 gates pass" in squeeze(proc.stdout)


def test_profile_flag_overrides_params_and_applies_paper_bounds(measured):
    proc = gate(measured, "--profile", "paper")
    assert proc.returncode == 1
    assert "| metrics/train.json | test_accuracy | 0.85 | >= 0.93 | **FAIL** |" in squeeze(proc.stdout)


@pytest.mark.parametrize("metric,bounds", [("test_accuracy", {"min": 0.86}),
                                           ("final.loss", {"max": 0.4})])
def test_bound_tightened_past_the_measured_value_fails(measured, metric, bounds):
    edit_gates(measured, "ci", "metrics/train.json", metric, bounds)
    proc = gate(measured)
    assert proc.returncode == 1
    assert f"| metrics/train.json | {metric} |" in squeeze(proc.stdout)
    assert proc.stdout.count("**FAIL**") == 1 and "3/4 gates pass" in squeeze(proc.stdout)


def test_missing_metric_or_file_fails_never_passes(measured):
    edit_gates(measured, "ci", "metrics/train.json", "test_acuracy", {"min": 0.0})
    proc = gate(measured)
    assert proc.returncode == 2
    assert "| metrics/train.json | test_acuracy | missing | >= 0 | **FAIL** (no such metric) |" in squeeze(proc.stdout)
    assert proc.stderr.strip().splitlines() == [
        "error: metrics/train.json: no metric 'test_acuracy' (1 gated metric(s) missing, "
        "which fails the gate; check the name in gates.yaml)"]
    (measured / "metrics" / "seq.json").unlink()
    proc = gate(measured)
    assert proc.returncode == 2 and "no such file" in squeeze(proc.stdout)
    assert "3 gated metric(s) missing" in proc.stderr


@pytest.mark.parametrize("kind", ["not utf-8", "directory"])
def test_unreadable_metrics_file_is_one_line_error_not_a_gate_failure(measured, kind):
    target = measured / "metrics" / "train.json"
    target.unlink()
    if kind == "directory":
        target.mkdir()
    else:
        target.write_bytes(b"\xff\xfe{\x00")
    proc = gate(measured)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr  # 1 is a real gate failure
    assert proc.stderr.startswith("error: metrics/train.json: ") and proc.stderr.count("\n") == 1


def test_gates_read_yaml_as_dvc_does(measured):
    """YAML 1.2, as DVC: 1e-3 is a number (PyYAML's YAML 1.1 would read a string)."""
    edit_gates(measured, "ci", "metrics/train.json", "test_accuracy", {"min": 0.5})
    text = (measured / "gates.yaml").read_text().replace("min: 0.5", "min: 5e-1")
    (measured / "gates.yaml").write_text(text)
    assert "5e-1" in text and gate(measured).returncode == 0


@pytest.mark.parametrize("text,message", [
    ("ci: [unclosed", "gates.yaml: not valid YAML at line"),
    ("- a\n- b\n", "gates.yaml: must map profiles to metrics files"),
    ("ci:\n  metrics/train.json:\n    test_accuracy: {min: high}\n",
     "ci.metrics/train.json.test_accuracy.min = 'high': must be a number"),
    ("ci:\n  metrics/train.json:\n    test_accuracy: {minimum: 0.5}\n", "must be {min: X}, {max: Y} or both"),
    ("ci:\n  metrics/train.json:\n    test_accuracy: {min: 0.9, max: 0.1}\n", "min 0.9 is above max 0.1"),
    ("ci:\n  metrics/train.json:\n    test_loss: {max: .inf}\n",
     "ci.metrics/train.json.test_loss = {max: .inf}: bounds must be finite numbers"),
    ("ci:\n  metrics/train.json:\n    test_loss: {max: null}\n",  # YAML words, not None
     "ci.metrics/train.json.test_loss.max = null: must be a number"),
    ("paper:\n  metrics/train.json:\n    test_accuracy: {min: 0.9}\n", "no profile 'ci' (known: paper)"),
])
def test_malformed_gates_file_is_one_line_error(measured, text, message):
    (measured / "gates.yaml").write_text(text)
    proc = gate(measured)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("value,shown", [("n/a", "'n/a'"), (True, "true")])  # never True
def test_non_numeric_metric_value_is_an_error(measured, value, shown):
    (measured / "metrics" / "train.json").write_text(json.dumps({"test_accuracy": value, "final": {}}))
    proc = gate(measured)
    assert proc.returncode == 2
    assert f"metrics/train.json: test_accuracy = {shown}: must be a number" in proc.stderr


# ---- Non-finite metrics (battery round 3, defect 2) ---------------------------------------

@pytest.mark.parametrize("spelled", ["Infinity", "1e999", "-Infinity", "NaN"])
def test_non_finite_gated_metric_fails_with_one_line(measured, spelled):
    """Python's json reads all four; `inf >= 0.8` is true, so an infinity used to pass."""
    (measured / "metrics" / "train.json").write_text(
        '{"test_accuracy": ' + spelled + ', "final": {"loss": 0.42}}')
    proc = gate(measured)
    shown = "Infinity" if spelled == "1e999" else spelled
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"| metrics/train.json | test_accuracy | {shown} | >= 0.8 | **FAIL** (not finite) |" in squeeze(proc.stdout)
    assert proc.stderr.splitlines() == [
        f"error: metrics/train.json: test_accuracy = {shown} is not a finite number (1 such value(s), "
        "which fails the gate; a stage never writes one: rerun it)"]
    assert "gates pass" not in proc.stdout


def test_non_finite_ungated_metric_of_a_gated_file_fails(measured):
    (measured / "metrics" / "seq.json").write_text(
        '{"anbn": {"error": 0.01, "nll": Infinity}, "successes": 12}')
    proc = gate(measured)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: metrics/seq.json: anbn.nll = Infinity is not a finite number")


# ---- The tolerance compare against a base revision ----------------------------------------

TOLERANCE = {
    "kinds": {"accuracy": {"images": 20, "per": 1000}, "loss": {"abs": 0.01},
              "epochs": {"epochs": 40}, "evaluation": {"abs": 1e-5}, "exact": {"exact": True}},
    "metrics": {
        "metrics/train.json": {"test_accuracy": "accuracy", "*loss": "loss", "epochs_*": "epochs",
                               "*": "exact"},
        "metrics/seq.json": {"*.error": "evaluation", "successes": "exact"},
        "metrics/extra.json": {"loss": "loss"},
    },
}
TRAIN = {"test_accuracy": 0.85, "test_images": 1000, "test_loss": 0.42, "final": {"loss": 0.42},
         "epochs_to_100": 593, "parameters": 7850}


def write_metrics(folder: Path, name: str, data: dict) -> None:
    (folder / "metrics" / name).write_text(json.dumps(data))


def moved_rows(stdout: str) -> list[str]:
    """The rows of the compare table (one per moved or unmapped metric)."""
    part = squeeze(stdout).split("### Every metric against", 1)[1]
    return [line for line in part.splitlines() if line.startswith("| metrics/")]


@pytest.fixture
def committed(measured) -> Path:
    """`measured` with tolerances, as a git + DVC repo whose HEAD holds the base metrics."""
    data = yaml.safe_load((measured / "gates.yaml").read_text())
    (measured / "gates.yaml").write_text(yaml.safe_dump({**data, "tolerance": TOLERANCE}, sort_keys=False))
    write_metrics(measured, "train.json", TRAIN)
    write_metrics(measured, "extra.json", {"loss": 0.5})
    (measured / "dvc.yaml").write_text("metrics:\n- metrics/train.json\n- metrics/seq.json\n"
                                       "- metrics/extra.json\n")
    run("git init -q && dvc init -q && git add -A && "
        "git -c user.name=t -c user.email=t@t commit -qm base", measured)
    return measured


def test_unchanged_metrics_pass_and_list_nothing(committed):
    proc = gate(committed, "--base", "HEAD")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert moved_rows(proc.stdout) == []
    assert "9 metrics compared: 9 unchanged, 0 moved or unmapped, 0 beyond tolerance" in proc.stdout


def test_moves_within_tolerance_pass_with_one_line_each(committed):
    write_metrics(committed, "train.json", {**TRAIN, "test_accuracy": 0.862, "test_loss": 0.415,
                                            "epochs_to_100": 553})
    proc = gate(committed, "--base", "HEAD")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert moved_rows(proc.stdout) == [
        "| metrics/train.json | epochs_to_100 | 593 | 553 | -40 epochs | ±40 epochs (epochs) | ok |",
        "| metrics/train.json | test_accuracy | 0.85 | 0.862 | +0.012 (+12 images) "
        "| ±20 images per 1000 (accuracy) | ok |",
        "| metrics/train.json | test_loss | 0.42 | 0.415 | -0.005 | ±0.01 (loss) | ok |"]
    assert "9 metrics compared: 6 unchanged, 3 moved or unmapped, 0 beyond tolerance" in proc.stdout


@pytest.mark.parametrize("sign", [1, -1], ids=["up", "down"])
def test_moves_beyond_tolerance_fail_in_either_direction(committed, sign):
    """A big improvement from no change of code is as suspect as a drop."""
    write_metrics(committed, "train.json", {**TRAIN, "test_accuracy": 0.85 + sign * 0.021,
                                            "test_loss": 0.42 + sign * 0.0101,
                                            "epochs_to_100": 593 + sign * 41,
                                            "parameters": 7850 + sign})
    write_metrics(committed, "seq.json", {"anbn": {"error": 0.01 + sign * 2e-5}, "successes": 12})
    proc = gate(committed, "--base", "HEAD")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rows = moved_rows(proc.stdout)
    assert [r.split(" | ")[1] for r in rows] == ["anbn.error", "epochs_to_100", "parameters",
                                                 "test_accuracy", "test_loss"]
    assert all(r.endswith("| **FAIL** |") for r in rows)
    images = "+21" if sign > 0 else "-21"
    assert f"({images} images) | ±20 images per 1000 (accuracy) | **FAIL** |" in rows[3]
    assert f"| {'+1' if sign > 0 else '-1'} | exact (exact) | **FAIL** |" in rows[2]
    assert "4/4 gates pass" in squeeze(proc.stdout)  # the floors alone pass
    assert "9 metrics compared: 4 unchanged, 5 moved or unmapped, 5 beyond tolerance" in proc.stdout


def test_non_finite_metric_fails_the_compare(committed):
    write_metrics(committed, "extra.json", {"loss": float("inf")})  # json writes Infinity
    proc = gate(committed, "--base", "HEAD")
    assert proc.returncode == 1
    assert moved_rows(proc.stdout) == [
        "| metrics/extra.json | loss | 0.5 | Infinity | not finite | ±0.01 (loss) | **FAIL** |"]


def test_unmapped_metric_fails_even_unchanged(committed):
    data = yaml.safe_load((committed / "gates.yaml").read_text())
    del data["tolerance"]["metrics"]["metrics/train.json"]["*"]  # parameters, test_images: no kind
    (committed / "gates.yaml").write_text(yaml.safe_dump(data))
    write_metrics(committed, "seq.json", {"anbn": {"error": 0.01}, "successes": 12, "new": 3})
    write_metrics(committed, "train.json", {**TRAIN, "epochs_run": 700})  # mapped, but new
    proc = gate(committed, "--base", "HEAD")
    assert proc.returncode == 1
    assert moved_rows(proc.stdout) == [
        "| metrics/seq.json | new | - | 3 |  | no kind in gates.yaml `tolerance.metrics` | **FAIL** |",
        "| metrics/train.json | epochs_run | - | 700 | not in base | ±40 epochs (epochs) | **FAIL** |",
        "| metrics/train.json | parameters | 7850 | 7850 |  | no kind in gates.yaml `tolerance.metrics` | **FAIL** |",
        "| metrics/train.json | test_images | 1000 | 1000 |  | no kind in gates.yaml `tolerance.metrics` | **FAIL** |"]


@pytest.mark.parametrize("section,message", [
    (None, "gates.yaml: tolerance: must be a section with `kinds`"),
    ({**TOLERANCE, "kinds": {**TOLERANCE["kinds"], "loss": {"abs": -0.1}}},
     "tolerance.kinds.loss = {abs: -0.1}: amounts must be finite and >= 0"),
    ({**TOLERANCE, "kinds": {**TOLERANCE["kinds"], "loss": {"percent": 3}}},
     "tolerance.kinds.loss = {percent: 3}: must be {abs: X}, {images: N, per: M}, {epochs: N} or {exact: true}"),
    ({**TOLERANCE, "metrics": {"metrics/x.json": {"acc": "accuracy_"}}},
     "tolerance.metrics.metrics/x.json.acc = 'accuracy_': no such kind "
     "(known: accuracy, epochs, evaluation, exact, loss)"),
    ({**TOLERANCE, "kinds": {**TOLERANCE["kinds"], "exact": {"exact": False}}},
     "tolerance.kinds.exact.exact = false: must be true"),
])
def test_malformed_tolerance_section_is_one_line_error(committed, section, message):
    data = yaml.safe_load((committed / "gates.yaml").read_text())
    data.pop("tolerance")
    if section is not None:
        data["tolerance"] = section
    (committed / "gates.yaml").write_text(yaml.safe_dump(data))
    proc = gate(committed, "--base", "HEAD")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and message in proc.stderr
    assert proc.stdout == ""  # checked before any table
    assert gate(committed).returncode == 0  # the floors alone do not need the section


def test_tolerance_section_is_no_profile(committed):
    proc = gate(committed, "--profile", "tolerance")
    assert proc.returncode == 2 and "no profile 'tolerance' (known: ci, paper)" in proc.stderr


def test_bad_base_revision_is_one_line_error(committed):
    proc = gate(committed, "--base", "no-such-rev")
    assert proc.returncode == 2 and proc.stderr.startswith("error: dvc metrics diff no-such-rev failed")


def test_every_committed_metric_has_a_kind():
    """The project's own contract: each metric of metrics/*.json names its tolerance."""
    from nnstudies import gates

    contract = gates.tolerances(ROOT / "gates.yaml")

    def leaves(data, prefix=""):
        for key, value in data.items():
            yield from leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else [prefix + key]

    files = sorted((ROOT / "metrics").glob("*.json"))
    assert len(files) >= 20
    unmapped = [f"metrics/{f.name}: {key}" for f in files for key in leaves(json.loads(f.read_text()))
                if contract.kind(f"metrics/{f.name}", key) is None]
    assert unmapped == []
