"""The ``nnstudies`` command: helpers around the DVC pipeline (profiles, gates, comparisons)."""

from __future__ import annotations

import argparse

from nnstudies import cli


def _profile(args) -> int:
    from nnstudies import profiles

    profiles.apply(args.name, args.params)
    print(f"{args.params} now uses the '{args.name}' profile")
    return 0


def _gate(args) -> int:
    from nnstudies import gates, params

    profile = args.profile or params.load(["profile"], args.params)["profile"]
    return gates.run(args.gates, profile, base=args.base)


def _compare(args) -> int:
    from nnstudies import compare, tracking

    metrics = args.metrics.split(",") if args.metrics else None
    runs = compare.search()
    shown = compare.latest(args.stage, args.experiment, all_stages=args.all, runs=runs)
    stages = set(shown["stage"]) if shown is not None else set()
    notes = compare.restored(runs, tracking.repo_root() / "dvc.lock", stages)
    print(compare.table(shown, metrics, notes=notes))
    return 0


def _exp(args) -> int:
    from nnstudies import exptable

    print(exptable.show(args.study))
    return 0


def _plots(args) -> int:
    from nnstudies import plotsview

    print(plotsview.show(args.revs, args.out, args.json))
    return 0


def _flush(args) -> int:
    from nnstudies import tracking

    return tracking.main(["flush", *(["--drop"] if args.drop else [])])


def _restore(args) -> int:
    from nnstudies import restore

    for line in restore.restore(args.stage):
        print(f"restored {line}")
    return 0


def _ui(args) -> int:
    from nnstudies import compare

    compare.serve(args.port)  # does not return: the server takes over this process
    return 0


def _plots_template(args) -> int:
    from nnstudies import atomic, plots_template

    atomic.write_bytes(args.out, plots_template.build(args.node_modules).encode("utf8"))
    print(f"wrote {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnstudies", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("profile", help="merge profiles/<name>.yaml into params.yaml")
    p.add_argument("name")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=_profile)

    p = sub.add_parser("gate", help="check metrics/*.json against the bounds in gates.yaml")
    p.add_argument("--profile", help="profile of gates.yaml (default: params.yaml's `profile`)")
    p.add_argument("--gates", default="gates.yaml")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--base", metavar="REV", help="also compare every metric with REV's (dvc metrics "
                   "diff): each may move by its kind's tolerance in gates.yaml, either way")
    p.set_defaults(func=_gate)

    p = sub.add_parser("compare", help="Markdown table of the latest MLflow run per training stage, "
                                       "best first; which run made the workspace's outputs")
    p.add_argument("--stage", metavar="PREFIX", help="only stages whose name starts with this")
    p.add_argument("--experiment", metavar="NAME", help="only this DVC experiment ('' = workspace)")
    p.add_argument("--metrics", metavar="A,B", help="metric columns (default: the study's key metrics)")
    p.add_argument("--all", action="store_true", help="every stage, not only the training ones")
    p.set_defaults(func=_compare)

    p = sub.add_parser("exp", help="DVC's experiments, one table per study that fits 160 columns: "
                                   "name, the params that differ, the key metrics (rounded)")
    p.add_argument("study", nargs="?", help="kmnist, checker, seq or sweep (default: the studies "
                                            "whose params or key metrics differ between the rows)")
    p.set_defaults(func=_exp)

    p = sub.add_parser("plots", help="`dvc plots diff` of the views declared in dvc.yaml's "
                                     "top-level plots only (no results JSON, no twins)")
    p.add_argument("revs", nargs="*", metavar="REV", help="revisions or experiment names "
                   "(none: HEAD and the workspace, as `dvc plots diff`)")
    p.add_argument("-o", "--out", default="dvc_plots", help="folder of the page (default dvc_plots)")
    p.add_argument("--json", action="store_true", help="print DVC's JSON of the panels instead")
    p.set_defaults(func=_plots)

    p = sub.add_parser("flush", help="send the runs waiting in the outbox to MLflow, and wait")
    p.add_argument("--drop", action="store_true",
                   help="delete each run that cannot be sent now (e.g. recorded for a dead or "
                        "mistyped MLFLOW_TRACKING_URI), naming it")
    p.set_defaults(func=_flush)

    p = sub.add_parser("restore", help="put a failed stage's last committed outputs back")
    p.add_argument("stage", help="the stage as dvc.lock names it, e.g. train_kmnist@conv")
    p.set_defaults(func=_restore)

    p = sub.add_parser("ui", help="start the MLflow UI on 127.0.0.1 over the pipeline's runs; "
                                  "prints each study's runs and per-epoch curves as links")
    p.add_argument("--port", type=int, default=5000, help="1-65535, free on 127.0.0.1 (default 5000)")
    p.set_defaults(func=_ui)

    p = sub.add_parser("plots-template", help="build the offline `dvc plots` HTML template")
    p.add_argument("node_modules", help="npm node_modules with vega, vega-lite, vega-embed")
    p.add_argument("--out", default=".dvc/plots/offline.html")
    p.set_defaults(func=_plots_template)
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    cli.run(lambda: args.func(args))


if __name__ == "__main__":
    main()
