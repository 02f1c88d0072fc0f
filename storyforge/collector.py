"""The cyclic garbage collector paused while a story is loaded and planned: what that makes lives to its end."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_pause = threading.Lock()
_paused = [0, False]  # plans being made now (in any thread); whether the collector ran before the first began


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside (a story loaded and planned, the command that prints the plan):
    nearly all it makes lives to its end (modules, the story's nodes, texts, jobs, keys), so each collection only
    walks them again, and the little garbage it leaves in cycles is collected after. Counted, so plans made at
    once in threads (the studio) turn the collector back on once, when the last ends, and only where it was on."""
    with _pause:
        if not _paused[0]:
            _paused[1] = gc.isenabled()
            gc.disable()
        _paused[0] += 1
    try:
        yield
    finally:
        with _pause:
            _paused[0] -= 1
            if not _paused[0] and _paused[1]:
                gc.enable()
