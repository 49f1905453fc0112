"""The nine points of the course's check.csv: a 3x3 checkerboard, target 1 where x + y is even."""

from __future__ import annotations

import torch


def points() -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (9, 2) and targets (9, 1), float32, in check.csv's row order (x outer, y inner)."""
    inputs = torch.tensor([[x, y] for x in (-1.0, 0.0, 1.0) for y in (-1.0, 0.0, 1.0)])
    targets = (inputs.sum(1).remainder(2) == 0).float().unsqueeze(1)
    return inputs, targets
