"""The library API: one function per arrow of load -> validate -> plan -> enhance -> render -> stitch."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyforge.atomic import write_text
from storyforge.errors import StoryError
from storyforge.plan.model import Plan
from storyforge.story.load import Story
from storyforge.story.load import load as load_story

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from storyforge.enhance.lock import EnhanceReport, PickReport
    from storyforge.render import RenderProgress, RunReport
    from storyforge.review import ReviewReport
    from storyforge.screenplay.importer import ImportReport


def validate(path: Path | str) -> Story:
    """Load and check one story file: format, files it references, and that it plans."""
    return check(path)[0]


def check(path: Path | str) -> tuple[Story, Plan]:
    """Validate one story file and keep its plan too, for the warnings the plan carries."""
    story = load_story(path)
    return story, compile_story(story)


# A story file has the top-level `storyforge:` key (format version), or the schema modeline `init` writes.
# Matched as text, so that a story with a YAML syntax error is still recognised and reported.
_STORY_MARK = re.compile(r"^(?:['\"]?storyforge['\"]?[ \t]*:|#.*\$schema=\S*film\.schema\.json)", re.MULTILINE)


def is_story_file(path: Path | str) -> bool:
    """Whether `path` looks like a story file; a missing file or a folder counts, so validate names it."""
    path = Path(path)
    if not path.is_file():
        return True
    with path.open("rb") as file:
        head = file.read(1_000_000).decode("utf-8", errors="replace")
    return _STORY_MARK.search(head) is not None


def compile_story(story: Story, overrides: dict[str, Any] | None = None) -> Plan:
    """A loaded story compiled to its plan, with templates rendered (no lock applied)."""
    from storyforge.plan.assemble import assemble

    return assemble(story, overrides)


def plan(path: Path | str, overrides: dict[str, Any] | None = None, *, use_lock: bool = True) -> Plan:
    """The plan of a story file: final prompts (from its lock file when one matches) and content keys."""
    from storyforge.enhance.lock import applied
    from storyforge.plan.assemble import assemble, collector_paused

    with collector_paused():
        # the story loaded once: parsing it again for the lock was a third of `plan`
        return assemble(load_story(path), overrides, lock=applied if use_lock else None)


def pick(path: Path | str, shot: str, take: int) -> PickReport:
    """Choose take `take` of `shot` (scene/shot): written to the story's lock, used by plan and render."""
    from storyforge.enhance.lock import pick as pick_take

    return pick_take(path, shot, take)


def pick_keyframe(path: Path | str, shot: str, number: int) -> bool:
    """Choose keyframe candidate `number` of `shot` as the picture its video starts from; True when the lock
    changed."""
    from storyforge.enhance.lock import pick_keyframe as choose

    return choose(path, shot, number)


def lock_file(path: Path | str) -> Path:
    """The lock file beside a story (film.yaml -> film.lock.json)."""
    from storyforge.enhance.lock import lock_path

    return lock_path(Path(path))


def enhance(path: Path | str, *, llm: str | None = None, force: bool = False,
            on_progress: Callable[[int, int], None] | None = None, download: bool = False) -> EnhanceReport:
    """Fill the story's lock file (film.lock.json) for shots whose inputs changed (every shot with `force`),
    expanding prompts with `llm` or the story's `enhance.llm` when one is named; on_progress(done, total).
    A hub model that is not on this machine is an error at once, unless `download` (see storyforge.hub)."""
    from storyforge.enhance.lock import refresh
    from storyforge.hub import downloads_allowed

    with downloads_allowed(download):
        return refresh(path, llm=llm, force=force, on_progress=on_progress)


