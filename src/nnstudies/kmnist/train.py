"""Training and testing exactly as the course's kuzu_main.py, on in-memory tensors.

The course feeds a DataLoader through per-sample ToTensor+Normalize transforms.  Here the
normalised images already sit in one tensor (on the training device), and each batch is
a slice of it: the same numbers in the same order, without the per-sample work.  The CNN
runs channels_last on the CPU, where it measured about 1.5x faster per epoch.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from nnstudies.errors import UserError
from nnstudies.kmnist.models import CLASSES, build, count_parameters
from nnstudies.outputs import Outputs, Served


def pick_device(name: str) -> torch.device:
    """``auto``: cuda when there is one; ``cuda`` without one is a user error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("kmnist.train.device = 'cuda' but torch sees no CUDA device "
                        "(allowed here: auto, cpu)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class TensorBatches:
    """Batches sliced from in-memory tensors: an iterable like a DataLoader, without workers."""

    def __init__(self, images, labels, batch_size: int, shuffle_seed: int | None = None):
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.dataset = images  # len(batches.dataset): the number of images, as on a DataLoader
        self.generator = None
        if shuffle_seed is not None:
            self.generator = torch.Generator().manual_seed(shuffle_seed)

    def __len__(self):
        return math.ceil(len(self.images) / self.batch_size)

    def __iter__(self):
        if self.generator is None:
            for start in range(0, len(self.images), self.batch_size):
                end = start + self.batch_size
                yield self.images[start:end], self.labels[start:end]
        else:
            order = torch.randperm(len(self.images), generator=self.generator).to(self.images.device)
            for start in range(0, len(order), self.batch_size):
                pick = order[start:start + self.batch_size]
                yield self.images[pick], self.labels[pick]


def train_epoch(model, optimizer, batches, epoch: int, log_interval: int,
                log: Callable[[str], None], device, memory_format=torch.contiguous_format):
    """One pass over ``batches``; prints the course's progress lines; returns the mean loss
    and those lines as records (images seen, loss)."""
    model.train()
    total, seen, count = torch.zeros((), device=device), 0, len(batches.dataset)
    lines = []
    for batch_idx, (data, target) in enumerate(batches):
        data = data.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        target = target.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        loss = F.nll_loss(model(data), target)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(target)  # summed on the device: no sync per batch
        seen += len(target)
        if batch_idx % log_interval == 0:
            line = {"epoch": epoch, "images": batch_idx * len(data), "of": count,
                    "percent": round(100.0 * batch_idx / len(batches)), "loss": loss.item()}
            lines.append(line)
            log(f"Train Epoch: {epoch} [{line['images']}/{count} "
                f"({100.0 * batch_idx / len(batches):.0f}%)]\tLoss: {line['loss']:.6f}")
    return total.item() / seen, lines


@torch.no_grad()
def evaluate(model, batches, device, memory_format=torch.contiguous_format):
    """(summed nll / N, predicted classes, true classes), over ``batches`` in order, on the CPU."""
    model.eval()
    total, predictions, targets = torch.zeros((), device=device), [], []
    for data, target in batches:
        data = data.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        target = target.to(device, non_blocking=True)
        output = model(data)
        total += F.nll_loss(output, target, reduction="sum")
        predictions.append(output.argmax(dim=1))
        targets.append(target)
    return total.item() / len(batches.dataset), torch.cat(predictions).cpu(), torch.cat(targets).cpu()


def confusion_matrix(actual, predicted, classes: int = CLASSES) -> np.ndarray:
    """Counts with rows = true class, columns = predicted class (the 24T2 convention)."""
    flat = torch.bincount(actual * classes + predicted, minlength=classes * classes)
    return flat.reshape(classes, classes).numpy()


def course_test_report(confusion: np.ndarray, loss: float, correct: int, count: int) -> str:
    """The course's test printout: the matrix as integer-valued floats, then the summary."""
    matrix = np.array2string(confusion.astype(float), precision=4, suppress_small=True)
    return (f"<class 'numpy.ndarray'>\n{matrix}\n\nTest set: Average loss: {loss:.4f}, "
            f"Accuracy: {correct}/{count} ({100.0 * correct / count:.0f}%)\n")


def tensor_batches(data, batch_size: int, device, shuffle_seed: int | None = None) -> TensorBatches:
    """(images, labels) moved to ``device`` once, then served as slices."""
    images, labels = data
    return TensorBatches(images.to(device), labels.to(device), batch_size, shuffle_seed)


def fastest_memory_format(net: str, device: torch.device):
    """channels_last for the CNN on the CPU, where it trains about 1.5x faster; on CUDA
    (batch 64, launch-bound) the two layouts measured within run-to-run noise (docs/kmnist.md)."""
    return torch.channels_last if net == "conv" and device.type == "cpu" else torch.contiguous_format


@dataclass
class Result:
    model: torch.nn.Module
    history: list[dict] = field(default_factory=list)   # one row per epoch
    predictions: torch.Tensor | None = None             # last epoch, test set, in order
    confusion: np.ndarray | None = None
    train_seconds: float = 0.0
    last_lines: list[dict] = field(default_factory=list)  # the last epoch's progress lines


def fit(net: str, sizes: dict, train_batches, test_batches, *, lr: float, momentum: float,
        epochs: int, seed: int, device: torch.device, log_interval: int,
        log: Callable[[str], None] = print, on_epoch: Callable[[dict], None] | None = None,
        memory_format=None) -> Result:
    """Train ``net`` with SGD on nll_loss as the course does; test after every epoch.

    The batches are any iterables of (images, labels) with ``len()`` and ``.dataset``
    (:class:`TensorBatches`, or a DataLoader).  ``memory_format`` None: the fastest measured.
    """
    seed_everything(seed)
    memory_format = memory_format or fastest_memory_format(net, device)
    model = build(net, sizes).to(device).to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    result = Result(model)
    for epoch in range(1, epochs + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        train_loss, result.last_lines = train_epoch(  # ends in .item(): the GPU has caught up
            model, optimizer, train_batches, epoch, log_interval, log, device, memory_format)
        seconds = time.perf_counter() - started
        test_loss, predictions, targets = evaluate(model, test_batches, device, memory_format)
        confusion = confusion_matrix(targets, predictions)
        correct = int(np.trace(confusion))
        log(course_test_report(confusion, test_loss, correct, len(targets)))
        row = {"epoch": epoch, "train_loss": train_loss, "test_loss": test_loss,
               "test_accuracy": correct / len(targets), "epoch_seconds": seconds}
        result.history.append(row)
        result.train_seconds += seconds
        result.predictions, result.confusion = predictions, confusion
        if on_epoch:
            on_epoch(row)
    return result


TITLES = {"lin": "NetLin", "full": "NetFull", "conv": "NetConv", "wide": "NetFull-wide"}


def stage(net: str, train: dict, net_params: dict, data_dir, model_path, *, log_metrics=None,
          progress=None) -> Outputs:
    """The train stage of one net: train as the course does on the files in ``data_dir``, test
    after every epoch, and return the weights, the numbers gated (metrics), every fact the
    report shows (results), and the course log, tables and figures (files).

    ``train``: kmnist.train; ``net_params``: kmnist.<net> (lr, momentum and layer sizes);
    ``model_path``: where the weights go (relative to the repository root);
    ``log_metrics(values, step)`` gets each epoch's numbers, ``progress.update(epoch, note)``
    reports how far it is.
    """
    import pandas as pd

    from nnstudies.kmnist import analysis, data, plots
    from nnstudies.kmnist import sizes as paper

    sizes = {k: v for k, v in net_params.items() if k not in ("lr", "momentum")}
    paper.check_memory(net, sizes, train["batch_size"], train["test_batch_size"])
    device = pick_device(train["device"])
    train_data = data.load_split(data_dir, train=True)
    test_data = data.load_split(data_dir, train=False)
    lines = []  # the course's console log: train.log (the terminal shows progress only)

    def on_epoch(row):
        if log_metrics:
            log_metrics({k: v for k, v in row.items() if k != "epoch"}, row["epoch"])
        if progress:
            progress.update(row["epoch"], f"test accuracy {row['test_accuracy']:.2%}")

    shuffle_seed = train["seed"] if train["shuffle"] else None
    result = fit(net, sizes, tensor_batches(train_data, train["batch_size"], device, shuffle_seed),
                 tensor_batches(test_data, train["test_batch_size"], device),
                 lr=net_params["lr"], momentum=net_params["momentum"], epochs=train["epochs"],
                 seed=train["seed"], device=device, log_interval=train["log_interval"],
                 log=lines.append, on_epoch=on_epoch)
    last, names = result.history[-1], data.CLASS_NAMES
    parameters = count_parameters(result.model)
    formula_text, formula_count = paper.formula(net, sizes)
    metrics = {"test_accuracy": last["test_accuracy"], "test_loss": last["test_loss"],
               "train_loss": last["train_loss"], "parameters": parameters,
               "train_images": len(train_data[1]), "test_images": len(test_data[1])}
    pairs = analysis.confused_pairs(result.confusion, names)
    likeness = analysis.mean_image_likeness(test_data[0].numpy(), test_data[1].numpy(), len(names))
    likeness_overall = analysis.likeness_summary(likeness, pairs, names)
    results = {
        "net": net,
        "title": TITLES[net],
        "settings": {
            "architecture": paper.architecture(net, sizes),
            "sizes": sizes,
            "layers": [{"layer": name, "module": str(module),
                        "parameters": count_parameters(module)}
                       for name, module in result.model.named_children()],
            "parameters": parameters, "formula": formula_text, "formula_count": formula_count,
            "optimiser": "SGD", "lr": net_params["lr"], "momentum": net_params["momentum"],
            "loss": "nll_loss on log-softmax outputs",
            "init": "PyTorch default: every weight and bias uniform in +-1/sqrt(fan_in)",
            "seed": train["seed"], "epochs": train["epochs"], "batch_size": train["batch_size"],
            "shuffle": train["shuffle"], "device": str(device),
        },
        "data": {"train_images": len(train_data[1]), "test_images": len(test_data[1]),
                 "md5": data.md5s(data_dir)},
        "history": [{k: row[k] for k in ("epoch", "train_loss", "test_loss", "test_accuracy")}
                    for row in result.history],
        "last_epoch": {"lines": result.last_lines, "test_loss": last["test_loss"],
                       "correct": int(np.trace(result.confusion)), "images": len(test_data[1])},
        "classes": list(names),
        "confusion": result.confusion,  # rows: true class, columns: predicted class
        "per_class": analysis.per_class(result.confusion, names),
        "confused_pairs": pairs,  # ties kept; likeness: correlation of the two mean test images
        "likeness": likeness_overall,  # over all class pairs
        "figures": {"confusion": "confusion.png", "confused_pairs": "confused_pairs.png"},
    }
    timings = {"seconds_per_epoch": result.train_seconds / train["epochs"],
               "images_per_second": len(train_data[1]) * train["epochs"] / result.train_seconds}
    actual, predicted = test_data[1].numpy(), result.predictions.numpy()
    title = f"{TITLES[net]}: test accuracy {last['test_accuracy']:.2%}"

    def files():  # a generator: one figure open at a time
        yield "train.log", "\n".join(lines) + "\n"
        yield "history.csv", pd.DataFrame(results["history"])
        yield "confusion.csv", pd.DataFrame({"actual": [names[i] for i in actual],
                                             "predicted": [names[i] for i in predicted]})
        matrix = pd.DataFrame(result.confusion, columns=list(names))
        matrix.insert(0, "true\\predicted", list(names))
        yield "confusion_matrix.csv", matrix
        yield "confusion.png", plots.confusion_heatmap(result.confusion, names, title)
        yield "confused_pairs.png", plots.confused_pairs_figure(
            test_data[0].numpy(), actual, predicted, pairs, names,
            f"{TITLES[net]}: the most confused pairs (ties kept)")

    state = {k: v.detach().cpu().contiguous() for k, v in result.model.state_dict().items()}
    served = Served(f"net_{net}", "kmnist", {"net": net, "sizes": sizes}, state,
                    test_data[0][:4].numpy())  # the first test images, as the net reads them
    return Outputs(metrics=metrics, results=results, files=files(),
                   models={str(model_path): {"net": net, "sizes": sizes, "state_dict": state}},
                   timings=timings, step=train["epochs"], served=[served])
