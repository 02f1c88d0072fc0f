"""Templates compiled once per shape and rendered once per context give exactly what compiling and rendering
each text anew gives: the same prompts, casts, errors at the same lines, and the same work limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storyforge.errors import StoryError
from storyforge.story import sandbox, template
from storyforge.story.load import load
from storyforge.story.resolve import resolve
from storyforge.story.sandbox import MAX_FILM_WORK, Refused, _bound, _simple_shape


def _fresh() -> sandbox.Sandbox:
    return template._StorySandbox(undefined=template._Undefined, names=template.NAMES,
                                  filters={"sentences": template._sentences})


def _plain(env: sandbox.Sandbox, source: str):
    """The template as Jinja compiles it from its own text, no shape involved."""
    return env.template_class.from_code(env, env.compile(_bound(env.parse(source))), dict(env._globals), None)


def _outcome(tmpl, scope: dict) -> tuple[str, object]:
    try:
        return "text", "".join(tmpl.generate(scope))
    except Exception as error:  # noqa: BLE001 - the error and its template line are what is compared
        return type(error).__name__, (str(error), template._template_line(error))


SCOPE = {"characters": {"hero": "a tall woman", "friend": "a boy"}, "locations": {"market": "the market"},
         "style": "grainy", "shot": {"id": "a", "prompt": "she runs"}}

# pairs of one shape: the second is compiled from the first's shape with its own plain text set in
SHAPES = [
    ("{{ characters.hero }} walks past {{ locations.market }}, moment 1",
     "{{ characters.hero }} stops at {{ locations.market }}, at the very end"),
    ("{{ characters.hero }}", "{{ characters.hero }}"),
    ("plain {{ style }} tail", "other {{ style }} end, with {braces} and }} and ünïcode"),
    ("line one\n{{ characters.hero }}\nline three {{ nope }}", "another\n{{ characters.hero }}\nthird {{ nope }}"),
    ("{% for c in characters %}{{ c }}: x, {% endfor %}done", "{% for c in characters %}{{ c }} - y; {% endfor %}!"),
    ("{% macro m(a) %}<{{ a }}>{% endmacro %}{{ m(style) }} and {{ m('q') }}",
     "{% macro m(a) %}[{{ a }}]{% endmacro %}{{ m(style) }} or {{ m('q') }}"),
    ("{% filter upper %}shout {{ style }}{% endfilter %} calm",
     "{% filter upper %}yell {{ style }}{% endfilter %} quiet"),
    ("{% set x %}kept {{ style }}{% endset %}{{ x }}|{{ x }}",
     "{% set x %}held {{ style }}{% endset %}{{ x }}/{{ x }}"),
    ("  {% if style %}\n    yes\n  {% endif %}\nafter", "  {% if style %}\n    sure\n  {% endif %}\nlater"),
    ("{%- if style -%}  a  {%- endif %} b {{- style -}} c", "{%- if style -%}  z  {%- endif %} y {{- style -}} x"),
    ("{% raw %}{{ not a tag }}{% endraw %} then {{ style }}", "{% raw %}{% nor this %}{% endraw %} and {{ style }}"),
    ("same same {{ style }} same same", "twice twice {{ style }} twice twice"),
    ("{{ 'lit' }} data {{ style ~ '!' }}", "{{ 'lit' }} text {{ style ~ '!' }}"),
    ("{{ shot.prompt | upper }} then\n\n{{ undefined_name }}",
     "{{ shot.prompt | upper }} next\n\n{{ undefined_name }}"),
    # one shape whatever attributes a simple text reads: known, unknown, refused, on a name that is not there
    ("{{ characters.hero }} and {{ locations.market }}", "{{ characters.friend }} and {{ locations.nowhere }}"),
    ("a\n{{ shot.id }} {{ characters.hero }}", "b\n{{ shot.__class__ }} {{ characters.hero }}"),
    ("{{ nothing.here }} x", "{{ nothing.there }} y"),
    ("{{ style.upper }} z", "{{ style.title }} w"),
    # plain text inside a block lives outside the render function: the whole module is filled in instead
    ("{% block b %}in {{ style }}{% endblock %} out", "{% block b %}on {{ style }}{% endblock %} off"),
    ("{% block b %}{{ style }}{% endblock %} out {{ nope }}", "{% block b %}{{ style }}{% endblock %} off {{ nope }}"),
]


@pytest.mark.parametrize(("first", "second"), SHAPES)
def test_a_shape_shared_by_two_texts_renders_each_as_its_own_compile_does(first: str, second: str) -> None:
    env = _fresh()
    for source in (first, second):
        shaped = env.compile_bounded(source)
        assert _outcome(shaped, SCOPE) == _outcome(_plain(_fresh(), source), SCOPE), source
    assert env.compile_bounded(second) is not None and len(env._shapes) >= 1


def test_texts_of_one_shape_share_one_compile() -> None:
    env = _fresh()
    for n in range(50):
        env.compile_bounded(f"{{{{ characters.hero }}}} waits by the gate, moment {n}")
    assert len(env._shapes) == 2  # its token shape, and the same shape read without the lexer


@pytest.mark.parametrize("source", [
    "{{{ x }}", "a {{ x }}{{{ y }}", "{{- x }}", "{{ x -}}", "{{ x }}\n", "a\r\n{{ x }}",
    "{% if x %}{{ x }}{% endif %}", "{# note #}{{ x }}", "{{ x.1 }}", "{{ x\n}}", "{{ x }} {{", "{{ x | upper }}",
    "{{ true.real }}", "{{ None.x }}",  # constants, not names: Jinja folds their attributes while compiling
])
def test_texts_the_simple_reading_cannot_be_sure_of_go_through_the_lexer(source: str) -> None:
    assert _simple_shape(source) is None


def test_the_simple_reading_splits_as_the_lexer_does() -> None:
    key, texts = _simple_shape("a {{ b.c }}\nd {{e}}")
    assert texts == ["a ", "c", "\nd "] and key == ("simple", True, (1, "b", 1), True, (2, "e", 0), False)
    env = _fresh()
    for source in ("{ {{ x }}", "}} {{ x }}}", "{{x}}{{ y.z }}", "  lead\n\n{{\tx\t}} mid { } end ", "ü {{ x }} ß",
                   "{{ a.b.c }} and {{ d.e }}"):
        found = _simple_shape(source)
        assert found is not None, source
        tokens = list(env._tokenize(source, None))
        holes = [token.value for n, token in enumerate(tokens) if (token.type == "data" and token.value) or
                 (token.type == "name" and tokens[n - 1].type == "dot")]
        assert found[1] == holes, source


def test_texts_that_differ_in_the_names_they_read_share_one_compile() -> None:
    env = _fresh()
    for who, place in (("hero", "market"), ("friend", "gate"), ("dog", "well"), ("nope", "market")):
        source = f"{{{{ characters.{who} }}}} waits by {{{{ locations.{place} }}}}, moment {len(who)}"
        assert _outcome(env.compile_bounded(source), SCOPE) == _outcome(_plain(_fresh(), source), SCOPE), source
    assert len(env._shapes) == 2  # its token shape, and the same shape read without the lexer


# -- rendering once per context ------------------------------------------------------------------------------


def _story(shots: list[str], extra: str = "", characters: str = "  fox: a red fox\n") -> str:
    lines = ["storyforge: 1", "title: Reuse", "style: '{{ film.title }} look'", "characters:",
             characters.rstrip("\n"), "locations:", "  wood: '{{ scene.id }} wood'", "scenes:"]
    for scene in ("one", "two"):
        lines += [f"  - id: {scene}", "    location: wood", "    shots:"]
        lines += [f"      - {{id: {name}, prompt: {prompt!r}, duration: 1s}}" for name, prompt in
                  ((f"s{i}", p) for i, p in enumerate(shots))]
    return "\n".join(lines) + "\n" + extra


def _without_reuse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(template._ShotRenderer, "_again", lambda self, item: None)
    monkeypatch.setattr(template._Recording, "keep", lambda self, renders, source, text: None)
    monkeypatch.setattr(sandbox.Sandbox, "_shaped", lambda self, source: None)


def _result(path: Path) -> object:
    """Every shot's prompt, camera words and cast (the characters its texts used, in order), or the problems."""
    try:
        texts = template.render_texts(resolve(load(path)))
    except StoryError as error:
        return [str(problem) for problem in error.problems]
    return [(shot, text.prompt, text.camera, text.cast) for shot, text in texts.items()]


