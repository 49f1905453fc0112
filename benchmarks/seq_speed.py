"""Seconds per 1,000 epochs of Study 3 training: the course's per-step loop vs the fused kernel.

Usage: OMP_NUM_THREADS=1 python benchmarks/seq_speed.py [--epochs 300] [--restarts 16]

For each task: (a) one restart with the per-step Python loop (the course's way),
(b) R restarts stacked, per-step loop, (c) R restarts stacked, torch's fused kernel (what
train_seq runs).  Reports seconds per 1,000 epochs and per restart.  A benchmark, not a test.
"""

import argparse
import time

import torch
import torch.nn.functional as F

from nnstudies.seq import languages, models

TASKS = {"reber": ("srn", 2), "anbn": ("srn", 2), "anbncn": ("srn", 3), "ereber": ("lstm", 5)}


def seconds_per_1000(kind, hid, grammar, restarts, epochs, fused):
    net = models.build(kind, grammar.classes, hid, restarts)
    net.init_restarts(0, 0.001)
    opt = torch.optim.Adam(net.parameters(), lr=0.001, weight_decay=1e-5)
    eye = torch.eye(grammar.classes)
    clock = time.perf_counter()
    for i in range(epochs):
        seq = torch.from_numpy(grammar.train.sequence(i, grammar.prob_table)[0])
        x = eye[seq[:-1]][:, None]
        opt.zero_grad()
        logits = net(x)[1] if fused else net.unrolled(x)[0]
        nll = F.cross_entropy(logits[:, 0].permute(0, 2, 1), seq[1:, None].expand(-1, restarts),
                              reduction="none")
        nll.mean(0).sum().backward()
        opt.step()
    return (time.perf_counter() - clock) / epochs * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--restarts", type=int, default=16)
    args = parser.parse_args()
    R = args.restarts
    print(f"threads {torch.get_num_threads()}, {args.epochs} epochs per measurement")
    print("task    way                    s/1000 epochs  s/1000 per restart")
    for task, (kind, hid) in TASKS.items():
        grammar = languages.generate(task, 0, args.epochs, 1)
        for label, restarts, fused in (("loop, 1 restart", 1, False),
                                       (f"loop, {R} stacked", R, False),
                                       (f"fused, {R} stacked", R, True)):
            s = seconds_per_1000(kind, hid, grammar, restarts, args.epochs, fused)
            print(f"{task:7s} {label:22s} {s:13.2f}  {s / restarts:18.3f}")


if __name__ == "__main__":
    main()
