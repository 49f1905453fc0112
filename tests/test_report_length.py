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
