"""Bad files: each gives exit code 2 and one stderr line naming the file and what is wrong,
and nothing else is written or touched."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLE, set_params, tool_env

KMNIST_FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
TRAIN_LIN = ["python", "stages/train_kmnist.py", "lin"]
FETCH = ["python", "stages/fetch_kmnist.py"]


def tree(repo: Path) -> dict[str, str]:
    """md5 of every file outside .git: to prove a failed stage touched nothing."""
    return {str(p.relative_to(repo)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(repo.rglob("*")) if p.is_file() and ".git" not in p.parts}


def fails_cleanly(repo: Path, cmd: list[str], *names: str) -> str:
    """Run ``cmd``: it must exit 2 with one stderr line that names each of ``names``, and
    leave every file as it was.  Returns the line."""
    before = tree(repo)
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=300,
                          env=tool_env(OMP_NUM_THREADS=1, NNSTUDIES_TRACKING="off"))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for name in names:
        assert name in lines[0], lines[0]
    assert tree(repo) == before
    return lines[0]


@pytest.fixture
def with_data(repo: Path) -> Path:
    (repo / "data" / "kmnist").mkdir(parents=True)
    for name in KMNIST_FILES:
        shutil.copy(repo / SAMPLE / name, repo / "data" / "kmnist" / name)
    return repo


def test_truncated_kmnist_file_given_to_training(with_data):
    path = with_data / "data" / "kmnist" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:5000])
    line = fails_cleanly(with_data, TRAIN_LIN, "data/kmnist/t10k-images-idx3-ubyte.gz")
    assert "not a readable MNIST-format gz file" in line


def test_foreign_kmnist_file_given_to_training(with_data):
    path = with_data / "data" / "kmnist" / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(b"these are not MNIST labels" * 100))
    fails_cleanly(with_data, TRAIN_LIN, "data/kmnist/train-labels-idx1-ubyte.gz")


def test_corrupt_file_in_a_mirror_fails_its_checksum_and_replaces_nothing(with_data):
    mirror = with_data / "mirror"
    shutil.copytree(with_data / SAMPLE, mirror)
    path = mirror / "train-images-idx3-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    path.write_bytes(bytes(data))
    set_params(with_data, **{"kmnist.source": "mirror"})
    # A corrupt copy in data/kmnist would be refetched; the mirror's bad bytes never land.
    (with_data / "data" / "kmnist" / "train-images-idx3-ubyte.gz").write_bytes(b"old, bad")
    line = fails_cleanly(with_data, FETCH, "train-images-idx3-ubyte.gz", "md5")
    assert "nothing was replaced" in line


def test_params_yaml_that_is_not_yaml(repo):
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace("hid: 6", "hid: [6", 1))
    line = fails_cleanly(repo, FETCH, "params.yaml", "not valid YAML", "line")
    assert re.search(r"line \d+", line)


def test_every_torch_load_refuses_code():
    """A checkpoint is data: torch.load must never unpickle arbitrary objects."""
    calls = []
    for path in [*ROOT.glob("src/**/*.py"), *ROOT.glob("stages/*.py")]:
        for call in re.finditer(r"torch\.load\((?:[^()]|\([^()]*\))*\)", path.read_text()):
            calls.append((str(path.relative_to(ROOT)), call.group(0)))
    unsafe = [c for c in calls if "weights_only=True" not in c[1]]
    assert not unsafe, f"torch.load without weights_only=True: {unsafe}"


# ---- Study 3: checkpoints and sequence data given to the recurrent-net stages -----------

SEQ_EPOCHS = 100
SEQ_DATA = "data/seq/reber.npz"
MAKE_SEQ = ["python", "stages/make_seq.py", "reber"]
TRAIN_SEQ = ["python", "stages/train_seq.py", "reber"]
PLOT_SEQ = ["python", "stages/plot_seq.py", "reber"]
CHECKPOINT = f"models/seq_reber/epoch_{SEQ_EPOCHS}.pt"


@pytest.fixture(scope="module")
def trained_seq(tmp_path_factory) -> Path:
    """A repo copy with a real sequence data file and a real (tiny) train_seq checkpoint."""
    from conftest import copy_repo, run

    repo = copy_repo(tmp_path_factory.mktemp("seq") / "repo")
    set_params(repo, **{"seq.grammar.train_sequences": SEQ_EPOCHS + 1,
                        "seq.grammar.validation_sequences": 20, "seq.grammar.test_sequences": 20,
                        "seq.train.restarts": 2, "seq.train.checkpoint_every": SEQ_EPOCHS,
                        "seq.train.log_every": SEQ_EPOCHS, "seq.reber.epochs": SEQ_EPOCHS,
                        "seq.plot.epoch.reber": SEQ_EPOCHS})
    for cmd in (MAKE_SEQ, TRAIN_SEQ):
        run(cmd, repo, OMP_NUM_THREADS=1, NNSTUDIES_TRACKING="off")
    return repo


@pytest.fixture
def seq_repo(trained_seq, tmp_path) -> Path:
    """A private copy of the trained repo, so each test may spoil its files."""
    return Path(shutil.copytree(trained_seq, tmp_path / "repo", symlinks=True))


def test_truncated_checkpoint_given_to_plot_stage(seq_repo):
    path = seq_repo / CHECKPOINT
    path.write_bytes(path.read_bytes()[:2000])
    fails_cleanly(seq_repo, PLOT_SEQ, CHECKPOINT)


def test_foreign_checkpoint_given_to_plot_stage(seq_repo):
    import torch

    torch.save({"state_dict": {"weight": torch.zeros(3)}}, seq_repo / CHECKPOINT)
    fails_cleanly(seq_repo, PLOT_SEQ, CHECKPOINT)


class _Payload:
    """Unpickling this runs a shell command: what a hostile checkpoint would carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_carrying_code_is_refused_without_running_it(seq_repo, tmp_path):
    import torch

    marker = tmp_path / "code-ran"
    torch.save({"format": "nnstudies-seq-1", "payload": _Payload(marker)}, seq_repo / CHECKPOINT)
    fails_cleanly(seq_repo, PLOT_SEQ, CHECKPOINT)
    assert not marker.exists()


