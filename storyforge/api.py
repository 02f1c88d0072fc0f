"""The library API: one function per arrow of load -> validate -> plan -> enhance -> render -> stitch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from storyforge.errors import StoryError
from storyforge.plan.model import Plan
from storyforge.spec.load import Story
from storyforge.spec.load import load as load_story


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


def schema() -> dict[str, Any]:
    """The JSON Schema of the story format."""
    from storyforge.spec.models import Film

    result = Film.model_json_schema()
    result["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    result["$id"] = "https://storyforge.dev/schemas/film.schema.json"
    return result


def schema_text() -> str:
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"


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
    _write_atomically(folder / "schemas" / "film.schema.json", schema_text())
    _write_atomically(target, EXAMPLE)
    return target


def _write_atomically(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(target)


def _problem(path: Path, message: str):
    from storyforge.errors import Problem, display_path

    return Problem(display_path(path), 0, "", message)
