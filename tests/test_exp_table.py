"""`nnstudies exp`: DVC's experiments as one table per study that fits 160 columns."""

import re

import pytest

from conftest import run
from nnstudies import exptable
from nnstudies.exptable import Row


def significant(cell: str) -> int:
    digits = re.sub(r"e[-+]\d+$", "", cell).replace("-", "").replace(".", "").lstrip("0")
    return len(digits)


@pytest.mark.pipeline
def test_two_experiments_as_the_user_runs_them(repo):
    """Two real `dvc exp run -S` (on the cheapest stage): the table names them, shows `hid`
    (the one param that differs) and the study's metrics rounded, within 160 columns, where
    plain `dvc exp show` has hundreds of columns."""
    for hid in (4, 8):
        run(["dvc", "exp", "run", "-n", f"hid{hid}", "-S", f"hid={hid}", "validate_params"], repo,
            NNSTUDIES_TRACKING="off")
    raw = run(["dvc", "exp", "show", "--csv"], repo).stdout.splitlines()[0].split(",")
    assert len(raw) > 160  # one column per param and metric: why this command exists
    text = run(["nnstudies", "exp"], repo).stdout  # only hid differs: the checker table alone
    assert max(map(len, text.splitlines())) <= exptable.WIDTH
    title, header, _, *lines = text.splitlines()
    assert title == "checker (4 rows)"
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert cells[:3] == ["experiment", "created", "hid"] and "accuracy" in cells and "loss" in cells
    rows = {r[0]: r for r in ([c.strip() for c in line.strip("|").split("|")] for line in lines)}
    assert set(rows) == {"workspace", "main", "hid4", "hid8"}
    assert [rows[name][2] for name in ("main", "hid4", "hid8")] == ["6", "4", "8"]
    import json

    committed = json.loads((repo / "metrics/train_checker.json").read_text())
    loss = rows["hid4"][cells.index("loss")]
    assert significant(loss) <= 4 and abs(float(loss) - committed["loss"]) <= 5e-4 * committed["loss"]
    assert rows["hid4"][cells.index("epochs_to_100")] == str(committed["epochs_to_100"])
    kmnist = run(["nnstudies", "exp", "kmnist"], repo).stdout
    assert "(other params that differ: hid)" in kmnist and "(no kmnist param differs" in kmnist


def test_bad_input_is_one_line(tmp_path):
    for args, expected in [(["exp", "nope"], "error: study 'nope': unknown (known: kmnist, checker, "
                                             "seq, sweep)"),
                           (["exp"], f"error: `dvc exp show` failed in {tmp_path.resolve()}: you are "
                                     "not inside of a DVC repository")]:
        proc = run(["nnstudies", *args], tmp_path, check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        [line] = proc.stderr.strip().splitlines()
        assert line.startswith(expected), line


def test_rounding_and_columns_that_do_not_fit():
    assert [exptable.rounded(v) for v in (421642, 0.0043968502432107925, 1.0, 0.8888888, 12345.67,
                                          5.98756450926885e-05, None, True)] == \
        ["421642", "0.004397", "1", "0.8889", "12346", "5.988e-05", "", "True"]
    # 30 checker params that differ: the table keeps what fits and names the rest below.
    rows = [Row(f"exp{i}", "12-05 08:31", {"hid": i, **{f"checker.train.knob{k}": i * k for k in range(30)},
                                          "kmnist.lin.lr": i / 100},
                {"train_checker:accuracy": 1.0, "train_checker:loss": 0.1 / (i + 1)}) for i in range(3)]
    text = exptable.study_table("checker", rows)
    assert max(map(len, text.splitlines())) <= exptable.WIDTH
    header = text.splitlines()[1]
    assert "| hid | train.knob1 |" in header and "knob0" not in text  # equal in every row: hidden
    assert re.search(r"\| accuracy \| +loss \|$", header)  # the key metrics are kept, params make room
    last = max(int(k) for k in re.findall(r"train\.knob(\d+)", header))
    note = re.search(r"^\((\d+) more columns do not fit 160 columns: (.*)\)$", text, re.M)
    assert int(note[1]) == 29 - last and note[2].startswith(f"train.knob{last + 1}, ")
    assert "(other params that differ: kmnist.lin.lr)" in text
