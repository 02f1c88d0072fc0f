"""Where a film's takes and clips go inside its output folder."""

from __future__ import annotations

from typing import TYPE_CHECKING

from storyforge.story.checks import file_stem  # one rule, which validate keeps injective

if TYPE_CHECKING:
    from storyforge.plan.model import Job


def clip_name(job: Job) -> str:
    """`clips/<scene>__<shot>.mp4`, relative to the output folder."""
    return "clips/" + file_stem(job.id) + ".mp4"


def take_name(job: Job, take: int | None = None) -> str:
    """`takes/<scene>__<shot>/take<N>.mp4` (the job's own take by default), relative to the output folder."""
    return f"takes/{file_stem(job.id)}/take{job.take if take is None else take}.mp4"
