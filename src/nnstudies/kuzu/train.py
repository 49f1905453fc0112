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
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from nnstudies.errors import UserError
from nnstudies.kuzu.models import CLASSES, build


def pick_device(name: str) -> torch.device:
    """``auto``: cuda when there is one; ``cuda`` without one is a user error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("kuzu.train.device = 'cuda' but torch sees no CUDA device "
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
                log: Callable[[str], None], device, memory_format=torch.contiguous_format) -> float:
    """One pass over ``batches``; prints the course's progress lines; returns the mean loss."""
    model.train()
    total, seen, count = torch.zeros((), device=device), 0, len(batches.dataset)
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
            log(f"Train Epoch: {epoch} [{batch_idx * len(data)}/{count} "
                f"({100.0 * batch_idx / len(batches):.0f}%)]\tLoss: {loss.item():.6f}")
    return total.item() / seen


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
        train_loss = train_epoch(model, optimizer, train_batches, epoch, log_interval, log,
                                 device, memory_format)  # ends in .item(): the GPU has caught up
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
