"""How stage scripts and the console command report bad input: one line, non-zero exit."""

from __future__ import annotations

import os
import sys
from typing import Callable

from nnstudies.errors import UserError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def run(main: Callable[[], int | None]) -> None:
    """Run a stage's ``main``; bad input becomes ``error: <what, where, allowed>``."""
    try:
        code = main()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        print("interrupted: this run wrote no partial outputs", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code or 0)


def torch_threads() -> None:
    """Respect OMP_NUM_THREADS so parallel queue workers do not oversubscribe the cores."""
    import torch

    n = os.environ.get("OMP_NUM_THREADS")
    if n and n.isdigit() and int(n) > 0:
        torch.set_num_threads(int(n))
