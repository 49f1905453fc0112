"""The report's limitations (each computed from the files it concerns) and its references."""

from __future__ import annotations

from pathlib import Path

from nnstudies.report import inputs
from nnstudies.report.document import Heading, Items
from nnstudies.report.kmnist import SEED_TRAIN_IMAGES

# The bundled sample's own README states where its images come from.
BUNDLED_SAMPLE = "data/samples/kmnist-holdout"

REFERENCES = [
    "Clanuwat, Bober-Irizar, Kitamoto, Lamb, Yamamoto & Ha (2018). Deep learning for classical "
    "Japanese literature. NeurIPS Workshop on Machine Learning for Creativity and Design (KMNIST).",
    "Elman (1990). Finding structure in time. Cognitive Science 14, 179-211.",
    "Cleeremans, Servan-Schreiber & McClelland (1989). Finite state automata and simple recurrent "
    "networks. Neural Computation 1, 372-381.",
    "Wiles & Elman (1995). Learning to count without a counter: a case study of dynamics and "
    "activation landscapes in recurrent networks. Proceedings of the 17th Annual Conference of "
    "the Cognitive Science Society.",
    "Rodriguez, Wiles & Elman (1999). A recurrent neural network that learns to count. "
    "Connection Science 11, 5-40.",
    "Hochreiter & Schmidhuber (1997). Long short-term memory. Neural Computation 9, 1735-1780.",
    "Gers & Schmidhuber (2001). LSTM recurrent networks learn simple context-free and "
    "context-sensitive languages. IEEE Transactions on Neural Networks 12, 1333-1340.",
    "Suzgun, Belinkov & Shieber (2019). On evaluating the generalization of LSTM models in "
    "formal languages. Proceedings of the Society for Computation in Linguistics 2, 277-286.",
]


def _read(folder: Path, name: str) -> dict:
    return inputs.read_json(Path(folder) / f"{name}.json")


def limitations(results_dir: Path, params: dict) -> list[str]:
    fetch = _read(results_dir, "fetch_kmnist")
    lin = _read(results_dir, "train_kmnist_lin")["settings"]
    checker = _read(results_dir, "train_checker")["settings"]
    seq = _read(results_dir, "train_seq_anbn")
    items = []
    source = (f"`{fetch['source']}`, whose images all come from the official KMNIST test split "
              f"(its README), so the official test set is not held out from it"
              if fetch["source"] == BUNDLED_SAMPLE else f"`{fetch['source']}`")
    items.append(f"**Data.** Part 1 trains on {fetch['train_images']:,} images instead of the "
                 f"course's {SEED_TRAIN_IMAGES:,}, for the same {lin['epochs']} epochs, so on "
                 f"fewer SGD steps, and tests on {fetch['test_images']:,} images: {source}.")
    seeds_path = Path(results_dir) / "seeds_kmnist.json"
    if seeds_path.exists():
        runs = _read(results_dir, "seeds_kmnist")
        items.append(f"**Seeds.** Part 1's detailed numbers are one training run per net (seed "
                     f"{lin['seed']}); `seeds_kmnist` repeats each over {runs['seeds']} seeds, "
                     f"which shows the spread between trainings but is still a small sample; "
                     f"the per-class tests have about a tenth of the test images each.")
    else:
        items.append(f"**One training run per net.** Each KMNIST net is trained once (seed "
                     f"{lin['seed']}): its interval covers the test images, not the spread "
                     f"between trainings.")
    items.append(f"**Selected nets.** Part 2 keeps one of {checker['restarts']} restarts and Part 3 "
                 f"the best of {seq['restarts']} on validation: the figures show a selected net, "
                 f"not a typical one; Parts 2 and 3 rest on one draw of their data.")
    window = seq["success_window"]
    items.append(f"**Success in Part 3** (and in the recurrent sweep) needs the bounds at every "
                 f"evaluation of the last {window['share']:.0%} of the epochs (from epoch "
                 f"{window['from_epoch']:,} for a^n b^n): a net can still leave its band after "
                 "the last epoch trained, and another window would count differently.")
    check = _read(results_dir, "sweep_checker")
    items.append(f"**Sweeps** train {check['seeds']} seeds per size at the course's budgets: a "
                 f"rate of at least {check['conclusion']['threshold']:g} is shown only by "
                 f"{check['seeds']} of {check['seeds']}, and neighbouring sizes with close rates "
                 "cannot be told apart; every run of a task uses the same data draw.")
    items.append("**Machines.** Results are byte-identical only on the same CPU path, threads and "
                 "`numerics.txt`; elsewhere they agree within the tolerances of `gates.yaml` "
                 "(docs/reliability.md).")
    return items


def section(results_dir: Path, params: dict) -> list:
    return [Heading(2, "Limitations"), Items(limitations(results_dir, params)),
            Heading(2, "References"), Items(REFERENCES)]
