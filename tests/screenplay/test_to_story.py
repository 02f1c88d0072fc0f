"""A script made into story text: keys for names in any alphabet that stay when the script changes, script text
that is never a template, and a header no title or file name can write keys through."""

from __future__ import annotations

from pathlib import Path

import pytest
from screenplays import story_of

from storyforge import api
from storyforge.screenplay.to_story import fingerprint, safe_text, stable_key

pytestmark = pytest.mark.usefixtures("in_tmp")  # messages name files as given, relative to it


def test_names_no_ascii_spells_keep_their_keys_when_the_script_gains_one_above(tmp_path: Path) -> None:
    """Keys from the name itself, not from the order names appear in: a new character or place above the others
    must not hand their keys (and the writer's descriptions) to someone else."""
    body = "EXT. 東京 - NIGHT\n\nRain.\n\n@黒澤\nこんにちは。\n\nИВАН 2\nПривет.\n\nМАША 2\nПока.\n"
    first = story_of(tmp_path, body)
    (tmp_path / "film.yaml").unlink()
    (tmp_path / "film.import.json").unlink()
    second = story_of(tmp_path, "INT. 大阪 - DAY\n\nSun.\n\n@李明\n你好。\n\n" + body)
    keys = {"黒澤": "character_44ebeb", "ИВАН 2": f"n_2_{fingerprint('ИВАН 2')}",
            "МАША 2": f"n_2_{fingerprint('МАША 2')}"}
    assert keys["ИВАН 2"] != keys["МАША 2"]  # "n_2" alone would make them one character
    for key in keys.values():
        assert key in first["characters"] and first["characters"][key] == second["characters"][key]
    assert set(second["characters"]) - set(first["characters"]) == {stable_key("李明", "character")}
    assert second["scenes"][1]["id"] == first["scenes"][0]["id"] == f"night-{fingerprint('EXT. 東京 - NIGHT')}"
    assert [x["id"] for x in second["scenes"][0]["shots"]] == ["sun"]
    assert [x["id"] for x in first["scenes"][0]["shots"]] == ["rain"]


@pytest.mark.parametrize("name", ["José", "MR. STEEL", "R2D2", "2ND COP"])
def test_names_ascii_spells_keep_readable_keys(name: str) -> None:
    assert stable_key(name, "character") == {"José": "jose", "MR. STEEL": "mr_steel", "R2D2": "r2d2",
                                             "2ND COP": "n_2nd_cop"}[name]


def test_a_name_with_digits_is_written_as_the_script_writes_it(tmp_path: Path) -> None:
    story = story_of(tmp_path, "INT. A - DAY\n\nR2D2\nBeep.\n\n@McCLANE\nYippee.\n\nMR. STEEL\nHi.\n")
    assert {key: value["description"] for key, value in story["characters"].items()} == {
        "r2d2": "TODO: describe R2D2 (age, build, face, hair, clothes)",
        "mcclane": "TODO: describe McCLANE (age, build, face, hair, clothes)",
        "mr_steel": "TODO: describe Mr. Steel (age, build, face, hair, clothes)"}
    assert story["scenes"][0]["shots"][0]["prompt"] == "R2D2 speaks"


@pytest.mark.parametrize("text", ["{{{ x }}}", "{{%", "{%{", "{#{#", "a {{ b", "{{ film.title }}"])
def test_no_script_text_is_ever_a_template(text: str) -> None:
    made = safe_text(text)
    assert not any(mark in made for mark in ("{{", "{%", "{#"))


@pytest.mark.parametrize("script", [
    "INT. A {{ - DAY {{\n\nHe {{{ waits }}}.\n",  # heading: place and time of day
    "INT. A - DAY\n\nHe waits.\n\n李 {{\nHi {%.\n",  # a cue with no ASCII name: its 'speaks' prompt
    "Title: {{ x }}\n\n# Act {{\n\n= {# synopsis\n\nINT. A - DAY\n\nHe waits.\n",  # title, section, synopsis
    "@{{ A }}\n{{ B }}\n",  # a forced cue: its placeholder description and speaking shot
])
def test_template_marks_anywhere_in_a_script_stay_text_and_the_story_plans(script: str, tmp_path: Path) -> None:
    story = story_of(tmp_path, script)
    text = (tmp_path / "film.yaml").read_text("utf-8")
    assert not any(mark in text for mark in ("{{", "{%", "{#")) and story["scenes"]


def test_a_title_or_file_name_cannot_write_keys_through_the_header(tmp_path: Path) -> None:
    name = "a\nrender: {fps: 1}\u2028b.fountain"
    (tmp_path / name).write_text("Title: T\u2028scenes: []\nAuthor: x\u2029y\n\nINT. A - DAY\n\nx.\n", "utf-8")
    report = api.import_script(tmp_path / name, tmp_path / "film.yaml")
    text = (tmp_path / "film.yaml").read_text("utf-8")
    header = text.split("storyforge: 1\n")[0]
    assert all(line.startswith("# ") for line in header.splitlines()) and len(header.splitlines()) == 4
    assert report.problems == [] and "render" not in __import__("yaml").safe_load(text)
