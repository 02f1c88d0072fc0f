"""The lock file beside a story (film.yaml -> film.lock.json): final prompts pinned, with what produced them,
and the director's choices: the take picked for each shot, rejected takes, notes, extra takes asked for."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from storyforge.confined import Folder, Refused, refusal
from storyforge.errors import Problem, StoryError, StoryforgeError, display_path
from storyforge.plan.model import Job, Plan, PlanWarning
from storyforge.story.load import Story
from storyforge.story.models import Enhance

LOCK_FORMAT = 1
MAX_LOCK_BYTES = 50_000_000
MAX_LOCK_ENTRIES = 100_000  # shots (or picks, notes...) in one lock
MAX_PROMPT_CHARS = 20_000
_SYNTAX = ("{{", "{%", "{#")


def lock_path(story: Path) -> Path:
    """film.yaml -> film.lock.json, beside the story."""
    return story.with_name(story.stem + ".lock.json")


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


# -- the file ------------------------------------------------------------------------------------------------


MAX_NOTE_CHARS = 2_000


@dataclass(frozen=True)
class Choices:
    """What a director decided about takes, besides the picks: each kept in the lock only when there is some."""

    rejected: dict[str, tuple[int, ...]] = field(default_factory=dict)  # shot -> takes hidden from review
    notes: dict[str, dict[int, str]] = field(default_factory=dict)  # shot -> take -> a note
    extra_takes: dict[str, int] = field(default_factory=dict)  # shot -> takes asked for beyond the story's
    keyframe_picks: dict[str, int] = field(default_factory=dict)  # shot -> the keyframe candidate chosen

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "rejected": {shot: sorted(takes) for shot, takes in sorted(self.rejected.items()) if takes},
            "notes": {shot: {str(take): text for take, text in sorted(notes.items())}
                      for shot, notes in sorted(self.notes.items()) if notes},
            "extra_takes": {shot: n for shot, n in sorted(self.extra_takes.items()) if n},
            "keyframe_picks": dict(sorted(self.keyframe_picks.items())),
        }
        return {name: value for name, value in data.items() if value}


def dumps(story: Path, shots: dict[str, dict[str, Any]], picks: dict[str, int] | None = None,
          choices: Choices | None = None) -> str:
    """The lock's text: sorted keys, two-space indent, a trailing newline, so it diffs well in review.
    `picks` and each of the `choices` appear only when there are some: a lock without them reads as it always
    did."""
    data: dict[str, Any] = {"storyforge_lock": LOCK_FORMAT, "story": story.name, "shots": shots}
    if picks:
        data["picks"] = picks
    if choices is not None:
        data.update(choices.to_json())
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


class ForeignLock(StoryforgeError):
    """The lock file beside a story belongs to another story file with the same stem (film.yaml, film.yml)."""


def _story_folder(story: Path) -> Folder:
    """The story's folder, as the user named it (followed); everything below it is reached through the door."""
    folder = Path(os.path.abspath(story)).parent
    return Folder.open(folder, below=folder)


# parsed locks by (lock file, the story asking: its check differs) and file identity, see _load
_loaded: dict[tuple[Path, str], tuple[tuple[int, int, int], tuple[Any, Any]]] = {}
_loaded_lock = threading.Lock()


