"""Long stages print one progress line at most every ~10 s, and always the last one."""

import io

from nnstudies.progress import Progress


def test_progress_is_throttled_and_ends_with_the_total():
    now = [0.0]
    out = io.StringIO()
    progress = Progress("train_seq@anbn", 100_000, every=10.0, out=out, clock=lambda: now[0])
    for epoch in range(0, 100_001, 1000):  # an update every 1,000 epochs, 0.5 s apart
        now[0] = epoch / 2000
        progress.update(epoch, "error 0.01")
    lines = out.getvalue().splitlines()
    assert len(lines) == 5  # at 10, 20, 30, 40 s (epochs 20k, 40k, 60k, 80k) and the end
    assert lines[0] == "train_seq@anbn: epoch 20,000/100,000, 10 s, error 0.01"
    assert lines[-1] == "train_seq@anbn: epoch 100,000/100,000, 50 s, error 0.01"