def test_data_file_of_the_wrong_shape(seq_repo):
    import numpy as np

    path = seq_repo / SEQ_DATA
    with np.load(path) as z:
        arrays = dict(z)
    arrays["train_symbols"] = arrays["train_symbols"].reshape(-1, 1)[:, [0, 0]]  # (N, 2), not (N,)
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    fails_cleanly(seq_repo, TRAIN_SEQ, SEQ_DATA)


@pytest.mark.parametrize("spoil", ["truncated", "bit-flipped", "random bytes"])
def test_spoilt_data_file_is_one_line_without_unsafe_hints(tmp_path, spoil):
    import numpy as np

    from nnstudies.errors import UserError
    from nnstudies.seq import languages

    path = tmp_path / "reber.npz"
    with open(path, "wb") as f:
        languages.save(languages.generate("reber", 0, 50, 10, 10), f)
    data = path.read_bytes()
    if spoil == "truncated":
        data = data[:len(data) // 2]
    elif spoil == "bit-flipped":
        middle = len(data) // 2
        data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]
    else:
        data = np.random.default_rng(0).bytes(len(data))
    path.write_bytes(data)
    with pytest.raises(UserError) as err:
        languages.load(path)
    message = str(err.value)
    assert message.startswith(f"{path}: not a data file made by make_seq")
    assert message.endswith("regenerate it: dvc repro -f make_seq@reber")
    assert "pickle" not in message and "\n" not in message


def test_truncated_data_file_given_to_both_stages(seq_repo):
    path = seq_repo / SEQ_DATA
    path.write_bytes(path.read_bytes()[:3000])
    for cmd in (TRAIN_SEQ, PLOT_SEQ):
        line = fails_cleanly(seq_repo, cmd, SEQ_DATA)
        assert "truncated or corrupt" in line and "make_seq@reber" in line


@pytest.mark.parametrize("spoil", ["garbage", "foreign"])
def test_resume_from_a_spoilt_progress_file_starts_at_epoch_0(seq_repo, spoil):
    import torch

    from conftest import run

    progress = seq_repo / "models" / "seq_reber" / "progress.pt"
    if spoil == "garbage":
        progress.write_bytes(b"\x00not a checkpoint" * 10)
        why = "cannot resume from it ("
    else:
        torch.save({"format": "nnstudies-seq-1", "state": {}}, progress)
        why = "is not a progress file of train_seq"
    set_params(seq_repo, **{"seq.train.resume": True})
    proc = run(TRAIN_SEQ, seq_repo, OMP_NUM_THREADS=1, NNSTUDIES_TRACKING="off")
    assert f"models/seq_reber/progress.pt{':' if spoil == 'garbage' else ''} {why}" in proc.stdout
    assert "starting at epoch 0" in proc.stdout and "Traceback" not in proc.stderr
    saved = torch.load(progress, weights_only=True)  # rewritten by the fresh run
    assert saved["progress"]["epoch"] == SEQ_EPOCHS
