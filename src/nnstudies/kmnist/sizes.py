"""Sizes of the KMNIST nets worked out on paper, without torch: parameter counts (the report
shows them beside the count read from the model) and the memory a training run needs (so
that an oversized net is refused before any work, by the params check too)."""

from __future__ import annotations

from nnstudies import yamlfile
from nnstudies.errors import UserError

PIXELS, CLASSES, SIDE = 28 * 28, 10, 28


def pooled_side(side: int, kernel: int) -> int:
    """Image side after a 'same'-padded conv (padding kernel//2) and 2x2 max-pooling."""
    return (side + 2 * (kernel // 2) - kernel + 1) // 2


FULL = ("full", "wide")  # the nets of NetFull's architecture: the course's and the widened control


def formula(net: str, sizes: dict) -> tuple[str, int]:
    """The parameter count worked out on paper (text, value), without building the net."""
    if net == "lin":
        return f"{PIXELS}*{CLASSES} + {CLASSES}", PIXELS * CLASSES + CLASSES
    if net in FULL:
        h = sizes["hidden"]
        return f"({PIXELS}+1)*{h} + ({h}+1)*{CLASSES}", (PIXELS + 1) * h + (h + 1) * CLASSES
    c1, c2, k, fc = (sizes[key] for key in ("channels1", "channels2", "kernel", "fc"))
    side = pooled_side(pooled_side(SIDE, k), k)
    text = (f"({k}*{k}*1+1)*{c1} + ({k}*{k}*{c1}+1)*{c2} + ({c2}*{side}*{side}+1)*{fc}"
            f" + ({fc}+1)*{CLASSES}")
    return text, (k * k + 1) * c1 + (k * k * c1 + 1) * c2 + (c2 * side * side + 1) * fc + (fc + 1) * CLASSES


def architecture(net: str, sizes: dict) -> str:
    """The net in one line, with its sizes."""
    if net == "lin":
        return f"{PIXELS} pixels -> {CLASSES}, log-softmax"
    if net in FULL:
        return f"{PIXELS} pixels -> {sizes['hidden']} tanh -> {CLASSES}, log-softmax"
    c1, c2, k, fc = (sizes[key] for key in ("channels1", "channels2", "kernel", "fc"))
    flat = c2 * pooled_side(pooled_side(SIDE, k), k) ** 2
    return (f"conv {k}x{k} {c1} + ReLU + 2x2 max-pool, conv {k}x{k} {c2} + ReLU + 2x2 max-pool, "
            f"fc {flat} -> {fc} + ReLU, fc {fc} -> {CLASSES}, log-softmax")


# The largest run the params allow must fit in this, far inside a 24 GB machine.
MEMORY_BUDGET = 4 * 2**30


def memory_bytes(net: str, sizes: dict, batch_size: int, test_batch_size: int) -> int:
    """About how much a training run takes: weights, gradients and momentum (3 copies), the
    activations a training batch keeps for backward (x2: their gradients), a test batch's
    activations, and the data held in memory (60,000 + 10,000 images at most, float32)."""
    if net == "conv":
        c1, c2, k = sizes["channels1"], sizes["channels2"], sizes["kernel"]
        side1 = pooled_side(SIDE, k)
        per_image = 2 * c1 * SIDE * SIDE + c1 * side1 ** 2 + 2 * c2 * side1 ** 2 + 2 * sizes["fc"]
    else:
        per_image = 2 * sizes.get("hidden", 0) + CLASSES
    per_image += PIXELS
    data = 70_000 * PIXELS
    return 4 * (3 * formula(net, sizes)[1] + 2 * batch_size * per_image
                + test_batch_size * per_image + data)


def check_memory(net: str, sizes: dict, batch_size: int, test_batch_size: int) -> None:
    """A one-line UserError when the run would not fit in :data:`MEMORY_BUDGET`."""
    need = memory_bytes(net, sizes, batch_size, test_batch_size)
    if need > MEMORY_BUDGET:
        raise UserError(f"params.yaml: kmnist.{net} {yamlfile.show(sizes)} with "
                        f"kmnist.train.batch_size {batch_size} and test_batch_size "
                        f"{test_batch_size} needs about {need / 2**30:.1f} GB, "
                        f"over the {MEMORY_BUDGET / 2**30:g} GB budget: use smaller layers or batches")
