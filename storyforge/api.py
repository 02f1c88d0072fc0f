"""The library API: one function per arrow of load -> validate -> plan -> enhance -> render -> stitch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyforge.atomic import write_text
from storyforge.errors import StoryError
from storyforge.plan.model import Plan
from storyforge.spec.load import Story
from storyforge.spec.load import load as load_story

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from storyforge.enhance.lock import EnhanceReport
    from storyforge.render import RenderProgress, RunReport


def validate(path: Path | str) -> Story:
    """Load and check one story file: format, files it references, and that it plans."""
    story = load_story(path)
    compile_story(story)
    return story


def compile_story(story: Story, overrides: dict[str, Any] | None = None) -> Plan:
    """A loaded story compiled to its plan, with templates rendered (no lock applied)."""
    from storyforge.enhance.template import render_texts
    from storyforge.plan.compiler import compile_plan
    from storyforge.spec.resolve import resolve

    return compile_plan(resolve(story, overrides), render_texts)


def plan(path: Path | str, overrides: dict[str, Any] | None = None, *, use_lock: bool = True) -> Plan:
    """The plan of a story file: final prompts (from its lock file when one matches) and content keys."""
    story = load_story(path)
    compiled = compile_story(story, overrides)
    if use_lock:
        from storyforge.enhance.lock import apply_lock

        compiled = apply_lock(compiled)
    return compiled


def enhance(path: Path | str, *, llm: str | None = None, force: bool = False,
            on_progress: Callable[[int, int], None] | None = None) -> EnhanceReport:
    """Fill the story's lock file (film.lock.json) for shots whose inputs changed (every shot with `force`),
    expanding prompts with `llm` or the story's `enhance.llm` when one is named; on_progress(done, total)."""
    from storyforge.enhance.lock import refresh

    return refresh(path, llm=llm, force=force, on_progress=on_progress)


def render(plan: Plan, *, out: Path | None = None, backend: str = "auto", only: list[str] | None = None,
           use_cache: bool = True, cache_root: Path | None = None,
           progress: RenderProgress | None = None, executor: str = "local",
           executor_options: dict[str, Any] | None = None) -> RunReport:
    """Render a plan's jobs (cached by content) into `out` and cut the film; see storyforge.render.render.

    `executor`: `local` (this process) or `ray` (one task per chain on the cluster in RAY_ADDRESS, or a local
    one); `executor_options` go to it, e.g. {"shared_cache": True} for ray.
    """
    from storyforge.render import render as render_plan

    return render_plan(plan, out=out, backend=backend, only=only, use_cache=use_cache, cache_root=cache_root,
                       progress=progress, executor=executor, executor_options=executor_options)


def render_films(plans: Sequence[Plan], *, out: Path | None = None, backend: str = "auto",
                 only: list[str] | None = None, use_cache: bool = True, cache_root: Path | None = None,
                 progress: Callable[[Plan], RenderProgress | None] | None = None, executor: str = "local",
                 executor_options: dict[str, Any] | None = None) -> list[tuple[RunReport | None, Exception | None]]:
    """Render several films in one command: with `ray` their chains share the cluster (longest first, each film
    cut when its own chains are in); with `local` they render one after another. Each film's outputs and
    run.json are as if it were rendered alone, in renders/<stem>/ beside its story, or `out`/<stem>/.

    Returns (report, None) or (None, error) per film, in order: a film that fails does not stop the others.
    """
    from storyforge.errors import StoryforgeError
    from storyforge.render import render_films as render_plans

    outs: list[Path | None] = [None] * len(plans)
    if out is not None:
        stems: dict[str, Path] = {}
        for plan in plans:
            if plan.story.stem in stems and stems[plan.story.stem] != plan.story.resolve():
                raise StoryforgeError(f"--out {out}: {stems[plan.story.stem]} and {plan.story} would both render "
                                      f"into {Path(out) / plan.story.stem}; rename one, or leave out --out so each "
                                      "renders beside its story")
            stems[plan.story.stem] = plan.story.resolve()
        outs = [Path(out) / plan.story.stem for plan in plans]
    return list(render_plans(plans, outs=outs, backend=backend, only=only, use_cache=use_cache,
                             cache_root=cache_root, progress=[progress(plan) if progress else None for plan in plans],
                             executor=executor, executor_options=executor_options))


def story_files(paths: Sequence[Path | str]) -> list[Path]:
    """The story files `paths` name: files as given, and for a folder every story file below it (a YAML file
    with a top-level `storyforge:` key), sorted, outside hidden folders and renders/."""
    import re

    from storyforge.errors import StoryforgeError

    found: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            found.append(path)
            continue
        stories = sorted(
            file for pattern in ("*.yaml", "*.yml") for file in path.rglob(pattern)
            if not any(part.startswith(".") or part == "renders" for part in file.relative_to(path).parts[:-1])
            and re.search(r"^storyforge\s*:", file.read_text(encoding="utf-8", errors="replace"), re.M))
        if not stories:
            raise StoryforgeError(f"{path}: no story files in this folder (YAML files with a `storyforge:` key); "
                                  "name the story files, or the folder that holds them")
        found.extend(stories)
    return list(dict.fromkeys(found))


def schema() -> dict[str, Any]:
    """The JSON Schema of the story format."""
    from storyforge.spec.models import Film

    result = Film.model_json_schema()
    result["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    result["$id"] = "https://storyforge.dev/schemas/film.schema.json"
    return result


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
    from storyforge.export_otio import export_otio, rendered_clips
    from storyforge.render import default_out

    story = Path(path)
    compiled = plan(story)
    renders = Path(render_dir) if render_dir is not None else default_out(story)
    if output is None:
        output = renders / "film.otio" if rendered_clips(compiled, renders) else story.parent / f"{story.stem}.otio"
    return export_otio(compiled, Path(output), render_dir=renders)


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
    """Write an example story into `folder`; never overwrites an existing file."""
    folder = Path(folder)
    target = folder / "film.yaml"
    if target.exists():
        raise StoryError([_problem(target, "already exists; choose another folder or remove it")])
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "schemas" / "film.schema.json", schema_text())
    write_text(target, EXAMPLE)
    return target





def _problem(path: Path, message: str):
    from storyforge.errors import Problem, display_path

    return Problem(display_path(path), 0, "", message)
