"""Stage report: the seed report, regenerated from every study's committed outputs.

Reads: profile, report, tracking, gates.yaml, and metrics/, results/ and plots/ of every other
stage (never a log, never the DVC cache).  Writes: reports/report.md (figures linked) and
reports/report.html (self-contained: figures embedded, no external URL).
"""

import argparse
from pathlib import Path

from nnstudies import cli, layout, params, tracking
from nnstudies.report import build

PARAMS = ["profile", "report", "tracking"]
MARKDOWN, HTML = (layout.REPORTS / "report.md", layout.REPORTS / "report.html")


def main():
    argparse.ArgumentParser(description=__doc__).parse_args()
    p = params.load(PARAMS)
    title = p["report"]["title"]
    with tracking.start(tracking.REPORT_EXPERIMENT, "report", p) as run:
        blocks = build.build(Path.cwd(), layout.METRICS, layout.RESULTS, layout.PLOTS,
                             Path("gates.yaml"), Path("params.yaml"), p["profile"], title)
        build.write(blocks, MARKDOWN, HTML, title)
        run.log_artifact(MARKDOWN, "report")
        run.log_artifact(HTML, "report")
    print(f"wrote {MARKDOWN} and {HTML}")


if __name__ == "__main__":
    cli.run(main)