def _load(story: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the lock's JSON, None), (None, why it is unusable), or (None, None) when there is none. Read once, through
    the door: a link, a FIFO or a device named film.lock.json is never followed or opened for reading. A plan
    reads the lock several times: the parse is kept while the file's identity (inode, size, mtime) stays."""
    import copy

    path = lock_path(story)
    key = (Path(os.path.abspath(path)), Path(story).name)
    try:
        with _story_folder(story) as folder:
            info = folder.stat(path.name)
            identity = (info.st_ino, info.st_size, info.st_mtime_ns) if info is not None else None
            with _loaded_lock:
                known = _loaded.get(key)
            if identity is not None and known is not None and known[0] == identity:
                data, problem = known[1]
            else:
                data, problem = _parse(story, folder, path)
                if identity is not None and stat.S_ISREG(info.st_mode):
                    with _loaded_lock:
                        _loaded[key] = (identity, (data, problem))
    except FileNotFoundError:
        return None, None
    if isinstance(problem, ForeignLock):
        raise problem
    return (copy.deepcopy(data), None) if data is not None else (None, problem)


def _parse(story: Path, folder: Folder, path: Path) -> tuple[Any, Any]:
    try:
        data = folder.read_json(path.name, MAX_LOCK_BYTES, items=8 * MAX_LOCK_ENTRIES)
    except Refused as refused:
        if "larger than" in str(refused):
            return None, f"it is larger than {MAX_LOCK_BYTES // 1_000_000} MB"
        return None, "it is a link, a folder, a FIFO or a device, not a file storyforge wrote"
    except ValueError as error:  # not JSON, too deep, a number of thousands of digits, not UTF-8, too many
        return None, f"it is not JSON ({error})" if "entries" not in str(error) else str(error)
    if not isinstance(data, dict) or data.get("storyforge_lock") != LOCK_FORMAT:
        return None, f"it is not a storyforge lock of format {LOCK_FORMAT}"
    crowded = next((name for name, value in data.items() if isinstance(value, dict | list)
                    and len(value) > MAX_LOCK_ENTRIES), None)
    if crowded is not None:  # no film has that many shots: every later step would crawl through them
        return None, f"its '{crowded:.40}' holds more than {MAX_LOCK_ENTRIES} entries"
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError, RecursionError):
        return None, "it holds text that is not valid Unicode (a lone surrogate) or numbers too large"
    written_for = data.get("story")
    if written_for is not None and written_for != Path(story).name:
        shown = display_path(path)
        return None, ForeignLock(f"{shown} belongs to the story file {written_for!s:.200}, not to {Path(story).name}: "
                                 f"two story files with the stem '{Path(story).stem}' would share one lock (its "
                                 "prompts and picks); rename one of them (each story's lock is named after its "
                                 f"stem), or remove {shown} if {Path(story).name} is the only story left")
    return data, None


