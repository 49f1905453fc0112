"""Main is self-consistent: its dvc.lock, metrics, plots and report come from its own code and
params.  `dvc status` on the repository itself names no stage whose deps, params or command
changed since dvc.lock was written (outputs merely absent from a fresh clone's cache, and
deps that are such outputs, are fine)."""

import json

from conftest import ROOT, run


def stale_stages(status: dict) -> dict:
    """{stage: what changed} for every stage whose inputs differ from dvc.lock."""
    stale = {}
    for stage, items in status.items():
        for item in items:
            if not isinstance(item, dict):
                continue  # e.g. "always changed"
            if "changed command" in item:
                stale.setdefault(stage, []).append("command")
            for dep, change in (item.get("changed deps") or {}).items():
                if change != "deleted":  # a params dict, "modified" or "new"
                    stale.setdefault(stage, []).append({dep: change})
    return stale


def test_stale_stages_reads_dvc_status():
    status = {"fetch_kmnist": [{"changed deps": {"params.yaml": {"kmnist.source": "modified"}}}],
              "train_kmnist@lin": [{"changed deps": {"data/kmnist": "deleted"}},
                                   {"changed outs": {"models/kmnist_lin.pt": "deleted"}}],
              "report": [{"changed deps": {"src/nnstudies/report": "modified"}}, "changed command"]}
    assert stale_stages(status) == {
        "fetch_kmnist": [{"params.yaml": {"kmnist.source": "modified"}}],
        "report": [{"src/nnstudies/report": "modified"}]}


def test_main_results_match_its_code_and_params():
    proc = run(["dvc", "status", "--json"], ROOT, timeout=300)
    stale = stale_stages(json.loads(proc.stdout or "{}"))
    assert not stale, ("committed results are stale: regenerate with `dvc repro` and commit "
                       f"dvc.lock, metrics/, plots/, reports/ ({stale})")


def test_the_report_rebuilds_from_committed_files_alone(tmp_path):
    """A fresh clone has no DVC cache: no model, no data.  The report stage reads only the
    committed metrics, results and figures, so it rebuilds main's report byte for byte
    without running any other stage."""
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", "--no-local", str(ROOT), str(clone)], tmp_path)
    assert not (clone / "models").exists() and not (clone / "data" / "kmnist").exists()
    proc = run(["dvc", "repro", "--single-item", "--force", "report"], clone,
               NNSTUDIES_TRACKING="off")
    assert [line for line in proc.stdout.splitlines() if line.startswith("Running stage")] == [
        "Running stage 'report':"]
    for name in ("reports/report.md", "reports/report.html"):
        committed = run(["git", "show", f"HEAD:{name}"], ROOT).stdout
        assert (clone / name).read_text() == committed, f"{name} differs from the committed one"