def _both(path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    reused = _result(path)
    with monkeypatch.context() as patched:
        _without_reuse(patched)
        assert _result(path) == reused
    return reused


def test_prompts_and_casts_are_those_of_rendering_every_text_anew(write_story, monkeypatch) -> None:
    characters = "  fox: '{{ characters.owl }} and a fox in {{ shot.id }}'\n  owl: an owl\n  bear: a bear"
    prompts = ["{{ characters.fox }} by {{ location }}", "the bear naps in {{ location }}",
               "{{ characters.owl }} {% if scene.id == 'two' %}{{ characters.bear }}{% endif %}"] * 3
    result = _both(write_story(_story(prompts, "enhance: {template: cinematic}\n", characters)), monkeypatch)
    shots = {shot: (prompt, cast) for shot, prompt, _, cast in result}
    assert shots["one/s3"] == ("An owl and a fox in s3 by one wood. Reuse look.", ("owl", "fox"))
    assert shots["two/s2"] == ("An owl a bear. Two wood. Reuse look.", ("owl", "bear"))
    assert shots["one/s1"][1] == ()  # 'the bear' by word is a subject of the prompt, not a text's use


def test_an_error_in_some_shots_only_is_the_same(write_story, monkeypatch) -> None:
    prompts = ["{% if shot.id == 's4' %}{{ characters.nope }}{% endif %}{{ characters.fox }} runs"] * 6
    result = _both(write_story(_story(prompts)), monkeypatch)
    assert result == ["film.yaml:16: one/s4: unknown name 'characters.nope'; known characters: fox",
                      "film.yaml:25: two/s4: unknown name 'characters.nope'; known characters: fox"]


def test_the_film_work_limit_stops_reused_renders_where_real_ones_stop(write_story, monkeypatch) -> None:
    # every shot spends the same steps on the same context: reused renders must still count them
    loop = "{% for i in range(50000) %}{% endfor %}"
    result = _both(write_story(_story([loop + "{{ characters.fox }} runs"] * 8)), monkeypatch)
    assert len(result) == 1 and result[0].endswith(
        f"refused: the film's templates do too much work together (more than {MAX_FILM_WORK:,} steps); loops "
        "and repetition in story templates are bounded")


def test_the_film_work_limit_met_inside_a_nested_text_is_reported_there(write_story, monkeypatch) -> None:
    characters = "  fox: '{% for i in range(40000) %}{% endfor %}a fox of {{ scene.id }}'"
    loop = "{% for i in range(30000) %}{% endfor %}"
    result = _both(write_story(_story([loop + "{{ characters.fox }} {{ shot.id }}"] * 7, "", characters)),
                   monkeypatch)
    assert len(result) == 1 and "the film's templates do too much work together" in result[0]


def test_charging_past_a_limit_counts_nothing() -> None:
    with sandbox.film_budget(), sandbox.budget():
        assert sandbox.charge(10) and sandbox.spent() == 10
        assert not sandbox.charge(sandbox.MAX_WORK) and sandbox.spent() == 10
        sandbox.refund(10)
        assert sandbox.spent() == 0
        with pytest.raises(Refused):
            sandbox.spend(sandbox.MAX_WORK + 1)


# -- characters named as words -----------------------------------------------------------------------------------

NAMES_TO_FIND = ["fox", "old_fox", "Kit", "sam", "a1"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("foxoldsamkitA1_ -.KSİſK\u212a")), max_size=24))
def test_the_characters_a_text_names_are_those_each_name_s_search_finds(prompt: str) -> None:
    import re

    expected = [name for name in NAMES_TO_FIND
                if re.search("|".join(rf"\b{re.escape(w)}\b" for w in dict.fromkeys((name, name.replace("_", " ")))),
                             prompt, re.IGNORECASE)]
    assert template._Compiled().named_in(prompt, NAMES_TO_FIND) == expected


def test_only_plain_record_types_are_read_without_the_sandbox_s_checks() -> None:
    class Plain:
        pass

    class Fine(sandbox.Sandbox):
        records = frozenset({Plain})

    for mutable in (dict, list, type(sandbox), (lambda: None).__class__):
        with pytest.raises(TypeError, match="only plain record types"):
            type("Wrong", (sandbox.Sandbox,), {"records": frozenset({mutable})})
    assert Fine.records == {Plain}
