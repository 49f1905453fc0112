"""The report stage on missing or spoilt inputs: one line naming the file, what is wrong and the
stage that remakes it; a non-zero exit, no traceback, and the previous report left whole.

Each case runs the real stage script on a copy of the committed metrics, results and figures
with one input spoilt: truncated, ``{}``, a key gone, a figure gone, or every output of a stage
gone (a stage that failed under `dvc repro`, whose outputs DVC had deleted).
"""

import json
import shutil

import pytest

from conftest import ROOT, copy_repo, run
from nnstudies import restore

INPUTS = ("metrics", "results", "plots", "reports", "gates.yaml", "params.yaml", "reference")
# What the report in the copy holds before each run: any write at all would change it.
PREVIOUS = {"reports/report.md": b"# the previous report\n", "reports/report.html": b"<p>previous</p>\n"}


@pytest.fixture
def outputs(tmp_path):
    """The committed inputs of the report stage, and a previous report, in a temp folder."""
    for name in INPUTS:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, tmp_path / name)
    for name, data in PREVIOUS.items():
        (tmp_path / name).write_bytes(data)
    return tmp_path


def report(cwd, **env):
    return run(["python", str(ROOT / "stages/report.py")], cwd, check=False, timeout=120,
               NNSTUDIES_TRACKING="off", **env)


def refused(cwd, **env) -> str:
    """The one error line of a report run that must fail, checked for the whole contract."""
    proc = report(cwd, **env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for name, data in PREVIOUS.items():
        assert (cwd / name).read_bytes() == data, f"{name} was written"
    assert sorted(p.name for p in (cwd / "reports").iterdir()) == ["report.html", "report.md"]
    return lines[0]


def test_the_unspoilt_copy_builds_the_report(outputs):
    """The control: every refusal below comes from the one spoilt input."""
    proc = report(outputs)
    assert proc.returncode == 0, proc.stderr
    assert (outputs / "reports/report.md").read_text().startswith("# ")
    assert b"<img " in (outputs / "reports/report.html").read_bytes()


def test_a_truncated_results_file(outputs):
    path = outputs / "results/train_kmnist_lin.json"
    path.write_bytes(path.read_bytes()[:300])
    line = refused(outputs)
    assert line.startswith("error: results/train_kmnist_lin.json: not valid JSON: ")
    assert "line " in line and "truncated?" in line
    assert "`dvc repro train_kmnist@lin`" in line and "`nnstudies restore train_kmnist@lin`" in line


def test_a_results_file_holding_an_empty_object(outputs):
    (outputs / "results/train_checker.json").write_text("{}\n")
    line = refused(outputs)
    assert line.startswith("error: results/train_checker.json: no key '")
    assert "`dvc repro train_checker`" in line


def test_a_results_file_missing_a_nested_key(outputs):
    path = outputs / "results/train_seq_anbn.json"
    data = json.loads(path.read_text())
    del data["diagnostic"]["epoch"]
    path.write_text(json.dumps(data))
    line = refused(outputs)
    assert line.startswith("error: results/train_seq_anbn.json: no key 'diagnostic.epoch'")
    assert "`dvc repro train_seq@anbn`" in line


def test_a_results_file_that_is_no_object(outputs):
    (outputs / "results/sweep_seq.json").write_text("[]\n")
    line = refused(outputs)
    assert line.startswith("error: results/sweep_seq.json: must hold a JSON object")


def test_a_truncated_metrics_file(outputs):
    path = outputs / "metrics/plot_seq_reber.json"
    path.write_bytes(path.read_bytes()[:40])
    line = refused(outputs)
    assert line.startswith("error: metrics/plot_seq_reber.json: not valid JSON")
    assert "`dvc repro plot_seq@reber`" in line


def test_a_missing_figure(outputs):
    """The Markdown only links it; the HTML page embeds it: neither file may be written."""
    (outputs / "plots/train_checker/lines.png").unlink()
    line = refused(outputs)
    assert line.startswith("error: plots/train_checker/lines.png: missing;")
    assert "`dvc repro train_checker`" in line


def test_every_output_of_a_failed_stage_missing(outputs):
    for name in ("metrics/train_kmnist_full.json", "results/train_kmnist_full.json"):
        (outputs / name).unlink()
    shutil.rmtree(outputs / "plots/train_kmnist_full")
    line = refused(outputs)
    assert line.startswith("error: metrics/train_kmnist_full.json: missing (so are "
                           "results/train_kmnist_full.json, plots/train_kmnist_full/: did "
                           "train_kmnist@full fail?)")
    assert "`dvc repro train_kmnist@full`" in line and "`nnstudies restore train_kmnist@full`" in line


def test_under_dvc_the_line_ends_with_the_restore_hint(outputs):
    (outputs / "results/hand_checker.json").write_text("{}")
    line = refused(outputs, DVC_STAGE="report")
    assert line.startswith("error: results/hand_checker.json: no key '")
    assert line.endswith(f"; {restore.hint('report')}")


@pytest.mark.pipeline
def test_dvc_repro_of_the_report_after_a_failed_stage(tmp_path):
    """`dvc repro -s -f report` when train_kmnist@lin failed (DVC deleted its outputs): DVC
    deletes the report before running it; the stage says which inputs are gone, why, and how
    to get both back."""
    repo = copy_repo(tmp_path / "repo")
    for name in ("metrics/train_kmnist_lin.json", "results/train_kmnist_lin.json"):
        (repo / name).unlink()
    shutil.rmtree(repo / "plots/train_kmnist_lin")
    proc = run(["dvc", "repro", "-s", "-f", "report"], repo, check=False, NNSTUDIES_TRACKING="off")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: metrics/train_kmnist_lin.json: missing (so are results/train_kmnist_lin.json, "
        "plots/train_kmnist_lin/: did train_kmnist@lin fail?); rerun `dvc repro train_kmnist@lin` "
        "or `nnstudies restore train_kmnist@lin` (its last committed outputs); "
        + restore.hint("report")], proc.stderr
