"""`storyforge pick`: the take chosen for a shot, recorded in the story's lock."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from storyforge.enhance.lock import lock_path, read_lock, read_picks, write_lock
from storyforge.errors import Problem, StoryError, StoryforgeError, display_path


@dataclass(frozen=True)
class PickReport:
    """What `storyforge pick` did."""

    lock: Path
    shot: str
    take: int
    takes: int
    previous: int  # the take picked before (1 when none was)
    changed: bool  # whether the lock file's bytes changed


def pick(path: Path | str, shot: str, take: int) -> PickReport:
    """Record `take` as the picked take of `shot` in the story's lock; errors name the shot's line."""
    from storyforge.enhance.assemble import assemble
    from storyforge.story.load import load

    story = load(path)
    plan = assemble(story, lock=False)  # the takes the story has, whatever the lock picks now
    source = story.source
    several = [job for job in plan.jobs if job.takes > 1]
    choices = (f"shots with several takes: {', '.join(job.id for job in several)}" if several
               else "no shot has several takes yet; set `takes:` under a film, scene or shot's `render:`")
    job = next((job for job in plan.jobs if job.id == shot), None)
    if job is None:
        raise StoryError([Problem(source.file, 0, "", f"no shot '{shot}' (write it as scene/shot); {choices}")])
    line = job.source.line
    if job.takes == 1:
        raise StoryError([Problem(source.file, line, shot, "has one take (takes: 1), so there is nothing to pick; "
                                  "set `takes:` in its `render:` (or its scene's or the film's) to render several")])
    if not 1 <= take <= job.takes:
        raise StoryError([Problem(source.file, line, shot, f"has takes 1 to {job.takes}; there is no take {take}")])
    shots, problem = read_lock(story.path)
    if problem:
        raise StoryforgeError(f"{display_path(lock_path(story.path))} is not a lock file storyforge can read "
                              f"({problem}); fix it, or remove it and run `storyforge enhance {source.file}`")
    picks = read_picks(story.path)
    previous = picks.get(shot, 1)
    picks[shot] = take
    changed = write_lock(story.path, shots or {}, dict(sorted(picks.items())))
    return PickReport(lock=lock_path(story.path), shot=shot, take=take, takes=job.takes, previous=previous,
                      changed=changed)