def render(plan: Plan, *, out: Path | None = None, backend: str = "auto", only: list[str] | None = None,
           use_cache: bool = True, cache_root: Path | None = None,
           progress: RenderProgress | None = None, executor: str = "local",
           executor_options: dict[str, Any] | None = None, keyframes_only: bool = False,
           download: bool = False) -> RunReport:
    """Render a plan's jobs (cached by content) into `out` and cut the film; see storyforge.render.render.

    The hub models it needs must be on this machine before any work starts (`download`: fetch them first, with
    the hub's progress bars); nothing is downloaded in the middle of a render (see storyforge.hub).

    `executor`: `local` (this process) or `ray` (one task per chain on the cluster in RAY_ADDRESS, or a local
    one); `executor_options` go to it, e.g. {"shared_cache": True} for ray. Under torchrun, rank 0 renders and
    the other ranks follow it (see storyforge.executors.torchrun). `keyframes_only`: make the generated
    start frames (keyframes/) and no video.
    """
    from storyforge.executors import render as render_with
    from storyforge.hub import downloads_allowed

    with downloads_allowed(download):
        return render_with(plan, executor=executor, executor_options=executor_options, out=out, backend=backend,
                           only=only, use_cache=use_cache, cache_root=cache_root, progress=progress,
                           keyframes_only=keyframes_only)


def review(path: Path | str, *, out: Path | str | None = None) -> ReviewReport:
    """Rebuild review.html for the last render of a story (in `out`, default renders/<stem>/), with its picks."""
    from storyforge import outdir
    from storyforge.errors import display_path
    from storyforge.render import default_out
    from storyforge.review import rebuild, rendered_here, written_names

    story = Path(path)
    compiled = plan(story)
    folder = Path(out) if out is not None else default_out(story)
    with outdir.looking_from(folder, story):  # a link below the story's folder is refused, never read through
        pass
    if not rendered_here(compiled, folder):
        return rebuild(compiled, folder, story_arg=display_path(story))  # says that nothing was rendered there
    with outdir.claimed(folder, story, written_names(compiled)) as held:  # the page's files, in its manifest
        return rebuild(compiled, held, story_arg=display_path(story))


def render_films(plans: Sequence[Plan], *, out: Path | None = None, backend: str = "auto",
                 only: list[str] | None = None, use_cache: bool = True, cache_root: Path | None = None,
                 progress: Callable[[Plan], RenderProgress | None] | None = None, executor: str = "local",
                 executor_options: dict[str, Any] | None = None,
                 download: bool = False) -> list[tuple[RunReport | None, Exception | None]]:
    """Render several films in one command: with `ray` their chains share the cluster (longest first, each film
    cut when its own chains are in); with `local` they render one after another. Each film's outputs and
    run.json are as if it were rendered alone, in renders/<stem>/ beside its story, or `out`/<stem>/.

    Returns (report, None) or (None, error) per film, in order: a film that fails does not stop the others.
    """
    from storyforge.executors import render_films as render_with
    from storyforge.hub import downloads_allowed

    outs = [Path(out) / plan.story.stem if out is not None else None for plan in plans]
    with downloads_allowed(download):
        return list(render_with(plans, executor=executor, executor_options=executor_options, outs=outs,
                                backend=backend, only=only, use_cache=use_cache, cache_root=cache_root,
                                progress=[progress(plan) if progress else None for plan in plans]))


def story_files(paths: Sequence[Path | str], repeats: list[tuple[Path, Path]] | None = None) -> list[Path]:
    """The story files `paths` name: files as given, and for a folder every story file below it (a YAML file
    with a top-level `storyforge:` key), sorted, outside hidden folders and renders/.

    A story named twice (`film.yaml sub/../film.yaml`, a link to it, a folder holding it) is listed once, where
    it is first named: rendering it twice would cut one film into one folder twice over. Each repeat is added to
    `repeats` as (the path kept, the path left out), for the caller to say so."""
    from storyforge.errors import StoryforgeError

    found: dict[tuple[int, int] | str, Path] = {}
    for path in map(Path, paths):
        if not path.is_dir():
            _add_story(found, path, repeats)
            continue
        stories = sorted(
            file for pattern in ("*.yaml", "*.yml") for file in path.rglob(pattern)
            if not any(part.startswith(".") or part == "renders" for part in file.relative_to(path).parts[:-1])
            and is_story_file(file))
        if not stories:
            raise StoryforgeError(f"{path}: no story files in this folder (YAML files with a `storyforge:` key); "
                                  "name the story files, or the folder that holds them")
        for story in stories:
            _add_story(found, story, repeats)
    return list(found.values())


