"""Story data as YAML text in the story format's key order, under a header that says where it came from."""

from __future__ import annotations

import re
from typing import Any

import yaml

from storyforge.screenplay.script import readable

# libyaml's emitter when PyYAML was built with it (8x faster on a feature film); the same safe representers
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_TOP = ("storyforge", "title", "render", "style", "characters", "locations", "keyframes", "enhance", "audio", "scenes")
_SCENE = ("id", "location", "description", "render", "shots")
_SHOT = ("id", "prompt", "camera", "duration", "image", "end_image", "transition", "cast", "seed", "render",
         "dialogue")


def _ordered(data: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    known = {key: data[key] for key in order if key in data}
    return {**known, **{key: value for key, value in data.items() if key not in known}}


def _one_line(text: str) -> str:
    """A comment line that stays one: every character YAML (or a terminal) reads as a line break or control is a
    space, so a script's title or file name cannot end the comment and write keys."""
    return _BREAKS.sub(" ", readable(text))


def story_text(data: dict[str, Any], header: list[str]) -> str:
    """The story file's text: `header` as comment lines, then the data (keys in the format's order)."""
    shaped = _ordered(data, _TOP)
    if isinstance(shaped.get("scenes"), list):
        shaped["scenes"] = [
            {**_ordered(scene, _SCENE), **({"shots": [_ordered(shot, _SHOT) if isinstance(shot, dict) else shot
                                                      for shot in scene["shots"]]}
                                           if isinstance(scene.get("shots"), list) else {})}
            if isinstance(scene, dict) else scene
            for scene in shaped["scenes"]]
    body = yaml.dump(shaped, Dumper=_DUMPER, sort_keys=False, allow_unicode=True, width=110, default_flow_style=False)
    comments = "".join(f"# {_one_line(line)}".rstrip() + "\n" for line in header)
    return "# yaml-language-server: $schema=https://storyforge.dev/schemas/film.schema.json\n" + comments + body
