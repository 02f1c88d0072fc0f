"""No silent misreadings: a model that names nothing, a bare number that looks like frames, a location one letter off
its key, an unquoted `{{`, and many copies of one mistake, each said once at file:line (asserted word for word)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from storyforge import api
from storyforge.cli import app
from storyforge.errors import StoryError, StoryforgeError

HEAD = "storyforge: 1\ntitle: T\n"
SHOT = "scenes:\n  - id: s\n    shots:\n      - {id: a, prompt: p, duration: 2s}\n"
PRESETS = "use a preset (df-1.3b-540p, df-14b-540p, df-14b-720p, tiny), a hub id (owner/name) or a local folder"


def problems(write_story, text: str) -> list[str]:
    with pytest.raises(StoryError) as caught:
        api.validate(write_story(text))
    return [str(p) for p in caught.value.problems]


def warnings(write_story, text: str) -> list[str]:
    _, plan = api.check(write_story(text))
    return [str(w) for w in plan.warnings]


@pytest.mark.parametrize(("model", "expected"), [
    ("df-1.3b-540", f"unknown model 'df-1.3b-540'; did you mean 'df-1.3b-540p'? {PRESETS}"),
    ("df-14b-720", f"unknown model 'df-14b-720'; did you mean 'df-14b-720p'? {PRESETS}"),
    ("tiyn", f"unknown model 'tiyn'; did you mean 'tiny'? {PRESETS}"),
    ("skyreels", f"unknown model 'skyreels'; {PRESETS}"),
    ("./models/mine", f"no model folder './models/mine'; {PRESETS}"),
    ("Skywork/SkyReels/V2", f"no model folder 'Skywork/SkyReels/V2'; {PRESETS}"),
])
def test_a_model_that_names_nothing_is_an_error(write_story, model: str, expected: str) -> None:
    assert problems(write_story, HEAD + f"render:\n  model: {model}\n" + SHOT) == [
        f"film.yaml:4: render.model: {expected}"]


def test_a_model_written_at_a_scene_and_a_shot_is_checked_where_written(write_story) -> None:
    text = HEAD + "scenes:\n  - id: s\n    render: {model: df-14b-540}\n    shots:\n" \
        "      - {id: a, prompt: p, duration: 2s, render: {model: tinyy}}\n"
    assert problems(write_story, text) == [
        f"film.yaml:5: s.render.model: unknown model 'df-14b-540'; did you mean 'df-14b-540p'? {PRESETS}",
        f"film.yaml:7: s/a.render.model: unknown model 'tinyy'; did you mean 'tiny'? {PRESETS}"]


def test_hub_ids_folders_and_presets_are_models(write_story, story_dir) -> None:
    (story_dir / "weights").mkdir()
    for model in ("Skywork/SkyReels-V2-DF-1.3B-540P-Diffusers", "someone/my_model.v2", "weights", "df-14b-540p"):
        api.validate(write_story(HEAD + f"render:\n  model: {model}\n" + SHOT))


def test_a_command_line_model_that_names_nothing_is_refused() -> None:
    with pytest.raises(StoryforgeError, match=r"^--model: unknown model 'df-1\.3b'; did you mean 'df-1\.3b-540p'\? "):
        api.plan("examples/stories/minimal.yaml", {"model": "df-1.3b"})


@pytest.mark.parametrize(("duration", "fps", "expected"), [
    ("48", 24, "48 is 48 s = 1,153 frames at 24 fps; write 48f for frames, or 48s for seconds"),
    ("97", 24, "97 is 97 s = 2,329 frames at 24 fps; write 97f for frames, or 97s for seconds"),
    ("16", 16, "16 is 16 s = 257 frames at 16 fps; write 16f for frames, or 16s for seconds"),
    ("13", 24, "13 is 13 s = 313 frames at 24 fps; write 13f for frames, or 13s for seconds"),
    ("9", 24, "9 is 9 s = 217 frames at 24 fps; write 9f for frames, or 9s for seconds"),
    ("17.0", 24, "17 is 17 s = 409 frames at 24 fps; write 17f for frames, or 17s for seconds"),
])
def test_a_bare_number_that_looks_like_frames_warns_with_both_readings(write_story, duration, fps, expected) -> None:
    text = HEAD + f"render: {{fps: {fps}}}\nscenes:\n  - id: s\n    shots:\n" \
        f"      - id: a\n        prompt: p\n        duration: {duration}\n"
    found = [w for w in warnings(write_story, text) if "write" in w and "for frames" in w]
    assert found == [f"film.yaml:9: s/a: {expected}"]


@pytest.mark.parametrize("duration", ["4", "5", "15", "4.5", "12", "48s", "97f", "'48'"])
def test_seconds_that_look_like_seconds_do_not_warn(write_story, duration: str) -> None:
    text = HEAD + f"scenes:\n  - id: s\n    shots:\n      - id: a\n        prompt: p\n        duration: {duration}\n"
    assert not [w for w in warnings(write_story, text) if "for frames" in w]


@pytest.mark.parametrize(("written", "key"), [("Lake", "lake"), ("lakes", "lake"), ("pine forest", "pine_forest"),
                                              ("pine-forest", "pine_forest"), ("pine_forrest", "pine_forest")])
def test_a_location_close_to_a_key_warns(write_story, written: str, key: str) -> None:
    text = HEAD + "locations:\n  lake: a still lake\n  pine_forest: tall pines\n" \
        f"scenes:\n  - id: s\n    location: {written}\n    shots:\n      - {{id: a, prompt: p, duration: 2s}}\n"
    assert warnings(write_story, text) == [
        f"film.yaml:8: s: location '{written}' is not a key of `locations`, so it is used as free text (without "
        f"{key}'s description or reference); did you mean '{key}'?"]


@pytest.mark.parametrize("written", ["a misty lake at dawn", "lake", "the old mill"])
def test_a_location_that_is_a_key_or_plainly_free_text_does_not_warn(write_story, written: str) -> None:
    text = HEAD + "locations:\n  lake: a still lake\n" \
        f"scenes:\n  - id: s\n    location: {written}\n    shots:\n      - {{id: a, prompt: p, duration: 2s}}\n"
    assert warnings(write_story, text) == []


QUOTE = ('a value that begins with {{ is read by YAML as a mapping, not as text; quote values that begin with {{, '
         'e.g. prompt: "{{ characters.fox }} runs"')


@pytest.mark.parametrize(("line", "where"), [
    ("prompt: {{ characters.fox }} runs", ""),
    ("prompt: {{x}}, in {{ location }}", ""),
    ("prompt: {{ characters.fox }}", "scenes[0]/shots[0].prompt: "),
    ("camera: {{ shot.id }}\n        prompt: p", "scenes[0]/shots[0].camera: "),
])
def test_an_unquoted_template_says_to_quote_it(write_story, line: str, where: str) -> None:
    text = HEAD + f"scenes:\n  - id: s\n    shots:\n      - id: a\n        {line}\n        duration: 2s\n"
    assert problems(write_story, text) == [f"film.yaml:7: {where}{QUOTE}"]


def test_a_quoted_or_folded_template_is_text(write_story) -> None:
    text = HEAD + "characters: {fox: a fox}\nscenes:\n  - id: s\n    shots:\n" \
        "      - id: a\n        prompt: '{{ characters.fox }} runs'\n        duration: 2s\n" \
        "      - id: b\n        prompt: >\n          {{ characters.fox }} sleeps\n        duration: 2s\n"
    api.validate(write_story(text))


MANY = HEAD + "render: {ar_step: 5, causal_block_size: 5}\nscenes:\n  - id: s\n    shots:\n" + "".join(
    f"      - {{id: a{n}, prompt: p, duration: 289f}}\n" for n in range(8))
SAME = ("289 frames in asynchronous mode with causal_block_size 5: the last window would have 13 latents, not "
        "divisible by causal_block_size 5, so its last 3 latents would stay pure noise; use 277f or 297f, or set "
        "causal_block_size: 1")


def test_one_mistake_in_many_shots_is_one_message_naming_them(write_story) -> None:
    write_story(MANY)
    with pytest.raises(StoryError) as caught:
        api.validate("film.yaml")
    assert len(caught.value.problems) == 8  # the library keeps each
    assert str(caught.value) == (
        "film.yaml:7: s/a0 (and s/a1 at line 8, s/a2 at line 9, s/a3 at line 10, s/a4 at line 11 and 3 more "
        f"(--verbose lists them)): {SAME}")
    result = CliRunner().invoke(app, ["validate", "film.yaml"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"error: {caught.value}"]
    verbose = CliRunner().invoke(app, ["validate", "--verbose", "film.yaml"])
    assert verbose.stderr.splitlines() == [
        "error: film.yaml:7: s/a0 (and s/a1 at line 8, s/a2 at line 9, s/a3 at line 10, s/a4 at line 11, s/a5 at "
        f"line 12, s/a6 at line 13, s/a7 at line 14): {SAME}"]


def test_hundreds_of_warnings_are_grouped_by_kind(write_story) -> None:
    shots = "".join(f"      - {{id: a{n}, prompt: p, duration: 8s}}\n" for n in range(200))
    write_story(HEAD + "scenes:\n  - id: s\n    shots:\n" + shots)
    result = CliRunner().invoke(app, ["validate", "film.yaml"])
    assert result.exit_code == 0
    short = ("the last window has 9 of 25 latents but costs nearly a full window of steps; a length giving equal "
             "windows is cheaper per frame: use 177f (7.38s) or 257f (10.71s)")
    assert result.stderr.splitlines() == [f"warning: film.yaml:{6 + n}: s/a{n}: {short}" for n in range(3)] + [
        "warning: … and 197 more of these 200 warnings (short last window); --verbose lists them all"]
    assert result.stdout == "✓ film.yaml — 'T', 1 scene, 200 shots (200 warnings)\n"
    verbose = CliRunner().invoke(app, ["validate", "--verbose", "film.yaml"])
    assert len(verbose.stderr.splitlines()) == 200
    strict = CliRunner().invoke(app, ["validate", "--strict", "film.yaml"])
    assert strict.exit_code == 1
    assert strict.stderr.splitlines()[3] == (
        "error: … and 197 more of these 200 warnings (short last window); --verbose lists them all")


def test_strict_fails_on_a_misreading(write_story) -> None:
    write_story(HEAD + "scenes:\n  - id: s\n    shots:\n      - {id: a, prompt: p, duration: 97}\n")
    result = CliRunner().invoke(app, ["validate", "--strict", "film.yaml"])
    assert result.exit_code == 1
    assert "error: film.yaml:6: s/a: 97 is 97 s = 2,329 frames at 24 fps; write 97f for frames, or 97s for seconds " \
        "[--strict]" in result.stderr.splitlines()