def _add_story(found: dict[tuple[int, int] | str, Path], path: Path, repeats: list[tuple[Path, Path]] | None) -> None:
    """`path` into `found` under its file's identity (device and inode: links and `..` lead to the same one)."""
    try:
        status = path.stat()
        identity: tuple[int, int] | str = (status.st_dev, status.st_ino)
    except OSError:  # not there: kept as given, for the plan to say so at its line
        identity = str(path)
    if identity in found:
        if repeats is not None and found[identity] != path and (found[identity], path) not in repeats:
            repeats.append((found[identity], path))
        return
    found[identity] = path


def import_script(script: Path | str, output: Path | str | None = None, *, update: bool = False,
                  llm: str | None = None, on_progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """Turn a screenplay (Fountain or Final Draft) into a story file, or with `update` merge it into the story it
    made before, keeping the writer's edits; then check that the story validates and plans (its problems, if any,
    are on the report). `llm` breaks long action paragraphs into shots with a local instruct model."""
    from storyforge.screenplay.importer import import_script as run

    report = run(script, output, update=update, llm=llm, on_progress=on_progress)
    try:
        check(report.story)
    except StoryError as error:
        report.problems = list(error.problems)
    return report


def schema() -> dict[str, Any]:
    """The JSON Schema of the story format: it accepts what loading a story accepts, before the checks that
    need the disk or the whole film (files, ids, references)."""
    from storyforge.story.models import Film

    result = Film.model_json_schema()
    result["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    result["$id"] = "https://storyforge.dev/schemas/film.schema.json"
    _as_loaded(result)
    return result


def _as_loaded(schema: dict[str, Any]) -> None:
    """Say in the schema what the models' validators do in code (tests check both agree on every example)."""
    defs = schema["$defs"]
    # `heron: a grey heron` is a character's description alone
    defs["Character"] = {"anyOf": [{"type": "string", "description": "The character's description alone."},
                                   defs["Character"]]}
    defs["Location"] = {"anyOf": [{"type": "string", "description": "The place's description alone."},
                                  defs["Location"]]}
    # names of characters and locations: every key must match, not only the keys that happen to
    for name in ("characters", "locations"):
        mapping = schema["properties"][name]
        ((pattern, value),) = mapping.pop("patternProperties").items()
        mapping["propertyNames"] = {"pattern": pattern}
        mapping["additionalProperties"] = value
    # a cut or a continue has no length; only a bridge has a prompt
    defs["TransitionSpec"]["allOf"] = [
        {"if": {"properties": {"type": {"enum": ["cut", "continue"]}}}, "then": {"not": {"required": ["duration"]}}},
        {"if": {"properties": {"type": {"not": {"const": "bridge"}}}}, "then": {"not": {"required": ["prompt"]}}},
    ]
    # WIDTHxHEIGHT with both sides non-zero multiples of 16
    side = _multiple_of_16()
    for branch in defs["RenderSettings"]["properties"]["resolution"]["anyOf"]:
        if branch.get("type") == "string":
            branch["pattern"] = f"^(540p|720p|{side}x{side})$"
            branch["patternErrorMessage"] = "540p, 720p or WIDTHxHEIGHT with both sides multiples of 16, like 960x544"


def _multiple_of_16() -> str:
    """A regular expression for a positive whole number divisible by 16, in decimal (leading zeros allowed).

    1000 = 8 (mod 16), so a number is divisible by 16 when its last three digits are 0 (mod 16) after an even
    digit, or 8 (mod 16) after an odd one; numbers of two or three digits are listed.
    """
    even = "|".join(f"{n:03d}" for n in range(0, 1000, 16))
    odd = "|".join(f"{n:03d}" for n in range(8, 1000, 16))
    short = "|".join(str(n) for n in range(16, 100, 16))
    return f"(?=\\d*[1-9])(?:\\d*[02468](?:{even})|\\d*[13579](?:{odd})|{even}|{short})"


def schema_text() -> str:
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"


EXPORT_FORMATS = ("otio",)


def export(path: Path | str, *, format: str = "otio", output: Path | str | None = None,
           render_dir: Path | str | None = None) -> Path:
    """Export a story's timeline: the rendered cut when `render_dir` (default renders/<stem>/) matches the plan.

    Default output: `film.otio` in the render folder when it holds clips of this plan, else `<stem>.otio`
    beside the story. Returns the path written.
    """
    if format not in EXPORT_FORMATS:
        from storyforge.errors import StoryforgeError

        raise StoryforgeError(f"unknown export format {format!r}; use one of: {', '.join(EXPORT_FORMATS)}")
    from storyforge.confined import holding
    from storyforge.export_otio import export_otio, rendered_clips
    from storyforge.outdir import looking_from
    from storyforge.render import default_out

    story = Path(path)
    compiled = plan(story)
    renders = Path(render_dir) if render_dir is not None else default_out(story)
    # the render folder as a render reaches it (no link below the story's folder), so no clip, run.json or
    # film.otio is read or written through a link to somewhere else
    with looking_from(renders, story) as folder:
        if folder is None:
            return export_otio(compiled, Path(output or story.parent / f"{story.stem}.otio"), render_dir=None)
        with holding(folder):
            if output is None:
                output = (folder.path / "film.otio" if rendered_clips(compiled, folder.path)
                          else story.parent / f"{story.stem}.otio")
            return export_otio(compiled, Path(output), render_dir=folder.path)


EXAMPLE = """\
# yaml-language-server: $schema=schemas/film.schema.json
# A storyforge story: scenes made of shots. `storyforge plan film.yaml` shows what will be rendered;
# `storyforge render film.yaml` renders it (an animatic preview when there is no GPU).
storyforge: 1
title: My First Film

render:
  model: df-1.3b-540p        # or df-14b-540p, df-14b-720p, a hub id, or a local folder
  fps: 24
  seed: 42

style: cinematic, 35mm film grain, soft natural light

characters:
  fox:
    description: a small red fox with a bushy white-tipped tail

locations:
  forest: a misty pine forest at sunrise

scenes:
  - id: morning
    location: forest
    shots:
      - id: wake
        prompt: "{{ characters.fox }} wakes up in {{ location }}"
        camera: wide shot, slow push in
        duration: 4s
      - id: stretch
        prompt: the fox stretches and yawns
        duration: 3s
        transition: continue        # the same take goes on, with a new prompt
      - id: run
        prompt: the fox runs between the trees
        camera: tracking shot
        duration: 4s
        transition: {type: crossfade, duration: 0.5s}
"""


def init(folder: Path | str) -> Path:
    """Write an example story into `folder`, and a .gitignore for renders/ and .storyforge/ (added to one that is
    there); never overwrites an existing story."""
    folder = Path(folder)
    target = folder / "film.yaml"
    if target.exists():
        raise StoryError([_problem(target, "already exists; choose another folder or remove it")])
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "schemas" / "film.schema.json", schema_text())
    write_text(target, EXAMPLE)
    _ignore(folder / ".gitignore", IGNORED)
    return target


IGNORED = ("renders/", ".storyforge/")  # the render outputs and the cache: large, and made again from the story


def _ignore(path: Path, patterns: tuple[str, ...]) -> None:
    """Add the patterns a .gitignore lacks, keeping what it already says."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    have = {line.strip() for line in text.splitlines()}
    missing = [pattern for pattern in patterns if pattern not in have and "/" + pattern not in have]
    if missing:
        head = "" if not text else text if text.endswith("\n") else text + "\n"
        write_text(path, head + "# storyforge: renders and the clip cache\n" + "\n".join(missing) + "\n")





def _problem(path: Path, message: str):
    from storyforge.errors import Problem, display_path

    return Problem(display_path(path), 0, "", message)
