"""The ``nnstudies`` command: helpers around the DVC pipeline (profiles, gates, comparisons)."""

from __future__ import annotations

import argparse

from nnstudies import cli


def _profile(args) -> int:
    from nnstudies import profiles

    profiles.apply(args.name, args.params)
    print(f"params.yaml now uses the '{args.name}' profile")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnstudies", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("profile", help="merge profiles/<name>.yaml into params.yaml")
    p.add_argument("name")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=_profile)
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    cli.run(lambda: args.func(args))


if __name__ == "__main__":
    main()
