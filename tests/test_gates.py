"""`nnstudies gate`: bounds from gates.yaml against real metrics files, and the regression
budget against the real `dvc metrics diff --json` of a temp git + DVC repo."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from conftest import SAMPLE, run, set_params

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
    ("paper:\n  metrics/train.json:\n    test_accuracy: {min: 0.9}\n", "no profile 'ci' (known: paper)"),
])
def test_malformed_gates_file_is_one_line_error(measured, text, message):
    (measured / "gates.yaml").write_text(text)
    proc = gate(measured)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_negative_budget_is_an_error(measured):
    proc = gate(measured, "--base", "HEAD", "--max-drop", "-0.1")
    assert proc.returncode == 2 and proc.stderr == "error: --max-drop -0.1: must be a number >= 0\n"


def test_non_numeric_metric_value_is_an_error(measured):
    (measured / "metrics" / "train.json").write_text(json.dumps({"test_accuracy": "n/a", "final": {}}))
    proc = gate(measured)
    assert proc.returncode == 2 and "metrics/train.json: test_accuracy = 'n/a': must be a number" in proc.stderr


@pytest.mark.pipeline
def test_regression_budget_against_dvc_metrics_diff(repo):
    """Commit a fetched sample as the base, then a workspace whose counts moved."""
    set_params(repo, **{"kmnist.source": SAMPLE})
    run(["dvc", "repro", "fetch_kmnist"], repo, NNSTUDIES_TRACKING="off")
    (repo / "gates.yaml").write_text(yaml.safe_dump({"ci": {"metrics/fetch_kmnist.json": {
        "train_images": {"min": 1000}, "test_images": {"max": 5000}}}}))
    run("git add -A && git -c user.name=t -c user.email=t@t commit -q --allow-empty -m base", repo)
    metrics_file = repo / "metrics" / "fetch_kmnist.json"
    measured = json.loads(metrics_file.read_text())
    assert (measured["train_images"], measured["test_images"]) == (8000, 1000)

    # A run that lost 30 training images and gained 20 test images (max-bounded: worse).
    metrics_file.write_text(json.dumps({**measured, "train_images": 7970, "test_images": 1020}))
    ok = gate(repo, "--profile", "ci", "--base", "HEAD", "--max-drop", "30")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "| metrics/fetch_kmnist.json | train_images | 7970 | was 8000 (-30) | pass |" in squeeze(ok.stdout)
    assert "| metrics/fetch_kmnist.json | test_images | 1020 | was 1000 (+20) | pass |" in squeeze(ok.stdout)
    # Every moved metric is listed with its change, gated or not; unchanged ones are not.
    assert "### Every metric that differs from `HEAD`: 2" in squeeze(ok.stdout)
    assert "| metrics/fetch_kmnist.json | train_images | 8000 | 7970 | -30 |" in squeeze(ok.stdout)
    assert "| metrics/fetch_kmnist.json | test_images | 1000 | 1020 | +20 |" in squeeze(ok.stdout)
    tight = gate(repo, "--profile", "ci", "--base", "HEAD", "--max-drop", "25")
    assert tight.returncode == 1
    assert "| train_images | 7970 | was 8000 (-30) | **FAIL** |" in squeeze(tight.stdout)
    assert "| test_images | 1020 | was 1000 (+20) | pass |" in squeeze(tight.stdout)
    assert "2/2 gates pass" in squeeze(tight.stdout) and "1/2 within the budget" in squeeze(tight.stdout)
    # Improvements never count against the budget.
    metrics_file.write_text(json.dumps({**measured, "train_images": 9000, "test_images": 900}))
    assert gate(repo, "--profile", "ci", "--base", "HEAD").returncode == 0
    bad_rev = gate(repo, "--profile", "ci", "--base", "no-such-rev")
    assert bad_rev.returncode == 2 and bad_rev.stderr.startswith("error: dvc metrics diff no-such-rev failed")


def test_changes_lists_every_moved_metric():
    from nnstudies import gates

    diff = {"metrics/a.json": {"acc": {"old": 0.5, "new": 0.5, "diff": 0},
                               "loss": {"old": 0.25, "new": 0.125, "diff": -0.125},
                               "torch": {"old": "2.1", "new": "2.2"}},
            "metrics/b.json": {"count": {"old": None, "new": 3}}}
    assert gates.changes(diff) == [
        ["metrics/a.json", "loss", "0.25", "0.125", "-0.125"],
        ["metrics/a.json", "torch", "2.1", "2.2", "changed"],
        ["metrics/b.json", "count", "None", "3", "changed"]]
