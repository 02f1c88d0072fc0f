"""Hostile input never crashes the loader: hundreds of malformed story files give exit 0 or 1, no traceback."""

from __future__ import annotations

import subprocess
import sys

import yaml
from conftest import within
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storyforge import api
from storyforge.errors import StoryforgeError

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
    result = subprocess.run([sys.executable, "-m", "storyforge", "validate",
                             *[f"g{i}.yaml" for i in range(len(garbage))]],
                            capture_output=True, text=True, cwd=story_dir)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.count("error: ") >= len(garbage)


# -- hostile fragments: each example must finish within a time limit --------------------------------------------

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
