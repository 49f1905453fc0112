"""Metrics are written rounded by their kind (gates.yaml `tolerance`): a power of ten at most a
tenth of the kind's tolerance, so `dvc metrics diff` and `nnstudies gate --base` show no
last-digit noise; results keep every digit."""

import json
import shutil
import sys

import pytest
import yaml

from conftest import ROOT, run
from nnstudies import gates, stage
from nnstudies.errors import UserError
from nnstudies.outputs import Outputs

PARAMS = "hid: 3\ntracking: {enabled: false, required: false}\n"


@pytest.fixture
def root(tmp_path):
    (tmp_path / "params.yaml").write_text(PARAMS)
    shutil.copy(ROOT / "gates.yaml", tmp_path / "gates.yaml")  # the project's own kinds
    return tmp_path


def write(root, name: str, metrics: dict, results: dict | None = None) -> bytes:
    stage.run(name, "study", ["hid", "tracking"],
              lambda p, ctx: Outputs(metrics=metrics, results=results or {}), root=root)
    return (root / f"metrics/{name.replace('@', '_')}.json").read_bytes()


def test_the_quantum_of_each_kind_of_the_project():
    kinds = gates.tolerances(ROOT / "gates.yaml").kinds
    assert {k: gates.decimals(t) for k, t in kinds.items()} == {
        "accuracy": 3, "loss": 3, "drift": 5, "rounding": 7, "epochs": 0, "exact": None}
    for tol in kinds.values():  # the bound: a quantum at most a tenth of the tolerance
        assert tol.amount == 0 or 10.0 ** -gates.decimals(tol) <= tol.amount / 10


def test_a_metric_of_each_kind_is_written_rounded_and_the_results_keep_every_digit(root):
    conv = json.loads(write(root, "train_kmnist@conv",
                            {"test_accuracy": 0.86612345, "test_loss": 0.42612345,
                             "parameters": 421642, "train_loss": -0.000012},
                            results={"test_loss": 0.42612345}))
    assert conv == {"test_accuracy": 0.866, "test_loss": 0.426, "parameters": 421642,
                    "train_loss": 0.0}  # accuracy, loss (1e-3), exact; -0.0 written as 0.0
    assert json.loads((root / "results/train_kmnist_conv.json").read_text())["test_loss"] == 0.42612345
    lin = json.loads(write(root, "train_kmnist@lin", {"test_loss": 0.882345678912}))
    assert lin == {"test_loss": 0.8823457}  # rounding (1e-7)
    checker = json.loads(write(root, "train_checker", {
        "loss": 0.00123456789, "output_margin": 0.31415926, "epochs_to_100": 593,
        "accuracy": 0.777777777, "ok": True, "note": "text"}))
    assert checker == {"loss": 0.00123, "output_margin": 0.31416, "epochs_to_100": 593,
                       "accuracy": 0.777777777, "ok": True, "note": "text"}  # drift; epochs; exact
    sweep = json.loads(write(root, "sweep_seq", {"anbn": {"sizes": {"hid_3": {
        "rate": 0.333333333, "epochs_to_success": {"median": 1234.56}}}}}))
    assert sweep["anbn"]["sizes"]["hid_3"] == {"rate": 0.333333333,  # exact, nested
                                               "epochs_to_success": {"median": 1235.0}}


def test_two_values_within_the_quantum_write_the_same_bytes(root):
    first = write(root, "train_kmnist@conv", {"test_loss": 0.426012, "test_accuracy": 0.866,
                                             "train_loss": 1e-9})
    again = write(root, "train_kmnist@conv", {"test_loss": 0.426049, "test_accuracy": 0.86600003,
                                             "train_loss": -1e-9})
    assert again == first
    moved = write(root, "train_kmnist@conv", {"test_loss": 0.427, "test_accuracy": 0.866,
                                             "train_loss": 1e-9})
    assert moved != first  # a move of the quantum itself still shows


def test_without_gates_yaml_metrics_are_written_as_computed(root):
    (root / "gates.yaml").unlink()
    assert json.loads(write(root, "train_kmnist@conv", {"test_loss": 0.42612345})) == {
        "test_loss": 0.42612345}


def test_a_bad_tolerance_section_stops_the_stage_before_its_function(root):
    data = yaml.safe_load((root / "gates.yaml").read_text())
    data["tolerance"]["kinds"]["loss"] = {"abs": -1}
    (root / "gates.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    called = []
    with pytest.raises(UserError, match=r"gates.yaml: tolerance.kinds.loss = .*must be finite and >= 0"):
        stage.run("train_checker", "checker", ["hid", "tracking"],
                  lambda p, ctx: called.append(1), root=root)
    assert called == [] and not (root / "metrics").exists()


def gate_against_head(root):
    return run([sys.executable, "-m", "nnstudies", "gate", "--profile", "t", "--base", "HEAD"],
               root, check=False, timeout=120)


def test_gate_base_compares_the_rounded_values(root):
    data = yaml.safe_load((root / "gates.yaml").read_text())
    profile = {"metrics/train_kmnist_conv.json": {"test_accuracy": {"min": 0.8}}}
    (root / "gates.yaml").write_text(yaml.safe_dump({"t": profile, "tolerance": data["tolerance"]},
                                                    sort_keys=False))  # the rules' order matters
    (root / "dvc.yaml").write_text("metrics:\n- metrics/train_kmnist_conv.json\n")
    base = {"test_accuracy": 0.866, "test_loss": 0.426012, "train_loss": 0.10000001, "parameters": 421642}
    write(root, "train_kmnist@conv", base)
    run("git init -q && dvc init -q && git add -A && "
        "git -c user.name=t -c user.email=t@t commit -qm base", root)

    # last-digit noise of another CPU path: nothing moved
    write(root, "train_kmnist@conv", {**base, "test_loss": 0.42601234567, "train_loss": 0.09999999})
    proc = gate_against_head(root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 metrics compared: 4 unchanged, 0 moved or unmapped, 0 beyond tolerance" in proc.stdout

    # a real move, within and beyond the loss tolerance (0.02), shown at the written precision
    write(root, "train_kmnist@conv", {**base, "test_loss": 0.43612345})
    proc = gate_against_head(root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| test_loss | 0.426 | 0.436 | +0.01 | ±0.02 (loss) | ok |" in " ".join(proc.stdout.split())
    write(root, "train_kmnist@conv", {**base, "test_loss": 0.44712345})
    proc = gate_against_head(root)
    assert proc.returncode == 1
    assert "| test_loss | 0.426 | 0.447 | +0.021 | ±0.02 (loss) | **FAIL** |" in " ".join(proc.stdout.split())
