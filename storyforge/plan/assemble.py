"""One way from a story to its plan: templates, compile, keys, then (when a caller brings it) the lock's step.

Every caller (the API, `enhance`, `pick`, the studio) gets its plan from `assemble`, so a new step is added
once. The lock step lives with the lock file (storyforge.enhance.lock.applied) and is handed in: the planner
knows no lock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from storyforge.collector import collector_paused
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

