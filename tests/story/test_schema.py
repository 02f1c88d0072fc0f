"""The JSON Schema that editors use accepts exactly what loading a story accepts (jsonschema, not our code)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import EXAMPLES, ROOT

from storyforge import api
from storyforge.errors import StoryError

jsonschema = pytest.importorskip("jsonschema")  # the dev extra

SCHEMA = json.loads((ROOT / "schemas" / "film.schema.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())

SHOT = "storyforge: 1\ntitle: T\n{top}scenes:\n  - id: s\n    shots:\n      - id: a\n        prompt: a fox\n" \
       "        duration: 4s\n{shot}"


def story(top: str = "", shot: str = "") -> str:
    return SHOT.format(top=top, shot=shot)


def schema_errors(text: str) -> list[str]:
    return [error.message for error in VALIDATOR.iter_errors(yaml.safe_load(text))]


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_is_valid_to_the_schema(path: Path) -> None:
    assert api.validate(path)
    assert schema_errors(path.read_text(encoding="utf-8")) == []


def test_the_init_scaffold_and_the_schema_it_writes_agree(tmp_path: Path) -> None:
    made = subprocess.run([sys.executable, "-m", "storyforge", "init", str(tmp_path)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert made.returncode == 0, made.stderr
    text = (tmp_path / "film.yaml").read_text(encoding="utf-8")
    assert text.splitlines()[0] == "# yaml-language-server: $schema=schemas/film.schema.json"
    assert json.loads((tmp_path / "schemas" / "film.schema.json").read_text(encoding="utf-8")) == SCHEMA
    assert api.validate(tmp_path / "film.yaml")
    assert schema_errors(text) == []


def test_the_readme_story_is_valid_to_the_schema() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## A story\n\n```yaml[^\n]*\n(.*?)```", readme, re.S)
    assert block is not None
    assert schema_errors(block.group(1)) == []


# What both must accept, beyond the examples: shorthands and the loose spellings the loader takes.
ACCEPTED = {
    "character as text": story("characters:\n  heron: a grey heron standing still\n"),
    "character as mapping": story("characters:\n  swan: {description: a swan}\n"),
    "duration in seconds as a number": story(shot="        seed: 3\n").replace("4s", "2.5"),
    "duration with spaces": story().replace("4s", "' 4 s '"),
    "a whole float where a whole number goes": story("render: {fps: 24.0}\n"),
    "720p and a custom size": story("render: {resolution: 1280x720}\n"),
    "fade with its length": story(shot="        transition: {type: fade, duration: 12f}\n"),
    "render left empty": story("render:\n"),
    "a bridge with its prompt": story(shot="      - id: b\n        prompt: p\n        duration: 4s\n        transition:"
                                           " {type: bridge, duration: 1s, prompt: 'over {{ next }}'}\n"),
    "a bridge by name": story(shot="      - id: b\n        prompt: p\n        duration: 4s\n"
                                   "        transition: bridge\n"),
}

# What both must refuse, and the loader's message for it (the schema's wording is jsonschema's own).
REJECTED = {
    "a number in quotes": (story("render: {fps: '24'}\n"),
                           "film.yaml:3: render.fps: '24' is text, not a number; write the number without quotes"),
    "yes for a number": (story("render: {steps: yes}\n"),
                         "film.yaml:3: render.steps: expected a number, got True (YAML reads true/false, yes/no and "
                         "on/off as True/False)"),
    "true as the version": (story().replace("storyforge: 1", "storyforge: true"),
                            "film.yaml:1: storyforge: expected a number, got True (YAML reads true/false, yes/no and "
                            "on/off as True/False)"),
    "zero seconds": (story().replace("4s", "0s"),
                     "film.yaml:8: s/a.duration: duration must be greater than 0, got '0s'"),
    "a negative number of seconds": (story().replace("4s", "-2"),
                                     "film.yaml:8: s/a.duration: duration must be greater than 0, got -2.0"),
    "a fraction of a frame": (story().replace("4s", "1.5f"),
                              "film.yaml:8: s/a.duration: '1.5f': a frame count is a whole number, like '97f'"),
    "a cut with a length": (story(shot="        transition: {type: cut, duration: 1s}\n"),
                            "film.yaml:9: s/a.transition: a 'cut' has no length; remove 'duration' or use crossfade "
                            "or fade"),
    "a prompt on a crossfade": (story(shot="      - id: b\n        prompt: p\n        duration: 4s\n"
                                          "        transition: {type: crossfade, duration: 3f, prompt: over it}\n"),
                                "film.yaml:12: s/b.transition: a 'crossfade' has no prompt: only a bridge generates "
                                "frames of its own; remove 'prompt' or use type: bridge"),
    "a size not a multiple of 16": (story("render: {resolution: 1000x544}\n"),
                                    "film.yaml:3: render.resolution: resolution 1000x544 is not a multiple of 16 in "
                                    "both sides; use 992x544, 540p or 720p"),
    "a character name templates cannot use": (story("characters:\n  grey-heron: a heron\n"),
                                              "film.yaml:4: characters.grey-heron: 'grey-heron' is not a valid name: "
                                              "use letters, digits and '_', so templates can say "
                                              "{{ characters.name }}"),
    "a character without a description": (story("characters:\n  swan: {reference: refs/swan.png}\n"),
                                          "film.yaml:4: characters.swan: missing required key 'description'; add it"),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_what_the_loader_accepts_the_schema_accepts(name: str, write_story) -> None:
    text = ACCEPTED[name]
    assert api.validate(write_story(text))
    assert schema_errors(text) == []


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_what_the_loader_refuses_the_schema_refuses(name: str, write_story) -> None:
    text, message = REJECTED[name]
    with pytest.raises(StoryError) as caught:
        api.validate(write_story(text))
    assert message in [str(problem) for problem in caught.value.problems]
    assert schema_errors(text) != []
