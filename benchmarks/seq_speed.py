"""Seconds per 1,000 epochs of Study 3 training: the compiled kernel vs torch's fused and loop.

Usage: python benchmarks/seq_speed.py [--epochs 500] [--restarts 16] [--busy]

For each task of params.yaml (its model and hid), the same generated sequences and the same
initial weights, one thread: the compiled kernel (what train_seq runs), torch's fused
recurrent kernel and the course's per-step loop, side by side; then how many times faster
the compiled kernel is.  Training only: the evaluations of train.train are not included.
``--busy`` runs one busy process beside it the whole time (as a shared machine has).
A benchmark, not a test.
"""

import argparse
import subprocess
import sys
import time

import numba
import numpy as np
import torch

from nnstudies import params
from nnstudies.seq import compiled, languages, models, train

TASKS = ("reber", "anbn", "anbncn", "ereber")


def seconds_per_1000(kernel, task, grammar, restarts, epochs, init):
    net = models.build(task["model"], grammar.classes, task["hid"], restarts)
    net.init_restarts(0, init)
    optimizer = train.make_optimizer(net, train.Settings(epochs))
    loss = torch.zeros(restarts)
    clock = time.perf_counter()
    if kernel == "compiled":
        compiled.train_span(net, optimizer, grammar.train.symbols, grammar.train.starts, 0,
                            epochs, loss.numpy())
    else:
        symbols = torch.from_numpy(grammar.train.symbols.astype(np.int64))
        train._torch_epochs(net, optimizer, symbols, grammar.train.starts, 0, epochs, kernel,
                            loss)
    return (time.perf_counter() - clock) / epochs * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--restarts", type=int, default=16)
    parser.add_argument("--busy", action="store_true", help="one busy process beside it")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the stages (seq.train.threads: 1; docs/seq.md, One thread)
    numba.set_num_threads(1)
    p = params.load(["seq.train.init", *(f"seq.{t}" for t in TASKS)])["seq"]
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        print(f"{args.restarts} restarts, {args.epochs} epochs, 1 thread"
              f"{', one busy process beside' if busy else ''}; seconds per 1,000 epochs")
        print("task    model     compiled    fused     loop   fused/compiled  loop/compiled")
        for name in TASKS:
            task = p[name]
            grammar = languages.generate(name, 0, args.epochs + 1, 1, 1)
            seconds_per_1000("compiled", task, grammar, args.restarts, 2, p["train"]["init"])
            s = {kernel: seconds_per_1000(kernel, task, grammar, args.restarts, args.epochs,
                                          p["train"]["init"])
                 for kernel in ("compiled", "fused", "loop")}
            print(f"{name:7s} {task['model']} {task['hid']}  {s['compiled']:9.4f} "
                  f"{s['fused']:8.3f} {s['loop']:8.3f}  {s['fused'] / s['compiled']:13.1f}x "
                  f"{s['loop'] / s['compiled']:13.1f}x", flush=True)
    finally:
        if busy:
            busy.kill()


if __name__ == "__main__":
    main()
