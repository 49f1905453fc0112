"""Study 1: the KMNIST nets, their training loop and figures, on the bundled real sample."""

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from conftest import ROOT, SAMPLE, tool_env
from nnstudies import kmnist
from nnstudies.errors import UserError
from nnstudies.kuzu import models, plots
from nnstudies.kuzu.train import confusion_matrix, fit, pick_device, tensor_batches

# One epoch on the 8,000-image sample, measured: lin 0.673, full 0.658, conv 0.496
# (chance is 0.10).  The floors leave a margin for other CPUs and torch builds.
ONE_EPOCH_FLOOR = {"lin": 0.55, "full": 0.55, "conv": 0.35}


@pytest.fixture(scope="module")
def sample():
    return kmnist.load_split(ROOT / SAMPLE, train=True), kmnist.load_split(ROOT / SAMPLE, train=False)


def train(sample, net, sizes=None, epochs=1, limit=None, shuffle=False, log=None):
    (x, y), test = sample
    cpu = torch.device("cpu")
    return fit(net, sizes or {}, tensor_batches((x[:limit], y[:limit]), 64, cpu, 0 if shuffle else None),
               tensor_batches(test, 1000, cpu), lr=0.01, momentum=0.5, epochs=epochs, seed=0,
               device=cpu, log_interval=100, log=log or (lambda line: None))


@pytest.mark.parametrize("net, sizes, count", [
    ("lin", {}, 7850),
    ("full", {}, 159010),              # the seed's formula wrote 794 for 784+1 ...
    ("full", {"hidden": 37}, 795 * 37 + 10),
    ("conv", {}, 421642),
    ("conv", {"channels1": 8, "channels2": 16, "kernel": 5, "fc": 32}, 8 * 26 + 16 * 201 + 785 * 32 + 330),
    ("conv", {"kernel": 4}, 32 * 17 + 64 * 513 + (64 * 7 * 7 + 1) * 128 + 1290),  # even kernel: 29->14->15->7
])
def test_shapes_and_parameter_counts(net, sizes, count):
    model = models.build(net, sizes)
    out = model(torch.randn(5, 1, 28, 28))
    assert out.shape == (5, 10)
    assert torch.allclose(out.exp().sum(dim=1), torch.ones(5), atol=1e-5)  # log-probabilities
    assert models.count_parameters(model) == count == model.formula()[1]


@pytest.mark.parametrize("net", ["lin", "full", "conv"])
def test_one_epoch_on_real_sample_beats_floor_and_logs_course_format(sample, net):
    lines = []
    result = train(sample, net, log=lines.append)
    accuracy = result.history[-1]["test_accuracy"]
    assert accuracy >= ONE_EPOCH_FLOOR[net], f"{net}: {accuracy}"
    # 8000 images / 64 = 125 batches: progress lines at batches 0 and 100.
    assert re.fullmatch(r"Train Epoch: 1 \[0/8000 \(0%\)\]\tLoss: \d+\.\d{6}", lines[0])
    assert re.fullmatch(r"Train Epoch: 1 \[6400/8000 \(80%\)\]\tLoss: \d+\.\d{6}", lines[1])
    report = lines[2]
    assert report.startswith("<class 'numpy.ndarray'>\n[[")
    correct = round(accuracy * 1000)
    assert report.endswith(f"\n\nTest set: Average loss: {result.history[-1]['test_loss']:.4f}, "
                           f"Accuracy: {correct}/1000 ({correct / 10:.0f}%)\n")
    assert result.confusion.sum() == 1000 and np.trace(result.confusion) == correct


@pytest.mark.parametrize("net, shuffle", [("conv", False), ("full", True)])
def test_same_seed_same_metrics_and_weights(sample, net, shuffle):
    runs = [train(sample, net, limit=1500, epochs=2, shuffle=shuffle) for _ in range(2)]
    assert runs[0].history[-1]["test_loss"] == runs[1].history[-1]["test_loss"]
    assert [r["train_loss"] for r in runs[0].history] == [r["train_loss"] for r in runs[1].history]
    assert torch.equal(runs[0].predictions, runs[1].predictions)
    for a, b in zip(runs[0].model.parameters(), runs[1].model.parameters()):
        assert torch.equal(a, b)


def test_confusion_rows_are_true_class_columns_predicted():
    matrix = confusion_matrix(torch.tensor([0, 0, 1, 2]), torch.tensor([1, 1, 1, 0]), classes=3)
    assert matrix.tolist() == [[0, 2, 0], [0, 1, 0], [1, 0, 0]]
    assert plots.most_confused_pairs(matrix, 5) == [(0, 1, 2), (2, 0, 1)]


def test_cuda_requested_without_cuda_is_one_line_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(UserError, match="kuzu.train.device = 'cuda'"):
        pick_device("cuda")
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["kuzu"]["train"]["device"] = "cuda"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    proc = subprocess.run([sys.executable, str(ROOT / "stages" / "train_kmnist.py"), "lin",
                           "--data", str(ROOT / SAMPLE), "--model", "m.pt", "--metrics", "m.json",
                           "--plots", "plots"], cwd=tmp_path, env=tool_env(NNSTUDIES_TRACKING="off"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: kuzu.train.device")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing written


def test_memory_estimate_stops_oversized_nets_before_work(tmp_path):
    """The largest nets the schema allows would need tens of GB: refused in one line."""
    from conftest import ROOT, run, set_params

    from nnstudies.kuzu import sizes

    assert sizes.memory_bytes("conv", dict(channels1=32, channels2=64, kernel=3, fc=128),
                              64, 1000) < sizes.MEMORY_BUDGET  # the course's net fits
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    set_params(tmp_path, **{"kuzu.conv.channels1": 1024, "kuzu.conv.channels2": 1024,
                            "kuzu.conv.kernel": 7, "kuzu.conv.fc": 100000})
    proc = run(["python", str(ROOT / "stages" / "train_kmnist.py"), "conv", "--data", "nowhere",
                "--model", "m.pt", "--metrics", "m.json", "--plots", "p"], tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: params.yaml: kuzu.conv {'channels1': 1024")
    assert "GB, over the 4 GB budget" in proc.stderr and sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
