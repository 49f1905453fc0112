"""The generated report and the CI gate, on the whole pipeline run through `dvc repro`
with the CI profile (the bundled real KMNIST sample)."""

import json
import re
import shutil
import subprocess

import pytest

from conftest import run

pytestmark = pytest.mark.pipeline


def test_pipeline_passes_the_ci_gates(ci_pipeline):
    proc = run(["nnstudies", "gate", "--profile", "ci"], ci_pipeline, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| FAIL" not in proc.stdout and "train_kmnist_conv.json" in proc.stdout


def test_gate_fails_when_a_bound_is_tightened_above_the_measured_value(ci_pipeline, tmp_path):
    measured = json.loads((ci_pipeline / "metrics/train_checker.json").read_text())["restarts_succeeded"]
    tight = tmp_path / "gates.yaml"
    tight.write_text(f"ci:\n  metrics/train_checker.json:\n    restarts_succeeded: {{min: {measured + 1}}}\n")
    proc = run(["nnstudies", "gate", "--profile", "ci", "--gates", str(tight)], ci_pipeline, check=False)
    assert proc.returncode == 1 and "FAIL" in proc.stdout


def test_report_figures_exist_and_html_is_self_contained(ci_pipeline):
    markdown = (ci_pipeline / "reports/report.md").read_text()
    html = (ci_pipeline / "reports/report.html").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert len(links) > 40
    for link in links:
        assert (ci_pipeline / "reports" / link).resolve().is_file(), link
    assert html.count("<img ") == len(links)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<script" not in html and "@import" not in html
    for part in ("Part 1: Japanese character recognition", "Part 2: Multi-layer perceptron",
                 "Part 3: Hidden-unit dynamics", "Run summary"):
        assert part in markdown and part in html


def test_report_numbers_equal_the_metrics_files(ci_pipeline):
    markdown = (ci_pipeline / "reports/report.md").read_text()
    metrics = lambda name: json.loads((ci_pipeline / "metrics" / f"{name}.json").read_text())
    for net in ("lin", "full", "conv"):
        m = metrics(f"train_kmnist_{net}")
        assert f"**test accuracy {100 * m['test_accuracy']:.2f}%**" in markdown
        assert f"**{m['parameters']:,}** counted from the model" in markdown
        log = (ci_pipeline / f"logs/train_kmnist_{net}/train.log").read_text()
        assert log.rstrip().splitlines()[-1] in markdown  # the last "Test set:" line
    check = metrics("train_checker")
    assert f"**{check['restarts_reached_100']} reached 100%**" in markdown
    assert f"**{check['restarts_succeeded']} met the patience rule**" in markdown
    for task in ("reber", "anbn", "anbncn", "ereber"):
        trained = metrics(f"train_seq_{task}")
        assert f"error **{trained['error']:.4f}**" in markdown
        # The true number of restarts (the report once counted the per-restart metric names).
        assert f"{trained['restarts']} restarts trained side by side; " \
               f"**{trained['success_count']}** met" in markdown
        assert f"| {trained['success_count']}/{trained['restarts']} |" in markdown
    fetch = metrics("fetch_kmnist")
    for md5 in (f["md5"] for f in fetch["files"].values()):
        assert md5 in markdown
    assert "| profile | default | ci |" in markdown  # the params diff against the commit
    assert "| seq.train.restarts | 16 | 4 |" in markdown


def test_report_renders_in_headless_chromium(ci_pipeline, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it with apt-get)")
    shot = tmp_path / "report.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
                    "--window-size=1200,3000", f"--screenshot={shot}",
                    (ci_pipeline / "reports/report.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    from PIL import Image

    image = Image.open(shot).convert("L")
    dark = sum(image.histogram()[:128])
    assert image.size == (1200, 3000) and dark > 20000  # text, tables and figures drew
