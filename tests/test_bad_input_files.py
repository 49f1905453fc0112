"""Spoilt files the recurrent study reads: a grammar npz that is forged or corrupt, stray
files beside the checkpoints, checkpoints torch refuses.  Each is one clear line."""

import io
import pickle
import struct
import warnings
import zipfile

import numpy as np
import pytest
import torch

from nnstudies.errors import UserError
from nnstudies.seq import checkpoints, languages, models, plots, train


@pytest.fixture
def grammar_file(tmp_path):
    path = tmp_path / "reber.npz"
    with open(path, "wb") as f:
        languages.save(languages.generate("reber", 0, 30, 5, 5), f)
    return path


def _one_line(err, path, *parts):
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    for part in parts:
        assert part in message, message
    return message


def _replace_member(path, name, data):
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    members[name] = data
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for member, content in members.items():
            z.writestr(member, content)


def test_grammar_with_a_huge_declared_shape_is_refused_unallocated(grammar_file):
    header = io.BytesIO()  # a valid npy header that asks for 10**14 int8 (91 TiB), then 8 bytes
    np.lib.format.write_array_header_1_0(header, {"descr": "|i1", "fortran_order": False,
                                                  "shape": (10**14,)})
    _replace_member(grammar_file, "train_symbols.npy", header.getvalue() + bytes(8))
    with pytest.raises(UserError) as err:  # numpy alone: _ArrayMemoryError
        languages.load(grammar_file)
    _one_line(err, grammar_file, "train_symbols.npy declares shape (100000000000000,)",
              "dvc repro -f make_seq@reber")


def test_grammar_with_a_corrupt_zip_directory_entry(grammar_file):
    data = bytearray(grammar_file.read_bytes())
    entry = data.index(b"PK\x01\x02")  # the first central directory entry
    data[entry + 10:entry + 12] = struct.pack("<H", 99)  # its compression method: unknown
    grammar_file.write_bytes(bytes(data))
    with pytest.raises(UserError) as err:  # zipfile alone: NotImplementedError
        languages.load(grammar_file)
    _one_line(err, grammar_file, "not a data file made by make_seq (truncated or corrupt)")


def test_grammar_bigger_than_make_seq_may_write(grammar_file, monkeypatch):
    assert languages.load(grammar_file).lang == "reber"
    monkeypatch.setattr(languages, "MEMORY_BUDGET", 1000)  # this small file, 1000 bytes over
    with pytest.raises(UserError) as err:
        languages.load(grammar_file)
    _one_line(err, grammar_file, "over the 1000 that make_seq may write")


@pytest.fixture
def seq_models(tmp_path):
    """A folder of real train_seq checkpoints, epochs 0, 2 and 4."""
    g = languages.generate("reber", 0, 5, 5, 5)
    net = models.build("srn", 7, 2, 2)
    net.init_restarts(0, 0.1)
    folder = tmp_path / "seq_reber"
    folder.mkdir()
    train.train(net, g, train.Settings(4, log_every=2, checkpoint_every=2, kernel="fused"),
                log=lambda text: None,
                checkpoint=lambda e, s: checkpoints.save(folder, {"task": {"model": "srn"}}, g,
                                                         net, e, s))
    return folder


STRAYS = ["epoch_5 (copy).pt", "epoch_.pt", "epoch_x.pt", "epoch_3.pt.pt"]


def test_stray_files_beside_the_checkpoints_are_ignored(seq_models):
    for name in STRAYS:
        (seq_models / name).write_bytes(b"a copy a file manager made")
    net, info = plots.load(seq_models, 2, "reber")
    assert info["epoch"] == 2 and net.restarts == 1
    with pytest.raises(UserError, match=r"seq.plot.epoch.reber = 7: no checkpoint .*"
                                        r"\(available epochs: 0, 2, 4\)$"):
        plots.load(seq_models, 7, "reber")


class _Code:
    def __reduce__(self):
        return (print, ("this ran",))


@pytest.mark.parametrize("kind", ["raw pickle", "pickle protocol 4", "code"])
def test_a_refused_checkpoint_is_the_projects_line_only(tmp_path, capfd, kind):
    path = tmp_path / "epoch_1.pt"
    head = {"format": checkpoints.FORMAT, "state": {"w": torch.zeros(2)}}
    if kind == "raw pickle":  # torch reads it on its legacy path and warns about the protocol
        path.write_bytes(pickle.dumps(head, protocol=4))
        why = "not a torch zip archive"
    elif kind == "pickle protocol 4":  # a zip, but its pickle warns, then fails weights-only
        torch.save(head, path, pickle_protocol=4)
        why = "refused unread, as loading them could run code"
    else:
        torch.save({**head, "code": _Code()}, path)
        why = "refused unread, as loading them could run code"
    with warnings.catch_warnings(record=True) as caught, pytest.raises(UserError) as err:
        warnings.simplefilter("always")
        checkpoints.load_best(path)
    message = _one_line(err, path, why, "rerun train_seq to rewrite it")
    assert "weights_only" not in message and "will likely succeed" not in message
    assert not caught, [str(w.message) for w in caught]
    assert capfd.readouterr() == ("", "")
