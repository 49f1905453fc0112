"""Stage hand_checker: the hand-designed 4-unit net under the step and rescaled under the
sigmoid, a sweep of the scale, and the seed report's design at the seed's own scale.

Reads: checker.hand, tracking.  Writes: metrics/hand_checker.json, results/hand_checker.json
(design, lines, hidden codes, both evaluations, the scale sweep), plots/hand_checker/
(region maps, lines.png, scale.png), logs/hand_checker/hand.log.
"""

from nnstudies import stage
from nnstudies.checker import study

PARAMS = ["checker.hand", "tracking"]


def produce(p, ctx):
    return study.hand_designed(p["checker"]["hand"])


if __name__ == "__main__":
    stage.main("hand_checker", "checker", PARAMS, produce)
