"""Interrupted work: Ctrl-C (SIGINT) or SIGKILL in the middle of a training stage.

After the interrupt every output is the previous good version or absent (never half
written, no temp files left), and the next `dvc repro` reruns the stage cleanly.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from conftest import SAMPLE, run, set_params, tool_env
from nnstudies import atomic

STAGE = "train_kmnist@lin"
OUTS = ["models/kmnist_lin.pt", "metrics/train_kmnist_lin.json", "logs/train_kmnist_lin/train.log",
        *(f"plots/train_kmnist_lin/{name}" for name in
          ("history.csv", "confusion.csv", "confusion_matrix.csv", "confusion.png",
           "confused_pairs.png"))]


def snapshot(repo: Path) -> dict[str, str | None]:
    return {name: hashlib.md5((repo / name).read_bytes()).hexdigest()
            if (repo / name).exists() else None for name in OUTS}


def temp_files(repo: Path) -> list[Path]:
    return [p for p in repo.rglob(".*.tmp") if ".git" not in p.parts and ".dvc" not in p.parts]


# A progress line comes after an epoch, at most every 10 s, and always after the last one.
PROGRESS = re.compile(rf"{re.escape(STAGE)}: epoch ([\d,]+)/([\d,]+)")
# The interrupted run: 1,000 epochs of 8,000 single-image steps (3.5 s an epoch here), so its
# first progress line comes with most of the run still to do (only a machine 350 times as
# fast would finish within the first 10 s), and a line with done < total proves at least a
# whole epoch (8,000 steps) and the writing of every output remain: the signal, sent as soon
# as that line is read, arrives long before.
LONG_RUN = {"kmnist.train.epochs": 1000, "kmnist.train.batch_size": 1}


def interrupt_mid_run(repo: Path, sig: int) -> subprocess.CompletedProcess:
    """Start `dvc repro`, wait for a progress line saying epochs remain (done < total), then
    signal the whole process group (as Ctrl-C in a terminal does).  No sleep, no clock."""
    proc = subprocess.Popen(["dvc", "repro", STAGE], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=tool_env(OMP_NUM_THREADS=1, NNSTUDIES_TRACKING="off"))
    try:
        return _interrupt_when_work_remains(proc, sig)
    finally:  # a failed check leaves no stage training on in the background
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def _interrupt_when_work_remains(proc: subprocess.Popen, sig: int) -> subprocess.CompletedProcess:
    seen = []
    for line in proc.stdout:
        seen.append(line)
        progress = PROGRESS.match(line)
        if progress:
            done, total = (int(n.replace(",", "")) for n in progress.groups())
            if done < total:
                break
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"the first progress line was the last ({line.strip()}): the run is too "
                        "short to be interrupted with work left")
    else:
        pytest.fail("the stage finished before it could be interrupted:\n" + "".join(seen))
    os.killpg(proc.pid, sig)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(seen) + out, err)


@pytest.mark.pipeline
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_interrupted_training_leaves_good_or_no_outputs_then_reruns(repo, sig):
    set_params(repo, **{"kmnist.source": SAMPLE, "kmnist.train.epochs": 2})
    run(["dvc", "repro", STAGE], repo, NNSTUDIES_TRACKING="off", OMP_NUM_THREADS=1)
    good = snapshot(repo)
    assert None not in good.values()

    batch_size = yaml.safe_load((repo / "params.yaml").read_text())["kmnist"]["train"]["batch_size"]
    set_params(repo, **LONG_RUN)
    interrupted = interrupt_mid_run(repo, sig)
    assert interrupted.returncode != 0
    after = snapshot(repo)
    for name, md5 in after.items():
        assert md5 in (None, good[name]), f"{name} was replaced by an interrupted run"
    assert temp_files(repo) == []
    if sig == signal.SIGINT:
        assert "interrupted: no output was written (none is half-written)" in interrupted.stderr

    # The rerun (with a short run: the long one was only there to be interrupted) makes
    # every output whole again.
    set_params(repo, **{"kmnist.train.epochs": 3, "kmnist.train.batch_size": batch_size})
    rerun = run(["dvc", "repro", STAGE], repo, NNSTUDIES_TRACKING="off", OMP_NUM_THREADS=1)
    assert f"Running stage '{STAGE}'" in rerun.stdout
    results = json.loads((repo / "results" / "train_kmnist_lin.json").read_text())
    assert results["settings"]["epochs"] == 3
    assert None not in snapshot(repo).values() and temp_files(repo) == []
    status = run(["dvc", "status", STAGE], repo)
    assert "up to date" in status.stdout, status.stdout


KILLED_WRITER = """
import os, signal, sys
from nnstudies import atomic
with atomic.atomic_path(sys.argv[1]) as tmp:
    tmp.write_text("half of a new fi")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_sigkill_during_a_write_keeps_the_old_file_and_the_next_write_sweeps_the_temp(tmp_path):
    target = tmp_path / "metrics.json"
    atomic.write_json(target, {"accuracy": 0.9})
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED_WRITER), str(target)],
                          env=tool_env())
    assert proc.returncode == -signal.SIGKILL
    assert json.loads(target.read_text()) == {"accuracy": 0.9}  # the old file, whole
    assert len(list(tmp_path.glob(".metrics.json.*.tmp"))) == 1  # what the killed writer left
    atomic.write_json(target, {"accuracy": 0.95})
    assert json.loads(target.read_text()) == {"accuracy": 0.95}
    assert list(tmp_path.glob(".*.tmp")) == []


