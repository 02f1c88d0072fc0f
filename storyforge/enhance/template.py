"""Prompt templates: every prompt, camera, style and description rendered in Jinja's sandbox."""

from __future__ import annotations

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from storyforge.errors import Problem, StoryError
from storyforge.plan.compiler import ShotText
from storyforge.spec.resolve import ResolvedFilm

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def render_texts(film: ResolvedFilm) -> dict[str, ShotText]:
    """Each shot's prompt (with style) and camera words, templates rendered."""
    story = film.story
    spec = story.film
    characters = {name: c.description for name, c in spec.characters.items()}
    problems: list[Problem] = []
    texts: dict[str, ShotText] = {}
    for shot in film.shots:
        location = spec.locations.get(shot.scene.location or "", shot.scene.location or "")
        scope = {"film": {"title": spec.title}, "scene": {"id": shot.scene.id}, "shot": {"id": shot.shot.id},
                 "characters": characters, "locations": dict(spec.locations), "location": location,
                 "style": spec.style or ""}
        try:
            prompt = _ENV.from_string(shot.shot.prompt).render(scope).strip()
            camera = _ENV.from_string(shot.shot.camera).render(scope).strip() if shot.shot.camera else None
            style = _ENV.from_string(spec.style).render(scope).strip() if spec.style else ""
        except TemplateError as error:
            problems.append(Problem(story.source.file, story.source.line(shot.path + ("prompt",)), shot.id,
                                    f"template error: {error}"))
            continue
        parts = [prompt] + ([camera] if camera else []) + ([style] if style else [])
        texts[shot.id] = ShotText(prompt=". ".join(p.rstrip(". ") for p in parts) + ".", camera=camera)
    if problems:
        raise StoryError(problems)
    return texts
