"""The hand-designed 4-unit net: unit i computes act(w_i . (x, y) + b_i)."""

from __future__ import annotations

from nnstudies.checker.model import StackedMLP

# The seed report's design: four parallel lines x + y = 1.5, 0.5, -0.5, -1.5 with alternating
# output weights and output bias 0.  Blue points then get output pre-activation exactly 0, so
# they are right only because the step gives 1 at 0; kept as the comparison for margins.
SEED_DESIGN = {
    "in_weight": [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]],
    "hid_bias": [-1.5, -0.5, 0.5, 1.5],
    "out_weight": [1.0, -1.0, 1.0, -1.0],
    "out_bias": 0.0,
}
# The seed report's scale for the sigmoid (Part 2 Q3: "the value k=100").
SEED_SCALE = 100.0


def hand_net(design: dict, act: str, scale: float = 1.0) -> StackedMLP:
    """The design as a one-net model, every weight and bias multiplied by ``scale``."""
    def times(v):
        return [times(u) for u in v] if isinstance(v, list) else scale * v
    return StackedMLP.single(times(design["in_weight"]), times(design["hid_bias"]),
                             times(design["out_weight"]), times(design["out_bias"]), act=act)