# ---- Resuming a long recurrent run from its last checkpoint ----------------------------

RESUME_EPOCHS, RESUME_EVERY = 1500, 100


TRAIN_SEQ = ["python", "stages/train_seq.py", "reber"]


def test_resumed_recurrent_run_matches_an_uninterrupted_one(repo):
    import torch

    set_params(repo, **{"seq.grammar.train_sequences": RESUME_EPOCHS + 1,
                        "seq.grammar.validation_sequences": 20, "seq.grammar.test_sequences": 20,
                        "seq.train.restarts": 2, "seq.train.checkpoint_every": RESUME_EVERY,
                        "seq.train.log_every": RESUME_EVERY, "seq.reber.epochs": RESUME_EPOCHS})
    env = {"OMP_NUM_THREADS": 1, "NNSTUDIES_TRACKING": "off"}
    run(["python", "stages/make_seq.py", "reber"], repo, **env)
    run(TRAIN_SEQ, repo, **env)
    metrics, results = repo / "metrics/train_seq_reber.json", repo / "results/train_seq_reber.json"
    curve, models = repo / "plots/train_seq_reber/curve.csv", repo / "models/seq_reber"
    whole = (metrics.read_bytes(), json.loads(results.read_text()), curve.read_text(),
             torch.load(models / f"epoch_{RESUME_EPOCHS}.pt", weights_only=True)["state"])
    shutil.rmtree(models)  # so that the progress file waited for below is the new run's

    # A real stop: SIGKILL once the run has saved its first progress checkpoint.
    stopped = subprocess.Popen(TRAIN_SEQ, cwd=repo, env=tool_env(**env),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress = models / "progress.pt"
    while not progress.exists() and stopped.poll() is None:
        time.sleep(0.02)
    stopped.kill()
    stopped.wait(timeout=60)
    assert stopped.returncode == -signal.SIGKILL, "the run ended before it could be stopped"
    assert metrics.read_bytes() == whole[0]  # the killed run wrote none of its results

    set_params(repo, **{"seq.train.resume": True})
    resumed = run(TRAIN_SEQ, repo, **env)
    assert re.search(r"resuming .*progress.pt after epoch \d+", resumed.stdout), resumed.stdout[:500]
    cut = json.loads(results.read_text())
    assert metrics.read_bytes() == whole[0] and cut["resumed_from"] is not None
    same = lambda r: {k: v for k, v in r.items() if k not in ("resume", "resumed_from")}  # noqa: E731
    assert same(cut) == same(whole[1]) and curve.read_text() == whole[2]
    state = torch.load(models / f"epoch_{RESUME_EPOCHS}.pt", weights_only=True)["state"]
    assert state.keys() == whole[3].keys() and all(torch.equal(state[k], whole[3][k]) for k in state)


def test_interrupt_message_names_what_was_written(tmp_path, capsys):
    """Ctrl-C after some outputs were written says so (the message used to claim none)."""
    from nnstudies import atomic, cli

    def main():
        atomic.write_text(tmp_path / "metrics.json", "{}")
        atomic.write_text(tmp_path / "train.log", "log")
        raise KeyboardInterrupt

    atomic.WRITTEN.clear()
    with pytest.raises(SystemExit) as exit_:
        cli.run(main)
    assert exit_.value.code == cli.EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert err == (f"interrupted: 2 output file(s) were written whole before it ({tmp_path}/metrics.json, "
                   f"{tmp_path}/train.log), none half-written; DVC records nothing for an "
                   "interrupted stage: rerun it\n")
    atomic.WRITTEN.clear()
