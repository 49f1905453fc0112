"""Study 1: the KMNIST nets, their training loop, the analysis of their confusion matrices,
and the two stages run in process on a tiny subset of the bundled real sample."""

import gzip
import hashlib
import json
import re

import numpy as np
import pytest
import torch

from conftest import ROOT, SAMPLE
from nnstudies import stage
from nnstudies.errors import UserError
from nnstudies.kmnist import analysis, data, models, sizes
from nnstudies.kmnist.train import confusion_matrix, fit, pick_device, tensor_batches

# One epoch on the 8,000-image sample, measured: lin 0.673, full 0.658 (chance is 0.10).
# The floors leave a margin for other CPUs and torch builds.
ONE_EPOCH_FLOOR = {"lin": 0.55, "full": 0.55}
NAMES = data.CLASS_NAMES


@pytest.fixture(scope="module")
def sample():
    return data.load_split(ROOT / SAMPLE, train=True), data.load_split(ROOT / SAMPLE, train=False)


def train(sample, net, sizes=None, epochs=1, limit=None, shuffle=False, log=None):
    (x, y), test = sample
    cpu = torch.device("cpu")
    return fit(net, sizes or {}, tensor_batches((x[:limit], y[:limit]), 64, cpu, 0 if shuffle else None),
               tensor_batches(test, 1000, cpu), lr=0.01, momentum=0.5, epochs=epochs, seed=0,
               device=cpu, log_interval=100, log=log or (lambda line: None))


@pytest.mark.parametrize("net, sizes, count", [
    ("lin", {}, 7850),
    ("full", {"hidden": 200}, 159010),              # the seed's formula wrote 794 for 784+1 ...
    ("full", {"hidden": 37}, 795 * 37 + 10),
    ("conv", {"channels1": 32, "channels2": 64, "kernel": 3, "fc": 128}, 421642),
    ("conv", {"channels1": 8, "channels2": 16, "kernel": 5, "fc": 32}, 8 * 26 + 16 * 201 + 785 * 32 + 330),
    ("conv", {"channels1": 32, "channels2": 64, "kernel": 4, "fc": 128},  # even kernel: 29->14->15->7
     32 * 17 + 64 * 513 + (64 * 7 * 7 + 1) * 128 + 1290),
])
def test_shapes_and_parameter_counts(net, sizes, count):
    model = models.build(net, sizes)
    out = model(torch.randn(5, 1, 28, 28))
    assert out.shape == (5, 10)
    assert torch.allclose(out.exp().sum(dim=1), torch.ones(5), atol=1e-5)  # log-probabilities
    assert models.count_parameters(model) == count == model.formula()[1]


@pytest.mark.parametrize("net", ["lin", "full"])
def test_one_epoch_on_real_sample_beats_floor_and_logs_course_format(sample, net):
    lines = []
    result = train(sample, net, log=lines.append)
    accuracy = result.history[-1]["test_accuracy"]
    assert accuracy >= ONE_EPOCH_FLOOR[net], f"{net}: {accuracy}"
    # 8000 images / 64 = 125 batches: progress lines at batches 0 and 100.
    assert re.fullmatch(r"Train Epoch: 1 \[0/8000 \(0%\)\]\tLoss: \d+\.\d{6}", lines[0])
    assert re.fullmatch(r"Train Epoch: 1 \[6400/8000 \(80%\)\]\tLoss: \d+\.\d{6}", lines[1])
    assert [(x["images"], x["percent"]) for x in result.last_lines] == [(0, 0), (6400, 80)]
    assert lines[1].endswith(f"{result.last_lines[1]['loss']:.6f}")  # the same numbers as data
    report = lines[2]
    assert report.startswith("<class 'numpy.ndarray'>\n[[")
    correct = round(accuracy * 1000)
    assert report.endswith(f"\n\nTest set: Average loss: {result.history[-1]['test_loss']:.4f}, "
                           f"Accuracy: {correct}/1000 ({correct / 10:.0f}%)\n")
    assert result.confusion.sum() == 1000 and np.trace(result.confusion) == correct


