"""One way from a story to its plan: templates, compile, the lock's prompts and picks, keys. Every caller (the
API, `enhance`, `pick`, the studio) gets its plan here, so a new step is added once."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from storyforge.enhance.lock import lock_path, read_lock, read_picks, stale_reason
from storyforge.errors import display_path
from storyforge.plan.compiler import compile_plan, instruction, with_keys
from storyforge.plan.model import Job, Plan, PlanWarning
from storyforge.story.load import Story, load
from storyforge.story.resolve import resolve
from storyforge.story.template import keyframe_writer, render_texts


def assemble(story: Story, overrides: dict[str, Any] | None = None, *, lock: bool = True) -> Plan:
    """The plan of a loaded story: templates rendered, compiled, then (with `lock`) the lock file's prompts where
    they match and its picks, every key computed for what the plan ends up holding."""
    plan = compile_plan(resolve(story, overrides), render_texts, keyframe_writer(story))
    if lock:
        plan = apply_picks(apply_lock(plan, story), story)
    return plan


def apply_lock(plan: Plan, story: Story | None = None) -> Plan:
    """The plan with locked prompts where the lock matches, and a warning for each stale or missing entry;
    unchanged when there is no lock file (with a warning when the story asks for an LLM)."""
    story = story or load(plan.story)
    shots, problem = read_lock(plan.story)
    lock_name = lock_path(plan.story).name
    run = f"run `storyforge enhance {story.source.file}`"
    source = story.source
    enhance = story.film.enhance
    if not shots:  # no lock, or one that holds only picks
        if problem:
            warning = PlanWarning(display_path(lock_path(plan.story)), 1, "lock",
                              f"{lock_name} is not a lock file storyforge can read ({problem}); prompts are the "
                              f"templates'; {run} to rewrite it")
            return replace(plan, warnings=plan.warnings + (warning,))
        if enhance.llm:
            warning = PlanWarning(source.file, source.line(("enhance", "llm")), "enhance.llm",
                              f"enhance.llm is set but there is no {lock_name} yet; prompts are the templates' "
                              f"until you {run}" if shots is None else
                              f"enhance.llm is set but {lock_name} holds no prompts yet (only picks); prompts are "
                              f"the templates' until you {run}")
            return replace(plan, warnings=plan.warnings + (warning,))
        return plan
    jobs: list[Job] = []
    write_keyframe = keyframe_writer(story)
    warnings = list(plan.warnings)
    for job in plan.jobs:
        line = job.source.line
        if job.id not in shots:
            warnings.append(PlanWarning(source.file, line, job.id, f"not in {lock_name} yet; using the template "
                                    f"prompt; {run}"))
            jobs.append(job)
            continue
        reason = stale_reason(shots[job.id], job, enhance)
        if reason:
            warnings.append(PlanWarning(source.file, line, job.id, f"the locked prompt is stale ({reason}); using the "
                                    f"template prompt; {run} to update {lock_name}"))
            jobs.append(job)
        else:
            job = replace(job, prompt=shots[job.id]["prompt"])
            if job.keyframe is not None:  # the keyframe is composed from the final prompt
                job = replace(job, keyframe=replace(job.keyframe, prompt=instruction(
                    write_keyframe, job.prompt, job.camera, job.keyframe)))
            jobs.append(job)
    warnings.sort(key=lambda w: (w.file != source.file, w.line, w.where))
    return with_keys(replace(plan, jobs=tuple(jobs), warnings=tuple(warnings)))


def apply_picks(plan: Plan, story: Story | None = None) -> Plan:
    """The plan with each job's picked take from the lock (take 1 when none is picked), keys chained to
    the picks; a pick the shot no longer has falls back to take 1 with a warning."""
    picks = read_picks(plan.story)
    if not picks:
        return plan
    story = story or load(plan.story)
    jobs: list[Job] = []
    warnings = list(plan.warnings)
    for job in plan.jobs:
        take = picks.get(job.id, 1)
        if take > job.takes:
            line = job.source.line
            warnings.append(PlanWarning(story.source.file, line, job.id,
                                        f"{lock_path(plan.story).name} picks take {take}, but the shot has "
                                        f"{job.takes} take{'s' if job.takes > 1 else ''} now; using take 1 "
                                        f"(`storyforge pick {story.source.file} {job.id} N` chooses another)"))
            take = 1
        jobs.append(replace(job, take=take))
    if all(job.take == old.take for job, old in zip(jobs, plan.jobs, strict=True)) and len(warnings) == len(
            plan.warnings):
        return plan
    return with_keys(replace(plan, jobs=tuple(jobs), warnings=tuple(warnings)))
