"""The lock file beside a story (film.yaml -> film.lock.json): final prompts pinned for reproducible renders."""

from __future__ import annotations

from pathlib import Path

from storyforge.plan.model import Plan


def lock_path(story: Path) -> Path:
    """film.yaml -> film.lock.json, beside the story."""
    return story.with_name(story.stem + ".lock.json")


def apply_lock(plan: Plan) -> Plan:
    """The plan with locked prompts where the lock matches; unchanged when there is no lock file."""
    if not lock_path(plan.story).exists():
        return plan
    raise NotImplementedError  # replaced by the enhancer work (issue 4)