def read_lock(story: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the entries by shot id, None), (None, why the file is unusable), or (None, None) when there is none."""
    data, problem = _load(story)
    if data is None:
        return None, problem
    shots = data.get("shots")
    if not isinstance(shots, dict):
        return None, "it has no 'shots'"
    return shots, None


def read_picks(story: Path) -> dict[str, int]:
    """The picked take of each shot (shot id -> take number) in the lock; {} when there is none or no lock."""
    from storyforge.story.models import MAX_TAKES

    data, _problem = _load(story)
    picks = data.get("picks") if data is not None and isinstance(data.get("shots"), dict) else None
    if not isinstance(picks, dict):
        return {}
    return {shot: take for shot, take in picks.items()
            if isinstance(shot, str) and isinstance(take, int) and not isinstance(take, bool)
            and 1 <= take <= MAX_TAKES}


_guards: dict[Path, int] = {}  # lock files this process holds now, and how often (so the guard is re-entrant)
_guards_lock = threading.Lock()


@contextlib.contextmanager
def guarded(story: Path) -> Iterator[None]:
    """Hold the story's lock file for a read-modify-write (`storyforge pick`, `enhance`): a file lock on
    `.storyforge/<lock name>.guard` beside the story, on every platform; others wait. Re-entrant in a process."""
    import filelock

    key = Path(os.path.abspath(lock_path(story)))
    with _guards_lock:
        if key in _guards:
            _guards[key] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield
        finally:
            with _guards_lock:
                _guards[key] -= 1
        return
    name = f".storyforge/{key.name}.guard"
    with _story_folder(story) as folder:
        try:
            fd = folder.open_fd(name, os.O_RDWR | os.O_CREAT | getattr(os, "O_NONBLOCK", 0))
        except Refused:
            raise
        except OSError as error:
            raise StoryforgeError(f"cannot lock {display_path(lock_path(story))}: {error.strerror} (a read-only "
                                  "folder?); make the story's folder writable") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise refusal(key.parent / name, "not a regular file of its own")
        filelock.lock_descriptor(fd, poll_interval=0.02)
        with _guards_lock:
            _guards[key] = 1
        try:
            yield
        finally:
            with _guards_lock:
                _guards.pop(key, None)
            filelock.unlock_descriptor(fd)
    finally:
        os.close(fd)


def _number(value: Any, most: int) -> int | None:
    """A take or candidate number as the lock may hold it: a whole number from 1 to `most` (JSON keys are text)."""
    if isinstance(value, str) and value.isdigit() and len(value) <= 3:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= most:
        return value
    return None


def read_choices(story: Path) -> Choices:
    """The rejected takes, notes, extra takes and keyframe picks in the lock; entries that are not well formed
    are left out (the lock stays readable for picks and prompts)."""
    from storyforge.story.models import MAX_TAKES

    data, _problem = _load(story)
    if data is None or not isinstance(data.get("shots"), dict):
        return Choices()
    named = {name: value for name, value in data.items() if isinstance(value, dict)}
    rejected = {shot: tuple(sorted({n for n in (_number(t, MAX_TAKES) for t in takes) if n is not None}))
                for shot, takes in named.get("rejected", {}).items()
                if isinstance(shot, str) and isinstance(takes, list)}
    notes: dict[str, dict[int, str]] = {}
    for shot, by_take in named.get("notes", {}).items():
        if isinstance(shot, str) and isinstance(by_take, dict):
            notes[shot] = {n: text[:MAX_NOTE_CHARS] for take, text in by_take.items()
                           if (n := _number(take, MAX_TAKES)) is not None and isinstance(text, str) and text}
    extra = {shot: n for shot, value in named.get("extra_takes", {}).items()
             if isinstance(shot, str) and (n := _number(value, MAX_TAKES)) is not None}
    keyframes = {shot: n for shot, value in named.get("keyframe_picks", {}).items()
                 if isinstance(shot, str) and (n := _number(value, MAX_TAKES)) is not None}
    return Choices(rejected={shot: takes for shot, takes in rejected.items() if takes},
                   notes={shot: by_take for shot, by_take in notes.items() if by_take}, extra_takes=extra,
                   keyframe_picks=keyframes)


def write_lock(story: Path, shots: dict[str, dict[str, Any]], picks: dict[str, int] | None = None,
               choices: Choices | None = None) -> bool:
    """Write the lock beside the story, atomically (staged, flushed, renamed over it) under its file lock; False
    when unchanged. `picks=None` and `choices=None` keep what the lock holds now (enhance rewrites prompts, never
    choices)."""
    path = lock_path(story)
    with guarded(story), _story_folder(story) as folder:
        text = dumps(story, shots, read_picks(story) if picks is None else picks,
                     read_choices(story) if choices is None else choices)
        try:
            if folder.read(path.name, MAX_LOCK_BYTES) == text.encode("utf-8"):
                return False
        except (FileNotFoundError, Refused):
            pass
        from storyforge.atomic import check_replaceable

        check_replaceable(path)  # a FIFO, a device or a folder named film.lock.json stays as it is
        folder.write_text(path.name, text, durable=True)
    return True


# -- matching ----------------------------------------------------------------------------------------------


def llm_record(name: str, sha256: str | None, enhance: Enhance) -> dict[str, Any]:
    """What produced an LLM prompt, as stored in an entry; equal records give equal prompts."""
    from storyforge.enhance.qwen import INSTRUCTIONS_SHA256

    return {"model": name, "sha256": sha256, "seed": enhance.seed, "max_new_tokens": enhance.max_new_tokens,
            "instructions_sha256": INSTRUCTIONS_SHA256}


def _entry_problem(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return "its entry is not a mapping"
    prompt = entry.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_PROMPT_CHARS:
        return "its locked prompt is empty or not text"
    if any(mark in prompt for mark in _SYNTAX):
        return "its locked prompt contains template syntax"
    if not isinstance(entry.get("template_prompt"), str) or not isinstance(entry.get("llm"), (dict, type(None))):
        return "its entry is incomplete"
    return None


def stale_reason(entry: Any, job: Job, enhance: Enhance) -> str | None:
    """Why a lock entry no longer fits a job (as planned from the story), or None when it does.

    The story's `enhance.llm`, when set, must be the model that wrote the entry; when it is not set, the lock
    decides (`storyforge enhance --llm M` writes prompts a plan then uses). A model folder's hash is checked by
    `enhance`, not here: planning never reads model files."""
    from storyforge.enhance.qwen import INSTRUCTIONS_SHA256

    problem = _entry_problem(entry)
    if problem:
        return problem
    if entry["template_prompt"] != job.template_prompt:
        return "the shot's prompt changed since the lock was written"
    if entry.get("kind") != job.kind:
        return f"the shot changed from {entry.get('kind')} to {job.kind}"
    llm = entry["llm"]
    if enhance.llm and (llm is None or llm.get("model") != enhance.llm):
        written = f"with {llm.get('model')}" if llm else "without an LLM"
        return f"the story asks for {enhance.llm} but the lock was written {written}"
    if llm is not None:
        if (llm.get("seed"), llm.get("max_new_tokens")) != (enhance.seed, enhance.max_new_tokens):
            return "enhance.seed or enhance.max_new_tokens changed"
        if llm.get("instructions_sha256") != INSTRUCTIONS_SHA256:
            return "storyforge's instructions to the LLM changed"
    return None


def apply_lock(plan: Plan, story: Story | None = None) -> Plan:
    """The plan with locked prompts where the lock matches, and a warning for each stale or missing entry;
    unchanged when there is no lock file (with a warning when the story asks for an LLM)."""
    from storyforge.plan.compiler import instruction, with_keys
    from storyforge.story.load import load
    from storyforge.story.template import keyframe_writer

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


# -- enhance: refresh the lock -------------------------------------------------------------------------------


def refresh(path: Path | str, *, llm: str | None = None, force: bool = False,
            on_progress: Callable[[int, int], None] | None = None, batch_size: int | None = None) -> EnhanceReport:
    """Bring a story's lock up to date: entries for shots whose inputs changed (all with `force`) are rewritten,
    expanded by the LLM (`llm`, else the story's `enhance.llm`) loaded once and freed before this returns."""
    from storyforge.enhance import qwen
    from storyforge.plan.assemble import assemble
    from storyforge.story.load import load
    from storyforge.story.template import prompt_template

    story = load(path)
    plan = assemble(story)
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
        fits = (not force and _entry_problem(entry) is None and entry["template_prompt"] == job.template_prompt
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
    with guarded(story.path):  # picks made while the LLM ran are kept: read again under the file lock
        picks = {shot: take for shot, take in read_picks(story.path).items() if shot in entries}  # like entries
        changed = write_lock(story.path, entries, picks)
    return EnhanceReport(story=story.path, lock=lock_path(story.path), llm=ref.name if ref else None,
                         updated=tuple(job.id for job in todo), kept=tuple(kept), fallbacks=tuple(fallbacks),
                         warnings=tuple(warnings), changed=changed, seconds=seconds)


# -- picks: the take chosen for a shot -----------------------------------------------------------------------


@dataclass(frozen=True)
class PickReport:
    """What `storyforge pick` did."""

    lock: Path
    shot: str
    take: int
    takes: int
    previous: int  # the take picked before (1 when none was)
    changed: bool  # whether the lock file's bytes changed


_Op = TypeVar("_Op", bound=Callable[..., Any])


def _one_at_a_time(op: _Op) -> _Op:
    """Run a change of the lock (read it, change it, write it) under its file lock, so two at once (two
    `storyforge add-take`, the studio and the terminal) never lose one another's change; for a change whose
    answer depends on what the lock held when the story was planned (the new take's number)."""

    @functools.wraps(op)
    def run(path: Path | str, *args: Any, **kwargs: Any) -> Any:
        if not Path(path).is_file():  # loading the story says what is wrong with its name
            return op(path, *args, **kwargs)
        with guarded(Path(path)):
            return op(path, *args, **kwargs)

    return run  # type: ignore[return-value]


def _shot_of(path: Path | str, shot: str) -> tuple[Story, Job, int]:
    """The story, the planned job of `shot` with the takes the lock adds, and the shot's line; an error naming
    the shots there are when there is no such shot, or the lock cannot be read."""
    from storyforge.plan.assemble import assemble
    from storyforge.story.load import load

    story = load(path)
    plan = with_extra_takes(assemble(story), read_choices(story.path))
    source = story.source
    job = next((job for job in plan.jobs if job.id == shot), None)
    if job is None:
        several = [job for job in plan.jobs if job.takes > 1]
        choices = (f"shots with several takes: {', '.join(job.id for job in several)}" if several
                   else "no shot has several takes yet; set `takes:` under a film, scene or shot's `render:`")
        raise StoryError([Problem(source.file, 0, "", f"no shot '{shot}' (write it as scene/shot); {choices}")])
    _, problem = read_lock(story.path)
    if problem:
        raise StoryforgeError(f"{display_path(lock_path(story.path))} is not a lock file storyforge can read "
                              f"({problem}); fix it, or remove it and run `storyforge enhance {source.file}`")
    return story, job, job.source.line


def _check_take(story: Story, job: Job, line: int, take: int) -> None:
    if not 1 <= take <= job.takes:
        raise StoryError([Problem(story.source.file, line, job.id,
                                  f"has takes 1 to {job.takes}; there is no take {take}")])


def _rewrite(story: Story, picks: dict[str, int] | None = None, choices: Choices | None = None) -> bool:
    """The lock with new picks or choices (None keeps those it holds), its prompts as they are."""
    shots, _ = read_lock(story.path)
    return write_lock(story.path, shots or {}, picks, choices)


def pick(path: Path | str, shot: str, take: int) -> PickReport:
    """Record `take` as the picked take of `shot` in the story's lock; errors name the shot's line."""
    story, job, line = _shot_of(path, shot)
    if job.takes == 1:
        raise StoryError([Problem(story.source.file, line, shot, "has one take (takes: 1), so there is nothing to "
                                  "pick; set `takes:` in its `render:` (or its scene's or the film's) to render "
                                  "several")])
    _check_take(story, job, line, take)
    with guarded(story.path):  # read, change, write: a pick made meanwhile by another process is kept
        picks = read_picks(story.path)
        previous = picks.get(shot, 1)
        picks[shot] = take
        changed = _rewrite(story, dict(sorted(picks.items())))
    return PickReport(lock=lock_path(story.path), shot=shot, take=take, takes=job.takes, previous=previous,
                      changed=changed)


def reject(path: Path | str, shot: str, take: int, rejected: bool = True) -> bool:
    """Mark a take of `shot` rejected (hidden in review) or not; the lock keeps it. True when the lock changed."""
    story, job, line = _shot_of(path, shot)
    _check_take(story, job, line, take)
    with guarded(story.path):
        choices = read_choices(story.path)
        takes = set(choices.rejected.get(shot, ())) - {take} | ({take} if rejected else set())
        return _rewrite(story, choices=replace(choices, rejected={**choices.rejected, shot: tuple(sorted(takes))}))


def note(path: Path | str, shot: str, take: int, text: str) -> bool:
    """Keep a note on a take of `shot` in the lock (an empty text removes it). True when the lock changed."""
    story, job, line = _shot_of(path, shot)
    _check_take(story, job, line, take)
    text = text.strip()
    if len(text) > MAX_NOTE_CHARS:
        raise StoryforgeError(f"a note holds at most {MAX_NOTE_CHARS} characters; this one has {len(text)}")
    with guarded(story.path):
        choices = read_choices(story.path)
        notes = {n: kept for n, kept in choices.notes.get(shot, {}).items() if n != take} | (
            {take: text} if text else {})
        return _rewrite(story, choices=replace(choices, notes={**choices.notes, shot: notes}))


@_one_at_a_time
def add_take(path: Path | str, shot: str) -> int:
    """Ask for one more take of `shot`: the lock records it, so a render (here or from the terminal) renders the
    same takes. Returns the new take's number."""
    from storyforge.story.models import MAX_TAKES

    story, job, line = _shot_of(path, shot)
    if job.takes >= MAX_TAKES:
        raise StoryError([Problem(story.source.file, line, shot, f"has {job.takes} takes, the most a shot may "
                                  "have; reject some and pick among them")])
    choices = read_choices(story.path)
    extra = {**choices.extra_takes, shot: choices.extra_takes.get(shot, 0) + 1}
    _rewrite(story, choices=replace(choices, extra_takes=extra))
    return job.takes + 1


def pick_keyframe(path: Path | str, shot: str, number: int) -> bool:
    """Choose keyframe candidate `number` of `shot` as the picture its video starts from (`keyframes: {takes: N}`
    makes N); the lock keeps it. True when the lock changed."""
    story, job, line = _shot_of(path, shot)
    candidates = job.keyframe.candidates if job.keyframe is not None else 0
    if candidates < 2:
        why = ("has no keyframe (a generated start picture: `keyframes:` in the story and references in the shot)"
               if job.keyframe is None else "has one keyframe candidate; set `keyframes: {takes: N}` for several")
        raise StoryError([Problem(story.source.file, line, shot, why)])
    if not 1 <= number <= candidates:
        raise StoryError([Problem(story.source.file, line, shot,
                                  f"has keyframe candidates 1 to {candidates}; there is no candidate {number}")])
    with guarded(story.path):
        choices = read_choices(story.path)
        return _rewrite(story, choices=replace(choices, keyframe_picks={**choices.keyframe_picks, shot: number}))


def with_keyframe_picks(plan: Plan, choices: Choices) -> Plan:
    """The plan with each shot's chosen keyframe candidate (candidate 1 when none is chosen, or when the shot has
    fewer now)."""
    from storyforge.plan.compiler import with_keys

    jobs = []
    for job in plan.jobs:
        number = choices.keyframe_picks.get(job.id, 1)
        if job.keyframe is not None and number != job.keyframe.pick and number <= job.keyframe.candidates:
            job = replace(job, keyframe=job.keyframe.candidate(number))
        jobs.append(job)
    if all(job is old for job, old in zip(jobs, plan.jobs, strict=True)):
        return plan
    return with_keys(replace(plan, jobs=tuple(jobs)))


def with_extra_takes(plan: Plan, choices: Choices) -> Plan:
    """The plan with the takes asked for beyond the story's (see add_take), each with its own seed and key."""
    from storyforge.plan.compiler import take_seed, with_keys
    from storyforge.story.models import MAX_TAKES

    if not choices.extra_takes:
        return plan
    jobs = []
    for job in plan.jobs:
        takes = min(MAX_TAKES, job.takes + choices.extra_takes.get(job.id, 0))
        if takes != job.takes:
            first = job.take_seeds[0] if job.take_seeds else job.seed
            job = replace(job, takes=takes, take_seeds=tuple(take_seed(first, n) for n in range(1, takes + 1)))
        jobs.append(job)
    return with_keys(replace(plan, jobs=tuple(jobs)))


def applied(plan: Plan, story: Story) -> Plan:
    """The lock's step of assembling a plan (storyforge.plan.assemble): its prompts, then its picks and choices."""
    return apply_picks(apply_lock(plan, story), story)


def apply_picks(plan: Plan, story: Story | None = None) -> Plan:
    """The plan with the extra takes and each job's picked take from the lock (take 1 when none is picked), keys
    chained to the picks; a pick the shot no longer has falls back to take 1 with a warning."""
    from storyforge.plan.compiler import with_keys
    from storyforge.story.load import load

    choices = read_choices(plan.story)
    plan = with_keyframe_picks(with_extra_takes(plan, choices), choices)
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
