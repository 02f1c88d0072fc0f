"""Loading a story file: it is sized before it is read, YAML that would hang or crash is one error at its line,
and any malformed or hostile file (hundreds, generated) ends in messages and exit 0 or 1, never a traceback or a
hang."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from conftest import run_cli, story_errors, within
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storyforge import api
from storyforge.errors import StoryforgeError

# -- the story file itself --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("make", "message"), [
    (lambda p: os.mkfifo(p), "the story file is not a regular file (a FIFO, device or socket); name a file"),
    (lambda p: p.symlink_to("/dev/zero"), "the story file is not a regular file (a FIFO, device or socket); name a "
                                          "file"),
    (lambda p: p.write_bytes(b"# x\n" * 600_000), "the story file is larger than 500 KB"),
    (lambda p: p.symlink_to(p.parent / "loop.yaml") or (p.parent / "loop.yaml").symlink_to(p),
     "the story file cannot be read (Too many levels of symbolic links); check the path and its permissions"),
])
def test_the_story_file_is_sized_before_it_is_read(tmp_path: Path, make, message: str) -> None:
    path = tmp_path / "film.yaml"
    make(path)
    with within(20):  # a FIFO, once opened, would wait for a writer for ever
        done = run_cli("validate", str(path))
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: {path}: {message}"


# -- YAML -------------------------------------------------------------------------------------------------------------

CYCLE = ("an alias (*name) refers to the value that contains it; a value cannot contain itself: copy the parts you "
         "need instead")
MERGE = "a merge key (<<) refers to the mapping that contains it; a value cannot contain itself"
NESTED = "the values are nested too deeply; a story needs at most 64 levels: flatten them"


@pytest.mark.parametrize(("text", "expected"), [
    ("storyforge: 1\ntitle: T\nscenes: &x [*x]\n", [f"film.yaml:3: scenes[0]: {CYCLE}"]),
    ("storyforge: 1\ntitle: T\nstyle: &x {a: *x}\nscenes: []\n", [f"film.yaml:3: style.a: {CYCLE}"]),
    ("storyforge: 1\ntitle: T\nx: &x {<<: *x}\nscenes: []\n", [f"film.yaml:3: x: {MERGE}"]),
    ("storyforge: 1\ntitle: T\nx: &x [[[[*x]]]]\nscenes: []\n", [f"film.yaml:3: x[0][0][0][0]: {CYCLE}"]),
    ("storyforge: 1\ntitle: T\nx: " + "[" * 100_000 + "]" * 100_000 + "\n", [f"film.yaml:3: {NESTED}"]),
    ("storyforge: 1\ntitle: T\nx:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 80)) + "scenes: []\n",
     ["film.yaml:68: x.k1.k2.k3.k4.k5.k6.k7.k8.k9.k10.k11.k12.k13.k14.k15.k16.k17.k18.k19.k20.k21.k22.k23.k24.k25."
      "k26.k27.k28.k29.k30.k31.k32.k33.k34.k35.k36.k37.k38.k39.k40.k41.k42.k43.k44.k45.k46.k47.k48.k49.k50.k51.k52."
      "k53.k54.k55.k56.k57.k58.k59.k60.k61.k62.k63.k64: the values are nested more than 64 levels deep; a story "
      "needs far fewer: flatten it"]),
    ("storyforge: 1\ntitle: T\nrender: {seed: " + "9" * 5000 + "}\nscenes: []\n",
     ["film.yaml:3: render.seed: the number 9999999999999999999999999999999999999999… is too large; numbers in a "
      "story have at most 30 digits"]),
    ("storyforge: 1\ntitle: T\nrender:\n  fps: .nan\n  steps: -.Inf\n  guidance: 1.0e+400\nscenes: []\n",
     ["film.yaml:4: render.fps: .nan is not a finite number; write an ordinary number",
      "film.yaml:5: render.steps: -.Inf is not a finite number; write an ordinary number",
      "film.yaml:6: render.guidance: 1.0e+400 is not a finite number; write an ordinary number"]),
    ('storyforge: 1\ntitle: "a \\ud800 b"\nscenes: []\n',
     ["film.yaml:2: title: the text holds an invalid character (a lone UTF-16 surrogate written as an escape like "
      "\\ud800); remove it"]),
    ('storyforge: 1\ntitle: T\n"\\udfff": 1\nscenes: []\n',
     ["film.yaml:3: (top): the text holds an invalid character (a lone UTF-16 surrogate written as an escape like "
      "\\ud800); remove it"]),
    ("storyforge: 1\ntitle: 'unclosed\nscenes: []\n\n\n\n",
     ["film.yaml:2: YAML syntax error: the quoted text that starts on this line is never closed; add the closing "
      "quote"]),
    ('storyforge: 1\ntitle: T\nstyle: "a\n  b\n  c\nscenes: []\n',
     ["film.yaml:3: YAML syntax error: the quoted text that starts on this line is never closed; add the closing "
      "quote"]),
    ("storyforge: 1\ntitle: T\nstyle: \x1b[31mred\x07\nscenes: []\n",
     ["film.yaml:3: character '\\x1b' (U+001B) is not allowed in a YAML file; remove it or write it as an escape "
      'inside double quotes, e.g. "\\x1b"']),
    ("storyforge: 1\ntitle: T\n\nscenes: [] # \x7f\n",
     ["film.yaml:4: character '\\x7f' (U+007F) is not allowed in a YAML file; remove it or write it as an escape "
      'inside double quotes, e.g. "\\x1b"']),
])
def test_yaml_that_would_hang_or_crash_is_one_error_at_its_line(write_story, text: str, expected: list[str]) -> None:
    assert story_errors(write_story(text)) == expected


# -- malformed stories, generated -------------------------------------------------------------------------------------

VALID = {
    "storyforge": 1,
    "title": "T",
    "render": {"fps": 24, "seed": 1},
    "characters": {"fox": {"description": "a fox"}},
    "scenes": [{"id": "s", "shots": [
        {"id": "a", "prompt": "{{ characters.fox }} runs", "duration": "2s"},
        {"id": "b", "prompt": "it stops", "duration": "1s", "transition": "continue"},
        {"id": "c", "prompt": "it sleeps", "duration": "97f", "transition": {"type": "crossfade", "duration": 6}},
    ]}],
}


scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["4s", "97f", "0", "-1s", "1e9", "continue", "fade",
                                                            "{{ x }}", "720p", "17x33", "refs/swan.png"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=8)


def _mutate(data, draw):
    """Replace, delete or add one value somewhere in the tree."""
    if isinstance(data, dict) and data:
        key = draw(st.sampled_from(sorted(data, key=str)))
        choice = draw(st.integers(0, 3))
        if choice == 0:
            return {k: v for k, v in data.items() if k != key}
        if choice == 1:
            return {**data, key: draw(values)}
        if choice == 2:
            return {**data, draw(st.text(max_size=8)): draw(values)}
        return {**data, key: _mutate(data[key], draw)}
    if isinstance(data, list) and data:
        index = draw(st.integers(0, len(data) - 1))
        copy = list(data)
        copy[index] = _mutate(copy[index], draw) if draw(st.booleans()) else draw(values)
        return copy
    return draw(values)


@st.composite
def mutated_films(draw):
    data = VALID
    for _ in range(draw(st.integers(1, 4))):
        data = _mutate(data, draw)
    return yaml.safe_dump(data, sort_keys=False)


raw_texts = st.one_of(
    st.text(max_size=200),
    st.builds(lambda a, b: a + b, st.just("storyforge: 1\ntitle: T\nscenes:\n"), st.text(max_size=120)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(mutated_films(), raw_texts))
def test_malformed_stories_fail_cleanly(text: str, story_dir) -> None:
    path = story_dir / "film.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        api.validate(path)
    except StoryforgeError as error:
        assert str(error)  # a message, never an empty error
        for problem in getattr(error, "problems", []):
            assert problem.message and "Traceback" not in problem.message


def test_cli_on_garbage_exits_1_without_traceback(story_dir) -> None:
    garbage = ["{{{{", "storyforge: 1\ntitle: x\nscenes: [1, 2]\n", "\x00\x01", "a: !!binary AAAA\n",
               "storyforge: 1\ntitle: T\nscenes:\n  - id: s\n    shots:\n      - {id: a, prompt: p, duration: 1e400}\n"]
    for index, text in enumerate(garbage):
        path = story_dir / f"g{index}.yaml"
        path.write_text(text, encoding="utf-8")
    result = run_cli("validate", *[f"g{i}.yaml" for i in range(len(garbage))], cwd=story_dir)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.count("error: ") >= len(garbage)


# -- hostile fragments: each example must finish within a time limit --------------------------------------------------

HOSTILE_VALUES = st.one_of(
    st.integers(1, 200).map(lambda n: "&x [" * 1 + "[" * n + "*x" + "]" * (n + 1)),  # an alias inside itself
    st.integers(1, 5).map(lambda n: "&x {a: " * 1 + "{b: " * n + "*x" + "}" * (n + 1)),
    st.just("&x {<<: *x}"),
    st.integers(60, 3000).map(lambda n: "[" * n + "]" * n),  # nesting deeper than any story
    st.integers(60, 400).map(lambda n: "{a: " * n + "1" + "}" * n),
    st.sampled_from([".nan", ".NaN", ".inf", "-.Inf", "+.inf", "1.0e+400", "-1.0e+999"]),
    st.integers(31, 20_000).map(lambda n: "9" * n),  # integers too long to convert
    st.sampled_from(['"\\ud800"', '"a\\udfffb"', "true", "false", "yes", "no", "~"]),
)
TEMPLATE_BOMBS = st.sampled_from([
    "{% set ns = namespace(a=[1]) %}{% for i in range(80) %}{% set ns.a = [ns.a, ns.a] %}{% endfor %}"
    "{{ ns.a|tojson }}",
    "{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(80) %}{% set ns.a = [ns.a, ns.a] %}"
    "{% set ns.b = [ns.b, ns.b] %}{% endfor %}{{ ns.a == ns.b }}",
    "{% set ns = namespace(a='x') %}{% for i in range(60) %}{% set ns.a = ns.a ~ ns.a %}{% endfor %}{{ ns.a }}",
    "{{ 'x' * 99999999 }}", "{{ range(10**8)|list|length }}", "{{ '%99999999d'|format(1) }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{{ (9 ** 9 ** 9)|string }}", "{% set ns = namespace(a=1) %}{% for i in range(900) %}{% set ns.a = [ns.a] %}"
    "{% endfor %}{{ ns.a|tojson }}",
])
SETTINGS = st.sampled_from(["fps", "steps", "seed", "guidance", "base_frames", "overlap_frames", "ar_step",
                            "causal_block_size", "resolution"])


@st.composite
def hostile_films(draw):
    """The valid film with one hostile value in a setting, a duration, a title or a prompt."""
    value = draw(HOSTILE_VALUES)
    where = draw(st.sampled_from(["setting", "duration", "title", "prompt", "top"]))
    lines = ["storyforge: 1", "title: T", "render: {fps: 24, seed: 1}", "scenes:", "  - id: s", "    shots:",
             "      - id: a", "        prompt: p", "        duration: 2s"]
    if where == "setting":
        lines[2] = f"render: {{{draw(SETTINGS)}: {value}}}"
    elif where == "duration":
        lines[8] = f"        duration: {value}"
    elif where == "title":
        lines[1] = f"title: {value}"
    elif where == "prompt":
        lines[7] = f"        prompt: {value}"
    else:
        lines.insert(2, f"x: {value}")
    return "\n".join(lines) + "\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(hostile_films(), TEMPLATE_BOMBS.map(
    lambda prompt: yaml.safe_dump({**VALID, "scenes": [{"id": "s", "shots": [
        {"id": "a", "prompt": prompt, "duration": "2s"}]}]}, sort_keys=False))))
def test_hostile_values_fail_cleanly_and_quickly(text: str, story_dir) -> None:
    path = story_dir / "film.yaml"
    path.write_text(text, encoding="utf-8")
    with within():
        try:
            api.validate(path)
        except StoryforgeError as error:
            for problem in getattr(error, "problems", []):
                assert problem.message and problem.file == "film.yaml"
