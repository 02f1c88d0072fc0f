"""One way from a story to its plan: templates, compile, keys, then (when a caller brings it) the lock's step.

Every caller (the API, `enhance`, `pick`, the studio) gets its plan from `assemble`, so a new step is added
once. The lock step lives with the lock file (storyforge.enhance.lock.applied) and is handed in: the planner
knows no lock."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from storyforge.plan.compiler import compile_plan
from storyforge.plan.model import Plan
from storyforge.story.load import Story
from storyforge.story.resolve import resolve
from storyforge.story.template import keyframe_writer, render_texts

# What a lock does to a compiled plan: final prompts, picks, extra takes; keys recomputed for what it holds.
LockStep = Callable[[Plan, Story], Plan]


def assemble(story: Story, overrides: dict[str, Any] | None = None, *, lock: LockStep | None = None) -> Plan:
    """The plan of a loaded story: templates rendered, compiled with every key, then `lock` applied."""
    with collector_paused():
        plan = compile_plan(resolve(story, overrides), render_texts, keyframe_writer(story))
        return lock(plan, story) if lock is not None else plan


_pause = threading.Lock()
_paused = [0, False]  # plans being made now (in any thread); whether the collector ran before the first began


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a plan is made (and its story loaded): nearly all it makes lives to
    its end (the story's nodes, texts, jobs, keys), so each collection only walks them again, and the little
    garbage it leaves in cycles is collected after. Counted, so plans made at once in threads (the studio) turn
    the collector back on once, when the last ends, and only where it was on."""
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