@pytest.mark.parametrize("net, shuffle", [("conv", False), ("full", True)])
def test_same_seed_same_metrics_and_weights(sample, net, shuffle):
    runs = [train(sample, net, limit=640, epochs=2, shuffle=shuffle) for _ in range(2)]
    assert runs[0].history[-1]["test_loss"] == runs[1].history[-1]["test_loss"]
    assert [r["train_loss"] for r in runs[0].history] == [r["train_loss"] for r in runs[1].history]
    assert torch.equal(runs[0].predictions, runs[1].predictions)
    for a, b in zip(runs[0].model.parameters(), runs[1].model.parameters()):
        assert torch.equal(a, b)


# ---------------------------------------------------------------------------
# The analysis of a confusion matrix: known answers.


def test_confusion_rows_are_true_class_columns_predicted():
    matrix = confusion_matrix(torch.tensor([0, 0, 1, 2]), torch.tensor([1, 1, 1, 0]), classes=3)
    assert matrix.tolist() == [[0, 2, 0], [0, 1, 0], [1, 0, 0]]


def known_matrix():
    """10 classes, 20 test images each; the largest confusion su -> ma (7), then ki -> wo and
    re -> ma tied at 5, then na -> o (4)."""
    m = np.diag([20] * 10)
    for (t, p), n in {("su", "ma"): 7, ("ki", "wo"): 5, ("re", "ma"): 5, ("na", "o"): 4,
                      ("o", "ki"): 1}.items():
        i, j = NAMES.index(t), NAMES.index(p)
        m[i, j] += n
        m[i, i] -= n
    return m


def test_confused_pairs_keep_ties_in_order():
    pairs = analysis.confused_pairs(known_matrix(), NAMES, top=2)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [
        ("su", "ma", 7), ("ki", "wo", 5), ("re", "ma", 5)]
    assert pairs[0]["share"] == 7 / 20
    # top=3 cuts at 5 too: the tie is kept, na -> o (4) is not in.
    assert len(analysis.confused_pairs(known_matrix(), NAMES, top=3)) == 3
    assert [p["count"] for p in analysis.confused_pairs(known_matrix(), NAMES, top=4)] == [7, 5, 5, 4]
    assert analysis.confused_pairs(np.diag([5] * 10), NAMES) == []  # nothing confused


def test_per_class_accuracy():
    rows = analysis.per_class(known_matrix(), NAMES)
    by_class = {r["class"]: r for r in rows}
    assert by_class["su"] == {"class": "su", "images": 20, "correct": 13, "accuracy": 13 / 20}
    assert by_class["ya"]["accuracy"] == 1.0 and len(rows) == 10


def test_likeness_of_identical_and_disjoint_class_means():
    images = np.zeros((4, 28, 28))
    images[0, :14], images[1, :14] = 1, 1       # classes 0 and 1: the same ink (top half)
    images[2, 14:] = 1                          # class 2: the other half
    images[3, :, :14] = 1                       # class 3: the left half, unrelated to both
    likeness = analysis.mean_image_likeness(images, np.array([0, 1, 2, 3]), 4)
    assert likeness[0, 1] == pytest.approx(1) and likeness[0, 2] == pytest.approx(-1)
    pairs = [{"true": "a", "predicted": "c"}, {"true": "a", "predicted": "b"}]
    summary = analysis.likeness_summary(likeness, pairs, ["a", "b", "c", "d"])
    assert [p["likeness_rank"] for p in pairs] == [5, 1] and summary["class_pairs"] == 6


# ---------------------------------------------------------------------------
# The stages in process, on a tiny subset of the bundled sample.

TINY = """\
tracking: {enabled: false, required: false}
kmnist:
  source: %s
  train: {seed: 0, epochs: 2, batch_size: 64, test_batch_size: 100, shuffle: false,
          device: cpu, log_interval: 5, threads: 1,
          cpu_path: host}
  lin: {lr: 0.05, momentum: 0.5}
  full: {lr: 0.05, momentum: 0.5, hidden: 20}
  conv: {lr: 0.05, momentum: 0.5, channels1: 4, channels2: 8, kernel: 3, fc: 16}
  wide: {lr: 0.05, momentum: 0.5, hidden: 40}
"""


