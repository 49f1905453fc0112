"""The command line shared by the per-task Study 3 stages (paths come from dvc.yaml)."""

import argparse

from nnstudies.seq.languages import LANGUAGES


def parse(doc: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("task", choices=LANGUAGES)
    for name in ("--data", "--models", "--plots", "--metrics"):
        parser.add_argument(name, required=True)
    return parser.parse_args()


def one_thread() -> None:
    """Study 3 trains and evaluates tiny nets: one thread, whatever OMP_NUM_THREADS says.
    Measured on a 2-core machine shared with other jobs (train.train, anbncn, 16 restarts):
    the compiled kernel took 2.7 s for 20,000 epochs at 1 torch thread and 10.5 s at 2, the
    fused one 11.9 s and 95 s for 2,000; with a busy process beside it 5.8 vs 11.5 s and
    35 vs 207 s.  A second thread has nothing to share but its synchronisation, and it waits
    for a core whenever anything else runs."""
    import numba
    import torch

    torch.set_num_threads(1)
    numba.set_num_threads(1)  # the compiled code is serial; this only keeps numba's pool small
