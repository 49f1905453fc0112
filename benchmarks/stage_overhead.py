"""What a stage pays for its MLflow run: sent by the stage itself vs through the outbox.

In a temp copy of the repo (its own sqlite store), runs hand_checker, make_seq (reber) and
fetch_kmnist (on data/samples/kmnist-holdout) as subprocesses, the old way
(NNSTUDIES_TRACKING_SYNC=1: the stage imports mlflow and sends its run before it exits) and
through the outbox (the stage records its run and leaves sending to a detached sender),
alternating, REPEATS times each; then `dvc repro -f hand_checker` both ways.  Prints the median
wall seconds and the ratio.  Between two timed runs the background senders are waited for
(`python -m nnstudies.tracking flush`, timed apart: it is off the stage's path), so that
one run's sender does not slow the next run down.

    OMP_NUM_THREADS=1 python benchmarks/stage_overhead.py [--repeats 3] [--json out.json]

Not a test: a table on stdout.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = {
    "hand_checker": ["stages/hand_checker.py"],
    "make_seq@reber": ["stages/make_seq.py", "reber"],
    "fetch_kmnist": ["stages/fetch_kmnist.py", "--out", "out/kmnist", "--metrics", "out/fetch.json"],
}
MODES = {"sync": {"NNSTUDIES_TRACKING_SYNC": "1"}, "outbox": {"NNSTUDIES_TRACKING_SYNC": "0"}}


def copy_repo(dest: Path) -> Path:
    """The git-visible files of this checkout, committed in a fresh repo (DVC needs git)."""
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, names):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True)
    return dest


def env(mode: str) -> dict:
    e = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "DVC_ROOT")}
    e.update(MODES[mode], NNSTUDIES_TRACKING="on", MLFLOW_DISABLE_TELEMETRY="true",
             PATH=str(Path(sys.executable).parent) + os.pathsep + e.get("PATH", ""))
    e.setdefault("OMP_NUM_THREADS", "1")
    return e


def timed(cmd: list[str], repo: Path, mode: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=repo, env=env(mode), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} ({mode}) exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return seconds


def drain(repo: Path) -> float:
    """Wait for the background senders and send what is left; the seconds it took."""
    return timed([sys.executable, "-m", "nnstudies.tracking", "flush"], repo, "outbox")


def measure(repo: Path, name: str, cmd: list[str], repeats: int) -> dict:
    times = {mode: [] for mode in MODES}
    sends = []
    for i in range(repeats + 1):  # the first round warms the caches and the store up
        for mode in (MODES if i % 2 else reversed(MODES)):  # alternate: load drifts
            shutil.rmtree(repo / "out", ignore_errors=True)
            seconds = timed(cmd, repo, mode)
            send = drain(repo)
            if i:
                times[mode].append(seconds)
                sends += [send] if mode == "outbox" else []
        print(f"  {name} round {i}: " + ", ".join(f"{m} {t[-1]:.2f} s" for m, t in times.items()
                                                   if t and i), file=sys.stderr, flush=True)
    row = {mode: statistics.median(t) for mode, t in times.items()}
    return {"stage": name, **row, "ratio": row["sync"] / row["outbox"],
            "background_send": statistics.median(sends), "runs": times}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="stage-overhead-") as tmp:
        repo = copy_repo(Path(tmp))
        for name, cmd in STAGES.items():
            rows.append(measure(repo, name, [sys.executable, *cmd], args.repeats))
        rows.append(measure(repo, "dvc repro -f hand_checker", ["dvc", "repro", "-f", "hand_checker"],
                            args.repeats))
    print(f"median wall seconds of {args.repeats} runs ({os.cpu_count()} cores, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')})")
    print("| stage | sync (old) | outbox | sync / outbox | background send |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['stage']} | {r['sync']:.2f} | {r['outbox']:.2f} | {r['ratio']:.2f}x "
              f"| {r['background_send']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
