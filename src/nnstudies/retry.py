"""One retry loop for the project: a call that may fail for a moment is tried again."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def retry(call: Callable[..., T], *args, attempts: int, delay: float,
          when: Callable[[Exception], bool] = lambda exc: True, **kwargs) -> T:
    """``call(*args, **kwargs)``, retried up to ``attempts`` times while it raises an exception
    that ``when`` accepts, waiting ``delay``, then twice as long each time; the last failure
    (or any other exception) propagates."""
    for attempt in range(attempts):
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            if attempt == attempts - 1 or not when(exc):
                raise
            time.sleep(delay * 2 ** attempt)
    raise ValueError("attempts must be at least 1")
