"""Prompt templates: scope, packaged and user templates, errors at file:line, and hostile templates refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli, story_errors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storyforge import api
from storyforge.errors import StoryError
from storyforge.story.template import packaged_templates, split_camera

ROOT = Path(__file__).resolve().parents[2]

STORY = """\
storyforge: 1
title: Test
style: soft light
characters:
  fox: a red fox
  swan:
    description: a white swan
locations:
  forest: a misty forest
scenes:
  - id: s
    location: forest
    shots:
      - id: a
        prompt: {prompt}
        duration: 4s
{extra}"""
PROMPT_LINE = 15
NAMES = "characters, film, location, locations, scene, shot, style"
INTERNALS = f"refused: templates cannot reach Python internals; use the story's names ({NAMES})"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # problems then name the story as film.yaml
    return tmp_path


def write(folder: Path, prompt: str, extra: str = "", text: str | None = None) -> Path:
    path = folder / "film.yaml"
    path.write_text(text if text is not None else STORY.format(prompt=json.dumps(prompt), extra=extra), "utf-8")
    return path


def prompts(path: Path) -> list[str]:
    return [job.prompt for job in api.plan(path).jobs]


def errors(path: Path) -> list[str]:
    with pytest.raises(StoryError) as caught:
        api.plan(path)
    return [str(problem) for problem in caught.value.problems]


# -- what templates see -------------------------------------------------------------------------------------


def test_plain_renders_characters_locations_and_style(folder: Path) -> None:
    path = write(folder, "{{ characters.fox }} meets {{ characters.swan }} in {{ location }} ({{ film.title }})")
    assert prompts(path) == ["a red fox meets a white swan in a misty forest (Test). soft light."]


def test_the_example_story_renders_fully_and_the_same_every_time(folder: Path) -> None:
    path = api.init(folder)
    first = api.plan(path).dumps()
    assert [job.prompt for job in api.plan(path).jobs] == [
        "a small red fox with a bushy white-tipped tail wakes up in a misty pine forest at sunrise. wide shot, slow "
        "push in. cinematic, 35mm film grain, soft natural light.",
        "the fox stretches and yawns. cinematic, 35mm film grain, soft natural light.",
        "the fox runs between the trees. tracking shot. cinematic, 35mm film grain, soft natural light.",
    ]
    assert api.plan(path).dumps() == first


def test_cinematic_orders_shot_type_subject_action_scene_light_motion(folder: Path) -> None:
    text = api.EXAMPLE.replace("storyforge: 1\n", "storyforge: 1\nenhance:\n  template: cinematic\n")
    path = write(folder, "", text=text)
    assert prompts(path) == [
        "Wide shot. A small red fox with a bushy white-tipped tail wakes up in a misty pine forest at sunrise. "
        "Cinematic, 35mm film grain, soft natural light. Camera movement: slow push in.",
        # the prompt names the fox without describing it: the description comes first, then the place
        "A small red fox with a bushy white-tipped tail. The fox stretches and yawns. A misty pine forest at "
        "sunrise. Cinematic, 35mm film grain, soft natural light.",
        "A small red fox with a bushy white-tipped tail. The fox runs between the trees. A misty pine forest at "
        "sunrise. Cinematic, 35mm film grain, soft natural light. Camera movement: tracking shot.",
    ]


def test_every_description_is_a_template_with_the_shot_in_scope(folder: Path) -> None:
    text = """\
storyforge: 1
title: Night
style: "{{ 'moonlight' if scene.id == 'night' else 'daylight' }}, {{ film.title | lower }} look"
characters:
  fox:
    description: "a red fox, wet from {{ location }}"
locations:
  river: "a river under {{ style }}"
scenes:
  - id: night
    location: river
    description: "{{ characters.fox.name }} alone"
    shots:
      - id: a
        prompt: "{{ characters.fox }}; {{ scene.description }}"
        camera: "{{ 'close-up' }}, {{ shot.id }}"
        duration: 4s
  - id: day
    location: "a meadow near {{ locations.river }}"
    shots:
      - id: b
        prompt: "{{ location }}, {{ shot.duration }}"
        duration: 4s
