"""Progress of a long stage on the terminal: one short line at most every ~10 s.

The course's full logs go to each stage's log file; the terminal only says how far a stage
is, so a user watching `dvc repro` sees it move without being flooded.
"""

from __future__ import annotations

import sys
import time


class Progress:
    """``update(done)`` prints ``<stage>: <unit> done/total, <s> s`` when ``every`` seconds
    have passed since the last line, and always at the end (done == total)."""

    def __init__(self, stage: str, total: int, unit: str = "epoch", every: float = 10.0,
                 out=None, clock=time.monotonic):
        self.stage, self.total, self.unit, self.every = stage, total, unit, every
        self.out, self.clock = out or sys.stdout, clock
        self.start = self.last = clock()

    def update(self, done: int, note: str = "") -> None:
        now = self.clock()
        if now - self.last < self.every and done < self.total:
            return
        self.last = now
        tail = f", {note}" if note else ""
        print(f"{self.stage}: {self.unit} {done:,}/{self.total:,}, {now - self.start:.0f} s{tail}",
              file=self.out, flush=True)
