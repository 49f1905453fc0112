"""The committed report reads as a short paper: its main body (everything before the first
appendix) stays within 4,000 words, and the details it leaves out are in the appendices."""

import re

from conftest import ROOT

LIMIT = 4000


def body_words(markdown: str) -> int:
    """Words of the main body, tables and captions included (a word: a run of non-blanks)."""
    return len(markdown[:markdown.index("\n## Appendix")].split())


def test_the_main_body_has_at_most_4000_words():
    markdown = (ROOT / "reports/report.md").read_text()
    count = body_words(markdown)
    assert count <= LIMIT, f"the report's main body has {count:,} words (limit {LIMIT:,})"
    headings = re.findall(r"^## (.+)$", markdown, re.M)
    body = headings[:next(i for i, h in enumerate(headings) if h.startswith("Appendix"))]
    assert body[:2] == ["Summary", "Contents"] and body[-2:] == ["Limitations", "References"]
    for part in ("Appendix A: Part 1 in detail", "Appendix B: Part 2 in detail",
                 "Appendix C: Part 3 in detail", "Appendix D: the sweeps in detail"):
        assert part in headings


def test_the_count_is_of_the_body_alone():
    text = "# T\n\none two three\n\n## Appendix A: x\n\nfour five\n"
    assert body_words(text) == 5  # "# T one two three": the heading's words count too


def test_every_figure_names_the_stage_that_made_it():
    import yaml

    markdown = (ROOT / "reports/report.md").read_text()
    stages = set(yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"])
    captions = re.findall(r"^!\[(.*)\]\(([^()]+)\)$", markdown, re.M)
    assert len(captions) > 20
    for caption, path in captions:
        named = re.search(r"\[`([\w@]+)`\]$", caption)
        assert named and named.group(1) in stages, f"{path}: {caption!r} names no stage"
        assert f"plots/{named.group(1).replace('@', '_')}/" in path  # the stage whose folder it is


def test_the_inputs_fingerprint_follows_deps_and_params_not_outputs(tmp_path):
    import yaml

    from nnstudies.report import summary

    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())
    lock["stages"]["make_grammar@reber"] = lock["stages"]["make_seq@reber"]  # a removed stage
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    (tmp_path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    before = summary.fingerprints(tmp_path)
    assert "report" not in before and "make_grammar@reber" not in before
    assert before.keys() <= set(lock["stages"]) and "train_seq@anbn" in before
    lock["stages"]["train_checker"]["outs"][0]["md5"] = "0" * 32  # results regenerated
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    assert summary.fingerprints(tmp_path) == before
    lock["stages"]["train_checker"]["deps"][0]["md5"] = "1" * 32  # its code changed
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    after = summary.fingerprints(tmp_path)
    assert after["train_checker"] != before["train_checker"]
    assert {k: v for k, v in after.items() if k != "train_checker"} == \
        {k: v for k, v in before.items() if k != "train_checker"}
    assert "| train_checker" in (ROOT / "reports/report.md").read_text()
