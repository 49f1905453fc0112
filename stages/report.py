"""Stage report: the seed report, regenerated from every study's metrics, logs and figures.

Reads: profile, report, and the outputs of every other stage.  Writes: reports/report.md
(figures linked) and reports/report.html (self-contained: figures embedded, no external URL).
"""

import argparse
from pathlib import Path

from nnstudies import cli, params, tracking
from nnstudies.report import build


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", default="metrics", help="folder of the metrics JSON files")
    parser.add_argument("--plots", default="plots", help="folder of the stages' logs and figures")
    parser.add_argument("--gates", default="gates.yaml")
    parser.add_argument("--markdown", default="reports/report.md")
    parser.add_argument("--html", default="reports/report.html")
    args = parser.parse_args()
    p = params.load(["profile", "report", "tracking"])
    title = p["report"]["title"]
    with tracking.start("report", "report", p) as run:
        blocks = build.build(Path.cwd(), Path(args.metrics), Path(args.plots), Path(args.gates),
                             Path("params.yaml"), p["profile"], title)
        build.write(blocks, Path(args.markdown), Path(args.html), title)
        run.log_artifact(args.markdown, "report")
        run.log_artifact(args.html, "report")
    print(f"wrote {args.markdown} and {args.html}")


if __name__ == "__main__":
    cli.run(main)