def write_subset(out, train_images=640, test_images=200):
    """The first images of the sample as a mirror of its own: four gz files and MD5SUMS."""
    out.mkdir(parents=True)
    sums = []
    for name in data.FILES:
        count = train_images if name.startswith("train") else test_images
        array = data.parse_idx((ROOT / SAMPLE / name).read_bytes(), name)[:count]
        header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
        gz = gzip.compress(header + array.tobytes(), mtime=0)
        (out / name).write_bytes(gz)
        sums.append(f"{hashlib.md5(gz).hexdigest()}  {name}\n")
    (out / "MD5SUMS").write_text("".join(sums))
    return out


def load_stage(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """fetch_kmnist and the three train_kmnist stages, as `dvc repro` would run them."""
    root = tmp_path_factory.mktemp("kmnist")
    (root / "params.yaml").write_text(TINY % write_subset(root / "mirror"))
    fetch, trainer = load_stage("fetch_kmnist"), load_stage("train_kmnist")
    stage.run("fetch_kmnist", "kmnist", fetch.PARAMS, fetch.produce, root=root)
    for net in ("lin", "full", "conv", "wide"):
        stage.run(f"train_kmnist@{net}", "kmnist", trainer.PARAMS, trainer.produce, root=root, cpu_group="kmnist.train")
    compare = load_stage("compare_kmnist")
    stage.run("compare_kmnist", "kmnist", compare.PARAMS, compare.produce, root=root)
    return root


def read(root, kind, slug):
    return json.loads((root / kind / f"{slug}.json").read_text())


def test_fetch_stage_counts_and_figure(staged):
    assert read(staged, "metrics", "fetch_kmnist") == {"train_images": 640, "test_images": 200}
    assert (staged / "plots/fetch_kmnist/classes.png").read_bytes().startswith(b"\x89PNG")


TINY_CONV = dict(channels1=4, channels2=8, kernel=3, fc=16)


@pytest.mark.parametrize("net, parameters", [("lin", 7850), ("full", 795 * 20 + 10),
                                             ("conv", sizes.formula("conv", TINY_CONV)[1])])
def test_train_stage_metrics_results_and_files(staged, net, parameters):
    metrics = read(staged, "metrics", f"train_kmnist_{net}")
    results = read(staged, "results", f"train_kmnist_{net}")
    # Metrics: only what is gated or compared.
    assert set(metrics) == {"test_accuracy", "test_loss", "train_loss", "parameters",
                            "train_images", "test_images"}
    assert metrics["parameters"] == parameters and metrics["test_images"] == 200
    s = results["settings"]
    assert s["parameters"] == s["formula_count"] == sum(layer["parameters"] for layer in s["layers"])
    assert (s["epochs"], s["batch_size"], s["lr"], s["optimiser"]) == (2, 64, 0.05, "SGD")
    fetched = read(staged, "results", "fetch_kmnist")
    assert results["data"]["md5"] == {f["name"]: f["md5"] for f in fetched["files"]}
    # The confusion matrix, per-class accuracy and pairs agree with each other and the metrics.
    matrix = np.array(results["confusion"])
    assert matrix.sum() == 200 and np.trace(matrix) == round(metrics["test_accuracy"] * 200)
    assert [c["correct"] for c in results["per_class"]] == np.diag(matrix).tolist()
    assert [(p["true"], p["predicted"], p["count"]) for p in results["confused_pairs"]] == [
        (p["true"], p["predicted"], p["count"]) for p in analysis.confused_pairs(matrix, NAMES)]
    last = results["last_epoch"]
    assert [x["images"] for x in last["lines"]] == [0, 320] and last["correct"] == np.trace(matrix)
    assert [h["epoch"] for h in results["history"]] == [1, 2]
    plots = staged / f"plots/train_kmnist_{net}"
    assert sorted(p.name for p in plots.iterdir()) == [
        "confused_pairs.png", "confusion.csv", "confusion.png", "confusion_matrix.csv",
        "history.csv"]
    assert "Test set: Average loss:" in (staged / f"logs/train_kmnist_{net}/train.log").read_text()
    assert (plots / "history.csv").read_text().startswith("epoch,train_loss,test_loss,test_accuracy\n1,")
    assert len((plots / "confusion.csv").read_text().splitlines()) == 201
    assert torch.load(staged / f"models/kmnist_{net}.pt")["net"] == net


def test_compare_stage_pairs_the_three_nets_on_the_same_images(staged):
    from nnstudies.stats import mcnemar_exact, wilson

    compared = read(staged, "results", "compare_kmnist")
    actual = {}
    for net in ("lin", "full", "conv", "wide"):
        rows = (staged / f"plots/train_kmnist_{net}/confusion.csv").read_text().splitlines()[1:]
        actual[net] = [a == p for a, p in (row.split(",") for row in rows)]
        got = compared["nets"][net]
        assert got["correct"] == sum(actual[net]) and got["images"] == 200
        assert got["interval"] == list(wilson(sum(actual[net]), 200))
        assert sum(c["images"] for c in got["per_class"]) == 200
    for pair in compared["pairs"]:
        a, b = actual[pair["a"]], actual[pair["b"]]
        only_a = sum(x and not y for x, y in zip(a, b))
        only_b = sum(y and not x for x, y in zip(a, b))
        assert (pair["only_a"], pair["only_b"]) == (only_a, only_b)
        assert pair["p"] == mcnemar_exact(only_a, only_b)
    assert compared["per_class"]["tests"] == 20 and len(compared["pairs"]) == 5
    metrics = read(staged, "metrics", "compare_kmnist")
    assert metrics["conv"]["test_accuracy_low"] == compared["nets"]["conv"]["interval"][0]
    assert (staged / "plots/compare_kmnist/accuracy.png").read_bytes().startswith(b"\x89PNG")


def test_a_confusion_file_of_unknown_classes_is_one_line(staged, tmp_path):
    import shutil

    from nnstudies.errors import UserError

    root = tmp_path / "root"
    shutil.copytree(staged, root)
    (root / "plots/train_kmnist_full/confusion.csv").write_text("actual,predicted\nxx,o\n")
    before = (root / "results/compare_kmnist.json").read_bytes()
    compare = load_stage("compare_kmnist")
    with pytest.raises(UserError, match=r"confusion.csv: unreadable or not the classes.*"
                                        r"rerun dvc repro train_kmnist@full"):
        stage.run("compare_kmnist", "kmnist", compare.PARAMS, compare.produce, root=root)
    assert (root / "results/compare_kmnist.json").read_bytes() == before


def test_cuda_requested_without_cuda_is_one_line_error_and_writes_nothing(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(UserError, match="kmnist.train.device = 'cuda'"):
        pick_device("cuda")
    (tmp_path / "params.yaml").write_text((TINY % (ROOT / SAMPLE)).replace("device: cpu", "device: cuda"))
    trainer = load_stage("train_kmnist")
    with pytest.raises(UserError, match="kmnist.train.device = 'cuda'"):
        stage.run("train_kmnist@lin", "kmnist", trainer.PARAMS, trainer.produce, root=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing written


def test_memory_estimate_stops_oversized_nets_before_work(tmp_path):
    """The largest nets the schema allows would need tens of GB: refused in one line."""
    assert sizes.memory_bytes("conv", dict(channels1=32, channels2=64, kernel=3, fc=128),
                              64, 1000) < sizes.MEMORY_BUDGET  # the course's net fits
    huge = "conv: {lr: 0.05, momentum: 0.5, channels1: 1024, channels2: 1024, kernel: 7, fc: 100000}"
    (tmp_path / "params.yaml").write_text(re.sub(r"conv: \{.*\}", huge, TINY % "nowhere"))
    trainer = load_stage("train_kmnist")
    with pytest.raises(UserError) as err:
        stage.run("train_kmnist@conv", "kmnist", trainer.PARAMS, trainer.produce, root=tmp_path)
    assert str(err.value).startswith("params.yaml: kmnist.conv {channels1: 1024, channels2: ")
    assert "GB, over the 4 GB budget" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_report_section_renders_from_the_stages_outputs(staged):
    from nnstudies.report import kmnist as part1
    from nnstudies.report.document import Figure, Figures, Lead, markdown

    blocks = [b.block if isinstance(b, Lead) else b
              for b in part1.section(staged / "metrics", staged / "results", staged / "plots", {})]
    figures = [f for b in blocks if isinstance(b, (Figure, Figures))
               for f in (b.items if isinstance(b, Figures) else [b])]
    assert len(figures) == 8 and all(f.path.is_file() for f in figures)
    text = markdown(blocks, staged)
    assert "All three nets were trained and tested on exactly these files" in text
    assert "Question 4: the three nets compared" in text
