"""The params schema: every bad value is one line naming key, value and what is allowed."""

import pytest

from conftest import ROOT, run, set_params
from nnstudies import params

BAD = [
    ("kmnist.lin.lr", -1.0, "kmnist.lin.lr = -1.0: must be a number > 0"),
    ("kmnist.train.epochs", "ten", "kmnist.train.epochs = 'ten': must be an integer from 1 to 1000"),
    ("kmnist.train.device", "tpu", "kmnist.train.device = 'tpu': must be one of auto, cpu, cuda"),
    ("hid", 0, "hid = 0: must be an integer from 1 to 64"),
    ("hid", 2.5, "hid = 2.5: must be an integer"),
    ("checker.train.act", "relu", "checker.train.act = 'relu': must be one of sig, step"),
    ("checker.hand.hid_bias", [1, 2], "checker.hand.hid_bias = [1, 2]: must be a list of 4 items"),
    ("seq.train.restarts", True, "seq.train.restarts = true: must be an integer"),
    ("hid", None, "hid = null: must be an integer"),  # YAML words, never Python's None
    ("kmnist.conv.momentum", 1.5, "kmnist.conv.momentum = 1.5: must be a number from 0 to 1"),
    ("kmnist.source", "", "kmnist.source = '': must be a non-empty string"),
]


@pytest.mark.parametrize("key,value,message", BAD)
def test_bad_value_is_one_clear_line(tmp_path, key, value, message):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    set_params(tmp_path, **{key: value})
    group = key.split(".")[0] if key.count(".") < 2 else ".".join(key.split(".")[:2])
    with pytest.raises(params.ParamError) as err:
        params.load([group], tmp_path / "params.yaml")
    text = str(err.value)
    assert message in text and "\n" not in text


def test_unknown_keys_and_missing_keys(tmp_path):
    text = (ROOT / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(text + "\nhidd: 6\n")
    with pytest.raises(params.ParamError, match="unknown key 'hidd'"):
        params.load(["hid"], tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text(text.replace("    momentum: 0.5\n    hidden: 200",
                                                       "    momentum: 0.5\n    hiden: 200"))
    with pytest.raises(params.ParamError, match="unknown key 'kmnist.full.hiden'"):
        params.load(["kmnist.full"], tmp_path / "params.yaml")


def test_invalid_yaml_names_file_and_line(tmp_path):
    (tmp_path / "params.yaml").write_text("hid: 6\nkmnist: [unclosed\n")
    with pytest.raises(params.ParamError, match=r"params.yaml: not valid YAML at line \d+"):
        params.load(["hid"], tmp_path / "params.yaml")


@pytest.mark.parametrize("spelling", ["1e-3", "1.0e-3", "0.001"])
def test_numbers_read_as_dvc_reads_them(tmp_path, spelling):
    """YAML 1.2 as DVC: `lr: 1e-3` typed by hand is a number (YAML 1.1 would read a string)."""
    text = (ROOT / "params.yaml").read_text().replace("    lr: 0.01\n    momentum: 0.5\n  full",
                                                       f"    lr: {spelling}\n    momentum: 0.5\n  full")
    (tmp_path / "params.yaml").write_text(text)
    assert spelling in text
    assert params.load(["kmnist.lin"], tmp_path / "params.yaml")["kmnist"]["lin"]["lr"] == 0.001


def test_defaults_are_valid():
    loaded = params.load(list(params.SCHEMA), ROOT / "params.yaml")
    assert loaded["hid"] == 6 and loaded["kmnist"]["full"]["hidden"] == 200


@pytest.mark.pipeline
@pytest.mark.parametrize("key,value,expected", [
    ("kmnist.source", 5, "kmnist.source = 5: must be a non-empty string"),
    ("kmnist.source", "/no/such/dir", "kmnist.source=/no/such/dir: no such directory"),
])
def test_stage_rejects_bad_params_and_writes_nothing(repo, key, value, expected):
    (repo / "metrics").mkdir(exist_ok=True)
    (repo / "metrics" / "fetch_kmnist.json").write_text('{"old": 1}\n')
    set_params(repo, **{key: value})
    proc = run(["python", "stages/fetch_kmnist.py"], repo, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in proc.stderr
    assert (repo / "metrics" / "fetch_kmnist.json").read_text() == '{"old": 1}\n'
    assert not (repo / "data" / "kmnist").exists()
