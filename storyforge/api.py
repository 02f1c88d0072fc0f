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
    from collections.abc import Callable

    from storyforge.enhance.lock import EnhanceReport, PickReport
    from storyforge.render import RenderProgress, RunReport
    from storyforge.review import ReviewReport


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
        from storyforge.enhance.lock import apply_lock, apply_picks

        compiled = apply_picks(apply_lock(compiled, story), story)
    return compiled


def pick(path: Path | str, shot: str, take: int) -> PickReport:
    """Choose take `take` of `shot` (scene/shot): written to the story's lock, used by plan and render."""
    from storyforge.enhance.lock import pick as pick_take

    return pick_take(path, shot, take)


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


def review(path: Path | str, *, out: Path | str | None = None) -> ReviewReport:
    """Rebuild review.html for the last render of a story (in `out`, default renders/<stem>/), with its picks."""
    from storyforge.errors import display_path
    from storyforge.render import default_out
    from storyforge.review import rebuild

    story = Path(path)
    return rebuild(plan(story), Path(out) if out is not None else default_out(story), story_arg=display_path(story))


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
