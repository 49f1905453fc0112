"""The command line shared by the per-task Study 3 stages (paths come from dvc.yaml)."""

import argparse

from nnstudies.seq.languages import LANGUAGES


def parse(doc: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("task", choices=LANGUAGES)
    for name in ("--data", "--models", "--plots", "--metrics"):
        parser.add_argument(name, required=True)
    return parser.parse_args()
