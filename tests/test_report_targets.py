"""A bound is called a course target only where the course states it (reference/course.yaml);
every other `paper` bound is a project bound."""

import re
import shutil

import yaml

from conftest import ROOT
from nnstudies import gates
from nnstudies.report import targets


def test_every_course_statement_names_a_paper_bound():
    paper = {(g.file, g.metric) for g in gates.load(ROOT / "gates.yaml", "paper")}
    said = yaml.safe_load((ROOT / "reference" / "course.yaml").read_text())
    listed = {(file, metric) for file, metrics in said.items() for metric in metrics}
    assert listed <= paper, listed - paper
    # The course's own list: KMNIST accuracies, the nine points, the counters' error band.
    assert {m for _, m in listed} == {"test_accuracy", "accuracy", "step.accuracy",
                                      "sigmoid.accuracy", "test.error"}


def test_labels_follow_the_course_list(tmp_path):
    for name in ("metrics", "results", "reference"):
        shutil.copytree(ROOT / name, tmp_path / name)
    checked = targets.check(ROOT / "gates.yaml", tmp_path, "paper")
    assert targets.verdict(checked, "metrics/train_kmnist_conv.json", "test_accuracy").startswith(
        "Course target >= 0.93: ")
    assert targets.verdict(checked, "metrics/train_seq_reber.json", "test.error").startswith(
        "Project bound <= 0.01: ")
    assert targets.verdict(checked, "metrics/train_seq_reber.json", "nothing") == "Not gated"
    # Taking a metric off the course list makes its bound a project bound.
    path = tmp_path / "reference" / "course.yaml"
    said = yaml.safe_load(path.read_text())
    del said["metrics/train_kmnist_conv.json"]
    path.write_text(yaml.safe_dump(said))
    again = targets.check(ROOT / "gates.yaml", tmp_path, "paper")
    assert targets.verdict(again, "metrics/train_kmnist_conv.json", "test_accuracy").startswith(
        "Project bound >= 0.93: ")


def test_the_committed_report_calls_only_course_bounds_course_targets():
    said = yaml.safe_load((ROOT / "reference" / "course.yaml").read_text())
    text = (ROOT / "reports" / "report.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| metrics/")]
    assert rows, "the appendix lists every bound"
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        file, metric, label = cells[0], cells[1], cells[4]
        if label in ("course target", "project bound"):
            assert (label == "course target") == (metric in said.get(file, {})), row
    # Sentences: a "Course target" label only beside a bound the course states.
    course_bounds = {g.bound_text() for g in gates.load(ROOT / "gates.yaml", "paper")
                     if g.metric in said.get(g.file, {})}
    for bound in re.findall(r"Course target (\S+ [\d.]+)", text):
        assert bound in course_bounds, bound
