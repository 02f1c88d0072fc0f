"""`storyforge enhance`: the lock's prompts brought up to date, expanded by an LLM where the story asks for one."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyforge.enhance.lock import entry_problem, llm_record, lock_path, read_lock, read_picks, write_lock
from storyforge.errors import Problem, StoryError, StoryforgeError
from storyforge.plan.model import Job, PlanWarning


@dataclass(frozen=True)
class EnhanceReport:
    """What `storyforge enhance` did to a lock file."""

    story: Path
    lock: Path
    llm: str | None  # the model that expanded prompts, as written; None: template prompts only
    updated: tuple[str, ...]  # shots whose entry was (re)written
    kept: tuple[str, ...]  # shots whose entry still matched
    fallbacks: tuple[str, ...]  # shots where the LLM gave nothing usable and the template prompt was locked
    warnings: tuple[PlanWarning, ...]
    changed: bool  # whether the lock file's bytes changed
    seconds: float  # loading the model and generating


def refresh(path: Path | str, *, llm: str | None = None, force: bool = False,
            on_progress: Callable[[int, int], None] | None = None, batch_size: int | None = None) -> EnhanceReport:
    """Bring a story's lock up to date: entries for shots whose inputs changed (all with `force`) are rewritten,
    expanded by the LLM (`llm`, else the story's `enhance.llm`) loaded once and freed before this returns."""
    from storyforge.enhance import qwen
    from storyforge.enhance.assemble import assemble
    from storyforge.story.load import load
    from storyforge.story.template import prompt_template

    story = load(path)
    plan = assemble(story, lock=False)
    template = prompt_template(story)
    enhance = story.film.enhance
    source = story.source
    wanted: dict[str, Any] | None = None
    ref: qwen.ModelRef | None = None
    if llm or enhance.llm:
        try:
            if not llm and (enhance.llm or "").startswith(("/", ".", "~")):  # a folder the story names: its root
                from storyforge.story.root import PathRefused

                try:
                    story.locate(enhance.llm or "", folder=True)
                except PathRefused as refused:
                    if "outside the story root" in str(refused):
                        raise StoryforgeError(str(refused)) from None
            ref = qwen.locate(llm, Path.cwd()) if llm else qwen.locate(enhance.llm or "", story.path.parent)
        except StoryforgeError as error:
            if llm:
                raise
            raise StoryError([Problem(source.file, source.line(("enhance", "llm")), "enhance.llm",
                                      str(error))]) from None
        wanted = llm_record(ref.name, ref.sha256, enhance)
    old, _ = read_lock(story.path)
    old = old or {}
    template_record = {"name": template.name, "sha256": template.sha256}
    entries: dict[str, dict[str, Any]] = {}
    todo: list[Job] = []
    kept: list[str] = []
    for job in plan.jobs:
        entry = old.get(job.id)
        fits = (not force and entry_problem(entry) is None and entry["template_prompt"] == job.template_prompt
                and entry.get("kind") == job.kind and entry["llm"] == wanted)
        if fits:
            entries[job.id] = {**entry, "template": template_record}  # the same text, from today's template
            kept.append(job.id)
        else:
            todo.append(job)
    fallbacks: list[str] = []
    warnings: list[PlanWarning] = []
    started = time.perf_counter()
    expansions: dict[str, qwen.Expansion] = {}
    if ref is not None and todo:
        requests = [qwen.Request(job.id, job.template_prompt, starts_from_image=job.kind == "i2v",
                                 continues=job.continues) for job in todo]
        results = qwen.expand(requests, ref, seed=enhance.seed, max_new_tokens=enhance.max_new_tokens,
                              batch_size=batch_size or qwen.DEFAULT_BATCH, on_progress=on_progress)
        expansions = {result.id: result for result in results}
    for job in todo:
        entry = {"kind": job.kind, "template": template_record, "template_prompt": job.template_prompt,
                 "llm": wanted, "prompt": job.template_prompt, "source": "template"}
        expansion = expansions.get(job.id)
        if expansion is not None and expansion.prompt is not None:
            entry.update(prompt=expansion.prompt, source="llm")
        elif expansion is not None:
            entry.update(source="fallback", note=f"{expansion.reason}; the template prompt is locked")
            fallbacks.append(job.id)
            warnings.append(PlanWarning(source.file, job.source.line, job.id,
                                    f"the LLM gave nothing usable ({expansion.reason}); locked the template "
                                    "prompt instead"))
        entries[job.id] = entry
    seconds = time.perf_counter() - started
    picks = {shot: take for shot, take in read_picks(story.path).items() if shot in entries}  # like entries
    changed = write_lock(story.path, entries, picks)
    return EnhanceReport(story=story.path, lock=lock_path(story.path), llm=ref.name if ref else None,
                         updated=tuple(job.id for job in todo), kept=tuple(kept), fallbacks=tuple(fallbacks),
                         warnings=tuple(warnings), changed=changed, seconds=seconds)
