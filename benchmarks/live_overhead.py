"""What live curves cost a training stage: its follower (nnstudies.live) vs none.

In a temp copy of the repo (its own sqlite store), fetches the bundled KMNIST sample, then
runs train_kmnist@full and @conv (params.yaml's settings) as subprocesses with a follower
from the first epoch (NNSTUDIES_LIVE_AFTER=0, the most it can cost: it imports mlflow and
sends each second's new epochs while the stage trains, beside it on the same cores; the
default 5 s spares the shortest stages) and without (NNSTUDIES_LIVE_AFTER=off),
alternating, REPEATS times each after a warm-up round.  Between two timed runs the senders
are waited for (not timed).  Prints the median wall seconds and the ratio.

    python benchmarks/live_overhead.py [--repeats 3] [--json out.json] [--stages ...]

Not a test: a table on stdout.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage_overhead import copy_repo, env  # the same temp copy and environment

STAGES = {"train_kmnist@full": ["stages/train_kmnist.py", "full"],
          "train_kmnist@conv": ["stages/train_kmnist.py", "conv"]}
MODES = {"none": "off", "live": "0"}  # live from the first epoch: the most it can cost


def timed(cmd: list[str], repo: Path, after: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *cmd], cwd=repo, capture_output=True, text=True,
                          env={**env("outbox"), "NNSTUDIES_LIVE_AFTER": after})
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--stages", nargs="+", choices=list(STAGES), default=list(STAGES))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        repo = copy_repo(Path(tmp) / "repo")
        timed(["stages/fetch_kmnist.py"], repo, "off")
        for name, cmd in ((n, STAGES[n]) for n in args.stages):
            times = {mode: [] for mode in MODES}
            for i in range(args.repeats + 1):  # round 0 warms the caches and the store up
                for mode in (MODES if i % 2 else reversed(MODES)):  # alternate: load drifts
                    seconds = timed(cmd, repo, MODES[mode])
                    timed(["-m", "nnstudies.tracking", "flush"], repo, "off")
                    if i:
                        times[mode].append(seconds)
            none, live = (statistics.median(times[m]) for m in MODES)
            rows.append({"stage": name, "none": round(none, 2), "live": round(live, 2),
                         "live / none": round(live / none, 3), "runs": times})
    print("| stage | no follower (s) | live (s) | live / none |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['stage']} | {r['none']} | {r['live']} | {r['live / none']}x |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