"""
    path = write(folder, "", text=text)
    assert prompts(path) == [
        "a red fox, wet from a river under moonlight, night look; fox alone. close-up, a. moonlight, night look.",
        "a meadow near a river under daylight, night look, 4s. daylight, night look.",
    ]


def test_loops_over_characters_and_filters_work(folder: Path) -> None:
    path = write(folder, "{% for name, c in characters.items() %}{{ name }}: {{ c | upper }}{{ ', ' if not "
                         "loop.last }}{% endfor %} / {{ characters | list | join('+') }} / {{ range(3) | sum }} / "
                         "{{ 1234567 | string }} {{ '{:,}'.format(1234567) }} {{ '%05d' % 42 }} {{ 'ab' | join('-') }}")
    assert prompts(path) == ["fox: A RED FOX, swan: A WHITE SWAN / fox+swan / 3 / 1234567 1,234,567 00042 a-b. "
                             "soft light."]


def test_split_camera() -> None:
    assert split_camera("wide shot, low angle, slow push in") == ("wide shot, low angle", "slow push in")
    assert split_camera("close-up, static") == ("close-up", "static")
    assert split_camera("tracking shot") == ("", "tracking shot")
    assert split_camera("") == ("", "")


def test_packaged_templates() -> None:
    assert {"plain", "cinematic"} <= set(packaged_templates())


# -- errors name file:line and the names that exist -----------------------------------------------------------


@pytest.mark.parametrize(("prompt", "message"), [
    ("{{ characters.goose }}", "unknown name 'characters.goose'; known characters: fox, swan"),
    ("{{ characters.fxo }}", "unknown name 'characters.fxo'; did you mean 'fox'? known characters: fox, swan"),
    ("{{ goose }}", f"unknown name 'goose'; names in scope: {NAMES}"),
    ("{{ styel }}", f"unknown name 'styel'; did you mean 'style'? names in scope: {NAMES}"),
    ("{{ scene.mood }}", "unknown name 'scene.mood'; scene has: description, id, location"),
    ("{{ locations.lake }}", "unknown name 'locations.lake'; known locations: forest"),
    ("{{ characters.fox.colour }}",
     "unknown name 'characters.fox.colour'; a character has: description, name, reference"),
    ("{{ characters.fox ", "template syntax error: unexpected end of template, expected 'end of print statement'."),
    ("{{ shot.prompt }}", "s/a.prompt includes itself (s/a.prompt -> s/a.prompt); a text cannot contain itself"),
    ("{% if false %}x{% endif %}", "the prompt renders to empty text; write what happens in the shot"),
    ("{{ '{{' }} x }}", "the text still contains '{{', '{%' or '{#' after rendering; prompts are plain text"),
    ("{{ 1 / 0 }}", "template error: ZeroDivisionError: division by zero"),
])
def test_template_errors_are_exact_and_at_the_prompt_line(folder: Path, prompt: str, message: str) -> None:
    assert errors(write(folder, prompt)) == [f"film.yaml:{PROMPT_LINE}: s/a: {message}"]


def test_an_error_in_a_description_is_at_its_own_line_once(folder: Path) -> None:
    text = STORY.format(prompt='"{{ characters.fox }}"', extra="      - id: b\n        prompt: again "
                        "{{ characters.fox }}\n        duration: 4s\n").replace("fox: a red fox", "fox: '{{ goose }}'")
    assert errors(write(folder, "", text=text)) == [
        f"film.yaml:5: characters.fox: unknown name 'goose'; names in scope: {NAMES}"]


def test_a_camera_error_is_at_the_camera_line(folder: Path) -> None:
    path = write(folder, "a fox", extra="        camera: '{{ shot.lens }}'\n")
    assert errors(path) == ["film.yaml:17: s/a: unknown name 'shot.lens'; shot has: camera, characters, dialogue, "
                            "duration, end_image, framing, id, image, motion, prompt, setting, subjects, transition"]


def test_a_multi_line_prompt_error_says_which_line_of_the_text(folder: Path) -> None:
    text = STORY.format(prompt="|\n          a fox\n          {{ goose }}", extra="")
    assert errors(write(folder, "", text=text)) == [
        f"film.yaml:{PROMPT_LINE}: s/a: unknown name 'goose'; names in scope: {NAMES} (line 2 of the text)"]


def test_descriptions_that_include_each_other_are_refused(folder: Path) -> None:
    text = STORY.format(prompt='"{{ characters.fox }}"', extra="").replace(
        "style: soft light", "style: '{{ characters.fox }} light'").replace(
        "fox: a red fox", "fox: 'a {{ style }} fox'")
    assert errors(write(folder, "", text=text)) == [
        "film.yaml:3: style: characters.fox includes itself (characters.fox -> style -> characters.fox); a text "
        "cannot contain itself"]


def test_the_cli_prints_the_error_without_a_traceback(folder: Path) -> None:
    path = write(folder, "{{ ''.__class__.__mro__[1].__subclasses__() }}")
    run = run_cli("plan", str(path), cwd=folder)
    assert run.returncode == 1
    assert run.stderr.strip() == f"error: film.yaml:{PROMPT_LINE}: s/a: '__class__' {INTERNALS}"
    assert "Traceback" not in run.stderr and "<class" not in run.stderr


# -- hostile templates ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("prompt", "message"), [
    # Python internals
    ("{{ ''.__class__.__mro__ }}", f"'__class__' {INTERNALS}"),
    ("{{ ''.__class__ }}", f"'__class__' {INTERNALS}"),
    ("{{ cycler.__init__.__globals__.os }}", f"'__init__' {INTERNALS}"),
    ("{{ self._TemplateReference__context }}", f"'_TemplateReference__context' {INTERNALS}"),
    ("{{ style | attr('__class__') }}", f"'__class__' {INTERNALS}"),
    ("{{ characters._items }}", f"'_items' {INTERNALS}"),
    ("{{ [].append(1) }}", "'append' refused: templates cannot change the story's data"),
    ("{{ {}.update(a=1) }}", "'update' refused: templates cannot change the story's data"),
    # Python objects never print as their repr (it holds memory addresses)
    ("{{ style.upper }}", "refused: this prints a function (call it with ()), not text; print a name such as "
                          "characters.fox, or join a list with |join(', ')"),
    ("{{ characters }}", "refused: this prints a collection of names, not text; print a name such as "
                         "characters.fox, or join a list with |join(', ')"),
    ("{{ self }}", "refused: this prints a Python object, not text; print a name such as characters.fox, or join "
                   "a list with |join(', ')"),
    ("{{ [style.upper] | join }}", "refused: templates pass text, numbers and lists, not a function (call it "
                                   "with ())"),
    ("{{ 'x' ~ style.upper }}", "refused: this prints a function (call it with ()), not text; print a name such "
                                "as characters.fox, or join a list with |join(', ')"),
    ("{{ cycler('a') | string }}", "refused: templates print text, not Python objects"),
    # bounded loops, sizes and numbers
    ("{% for i in range(10**9) %}x{% endfor %}",
     "range(1000000000) refused: ranges in templates are limited to 100,000 items"),
    ("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
     "refused: the template does too much work (more than 250,000 steps); loops and repetition in story "
     "templates are bounded"),
    ("{% for c in style * 900 %}{% for d in style * 900 %}{% endfor %}{% endfor %}",
     "refused: the template does too much work (more than 250,000 steps); loops and repetition in story "
     "templates are bounded"),
    ("{% macro f() %}{{ f() }}{{ f() }}{% endmacro %}{{ f() }}", "refused: the template calls itself too deeply"),
    ("{% for c in 'ab' recursive %}{{ loop(c) }}{% endfor %}",
     "template syntax error: recursive loops are not available in story templates"),
    ("{{ 'x' * 10**9 }}", "refused: repeating text or a list past 10,000 items; prompts are short"),
    ("{{ 2 ** 100000 }}", "refused: a number in the template is too large"),
    ("{{ '%999999999d' % 1 }}", "refused: a format width in the template is too large (at most 100,000)"),
    ("{{ '{:999999999}'.format(1) }}", "refused: a format width in the template is too large (at most 100,000)"),
    ("{{ 'a' | center(10**9) }}", "refused: the number 1000000000 is too large for a template (at most 100,000)"),
    ("{{ 'a'.ljust(10**9) }}", "refused: the number 1000000000 is too large for a template (at most 100,000)"),
    ("{{ '{0:{1}}'.format(1, 10**9) }}", "refused: the number 1000000000 is too large for a template (at most "
                                         "100,000)"),
    ("{{ (style * 900) | replace('', style * 900) }}",
     "refused: replace would make text longer than 10,000 characters; prompts are short"),
    ("{{ (style * 900) | join(style * 900) }}",
     "refused: join would make text longer than 10,000 characters; prompts are short"),
    ("{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
     "refused: a value in the template grows past 10,000 characters; prompts are short"),
    ("{% for i in range(5000) %}abcdefghij{% endfor %}",
     "refused: the template renders to more than 10,000 characters; prompts are short"),
    # no files, no randomness
    ("{% include '/etc/passwd' %}", "template syntax error: {% include %} is not available in story templates; "
                                    "write the text here"),
    ("{% extends 'base.j2' %}", "template syntax error: {% extends %} is not available in story templates; write "
                                "the text here"),
    ("{% import 'm.j2' as m %}", "template syntax error: {% import %} is not available in story templates; write "
                                 "the text here"),
    ("{{ lipsum() }}", f"unknown name 'lipsum'; names in scope: {NAMES}"),
    ("{{ [1, 2] | random }}", "template syntax error: No filter named 'random'."),
])
def test_hostile_templates_are_refused_quickly_with_exact_messages(folder: Path, prompt: str, message: str) -> None:
    path = write(folder, prompt)
    started = time.perf_counter()
    assert errors(path) == [f"film.yaml:{PROMPT_LINE}: s/a: {message}"]
    assert time.perf_counter() - started < 3


PIECES = ["{{", "}}", "{%", "%}", "for ", "x ", "in ", "range(9)", "range(", ")", "characters", ".fox", ".items()",
          "style", ".__class__", "loop.index", "if ", "endfor", "endif", "set ", "=", "*", "**", "9", "|join",
          "|upper", "namespace(", "~", "'a'", "(", "[", "]", ",", " ", "a fox", "\n"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(PIECES), max_size=14).map("".join))
def test_any_prompt_renders_to_plain_text_or_a_story_error(tmp_path: Path, prompt: str) -> None:
    path = tmp_path / "film.yaml"
    path.write_text(STORY.format(prompt=json.dumps(prompt), extra=""), "utf-8")
    try:
        plan = api.plan(path)
    except StoryError as error:
        assert all(p.line == PROMPT_LINE and "Traceback" not in p.message for p in error.problems)
        return
    text = plan.jobs[0].prompt
    assert not any(mark in text for mark in ("{{", "{%", "{#", " at 0x"))
    assert text == " ".join(text.split())


# -- the template a story picks -------------------------------------------------------------------------------


def test_a_user_template_file_beside_the_story(folder: Path) -> None:
    (folder / "looks").mkdir()
    (folder / "looks" / "mine.j2").write_text("{{ shot.id }}: {{ shot.prompt | upper }} ({{ style }})\n", "utf-8")
    path = write(folder, "{{ characters.fox }} runs", extra="enhance:\n  template: looks/mine.j2\n")
    assert prompts(path) == ["a: A RED FOX RUNS (soft light)"]


def test_an_error_inside_a_user_template_is_at_its_file_and_line(folder: Path) -> None:
    (folder / "mine.j2").write_text("{{ shot.prompt }}\n{{ shot.lens }}\n", "utf-8")
    path = write(folder, "a fox", extra="enhance:\n  template: mine.j2\n")
    assert errors(path) == ["mine.j2:2: s/a: unknown name 'shot.lens'; shot has: camera, characters, dialogue, "
                            "duration, end_image, framing, id, image, motion, prompt, setting, subjects, transition"]


def test_a_user_template_is_sandboxed_too(folder: Path) -> None:
    (folder / "mine.j2").write_text("{{ shot.prompt }}\n{{ ''.__class__ }}\n", "utf-8")
    path = write(folder, "a fox", extra="enhance:\n  template: mine.j2\n")
    assert errors(path) == [f"mine.j2:2: s/a: '__class__' {INTERNALS}"]


@pytest.mark.parametrize(("template", "message"), [
    ("cinema", "unknown template 'cinema'; did you mean 'cinematic'? use cinematic or plain, or a path to a .j2 file"),
    ("../outside.j2", "'../outside.j2' is outside the story root {root} (the folder holding .git, else the story "
                      "file's folder); move the file inside it, or allow its folder with --allow-path DIR (or "
                      "STORYFORGE_ALLOW_PATH)"),
    ("/etc/passwd.j2", "'/etc/passwd.j2' is outside the story root {root} (the folder holding .git, else the story "
                       "file's folder); move the file inside it, or allow its folder with --allow-path DIR (or "
                       "STORYFORGE_ALLOW_PATH)"),
    ("link.j2", "'link.j2' is outside the story root {root} (the folder holding .git, else the story file's folder); "
                "move the file inside it, or allow its folder with --allow-path DIR (or STORYFORGE_ALLOW_PATH)"),
    ("missing.j2", "no such file 'missing.j2' (paths are relative to the story file)"),
])
def test_template_paths_are_checked(folder: Path, template: str, message: str) -> None:
    story = folder / "story"
    story.mkdir()
    (folder / "outside.j2").write_text("{{ shot.prompt }}", "utf-8")
    (story / "link.j2").symlink_to(folder / "outside.j2")
    path = write(story, "a fox", extra=f"enhance:\n  template: {json.dumps(template)}\n")
    assert errors(path) == [f"story/film.yaml:18: enhance.template: {message.format(root=story.resolve())}"]


@pytest.mark.parametrize("example", sorted((ROOT / "templates").glob("*.j2")), ids=lambda p: p.name)
def test_the_documented_example_templates_render(folder: Path, example: Path) -> None:
    (folder / example.name).write_text(example.read_text("utf-8"), "utf-8")
    text = api.EXAMPLE.replace("storyforge: 1\n", f"storyforge: 1\nenhance:\n  template: {example.name}\n")
    plan = api.plan(write(folder, "", text=text))
    assert all(job.prompt and "{" not in job.prompt for job in plan.jobs)


def test_the_packaged_templates_match_the_documented_copies() -> None:
    for name in ("plain", "cinematic"):
        packaged = (ROOT / "storyforge" / "templates" / f"{name}.j2").read_text("utf-8")
        assert (ROOT / "templates" / f"{name}.j2").read_text("utf-8") == packaged


def test_planning_with_templates_imports_no_torch(folder: Path) -> None:
    text = api.EXAMPLE.replace("storyforge: 1\n", "storyforge: 1\nenhance:\n  template: cinematic\n")
    path = write(folder, "", text=text)
    code = ("import sys; from storyforge import api; api.plan(sys.argv[1]); "
            "print(sorted(m for m in ('torch', 'transformers', 'diffusers') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.stdout.strip() == "[]"



# -- templates bounded by what they build -----------------------------------------------------------------------------

# a one-shot story whose prompt a test replaces
HEAD = "storyforge: 1\ntitle: T\nscenes:\n  - id: s\n    shots:\n"
SHOT = "      - id: a\n        prompt: a fox\n        duration: 2s\n"


GROWS = "refused: a value in the template grows past 100,000 characters and items in all; prompts are short"


@pytest.mark.parametrize("prompt", [
    "{% set ns = namespace(a=[1]) %}{% for i in range(64) %}{% set ns.a = [ns.a, ns.a] %}{% endfor %}"
    "{{ ns.a|tojson|length }}",
    "{% set ns = namespace(a=['xx']) %}{% for i in range(64) %}{% set ns.a = [ns.a, ns.a] %}{% endfor %}"
    "{{ ns.a|string|length }}",
    "{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(64) %}{% set ns.a = [ns.a, ns.a] %}"
    "{% set ns.b = [ns.b, ns.b] %}{% endfor %}{{ ns.a == ns.b }}",
    "{% set ns = namespace(a={'k': 1}) %}{% for i in range(64) %}{% set ns.a = {'x': ns.a, 'y': ns.a} %}{% endfor %}"
    "{{ ns.a|tojson|length }}",
    "{% set ns = namespace(a=(1,)) %}{% for i in range(64) %}{% set ns.a = (ns.a, ns.a) %}{% endfor %}"
    "{{ ns.a|length }}",
])
def test_template_values_are_bounded_by_size_not_only_by_loops(write_story, prompt: str) -> None:
    text = HEAD + SHOT.replace("prompt: a fox", f"prompt: {json.dumps(prompt)}")
    assert story_errors(write_story(text)) == [f"film.yaml:7: s/a: {GROWS}"]


def test_template_nesting_is_bounded(write_story) -> None:
    prompt = ("{% set ns = namespace(a=1) %}{% for i in range(500) %}{% set ns.a = [ns.a] %}{% endfor %}"
              "{{ ns.a == ns.a }}")
    text = HEAD + SHOT.replace("prompt: a fox", f"prompt: {json.dumps(prompt)}")
    assert story_errors(write_story(text)) == [
        "film.yaml:7: s/a: refused: lists in the template are nested more than 100 deep"]
