"""How stage scripts and the console command report bad input: one line, non-zero exit."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

from nnstudies import restore
from nnstudies.errors import UserError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def run(main: Callable[[], int | None], removes_outputs: bool = True) -> None:
    """Run a stage's ``main``; bad input becomes ``error: <what, where, allowed>``.

    Under DVC (which sets DVC_STAGE, and deletes a stage's outputs before running it) the line
    ends with the command that puts the last committed outputs back, unless the stage says
    its failure ``removes_outputs`` of no other stage (the params check).
    """
    stage = os.environ.get("DVC_STAGE") if removes_outputs else None
    after = f"; {restore.hint(stage)}" if stage else ""
    try:
        code = main()
        # Every output is written whole and the run recorded.  A Ctrl-C from here to the exit
        # (DVC passes it to the whole process group; Python's teardown can take a while)
        # would otherwise end the process by the signal ("exited with -2") with no word.
        signal.signal(signal.SIGINT, _interrupted_at_exit)
    except UserError as exc:
        print(f"error: {exc}{after}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        print(f"interrupted: {interrupted_outputs()}{after}", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code or 0)


def interrupted_outputs() -> str:
    """What an interrupted stage left: every output is whole or absent, never half-written."""
    from nnstudies.atomic import WRITTEN

    if not WRITTEN:
        return "no output was written (none is half-written)"
    names = ", ".join(str(p) for p in WRITTEN[:3]) + (", ..." if len(WRITTEN) > 3 else "")
    return (f"{len(WRITTEN)} output file(s) were written whole before it ({names}), none "
            "half-written; DVC records nothing for an interrupted stage: rerun it")


def _interrupted_at_exit(signum, frame) -> None:
    print("interrupted: after the stage had finished (every output written whole, its MLflow "
          "run recorded); DVC records nothing for an interrupted stage: rerun it", file=sys.stderr)
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)
