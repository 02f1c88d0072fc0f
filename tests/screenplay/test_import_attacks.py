"""A hostile review of `storyforge import`: syntax corners of Fountain and Final Draft, names no ASCII spells, texts
that look like templates, paths that are not files, damaged import records and stories, and re-imports that move,
rename and delete scenes. Each case asserts what the story holds, or the message word for word."""

from __future__ import annotations

import codecs
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import within

from storyforge import api, cli
from storyforge.errors import StoryError, StoryforgeError
from storyforge.screenplay import fountain
from storyforge.screenplay.to_story import fingerprint, safe_text, stable_key


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # messages name files as given


def story_of(tmp_path: Path, text: str | bytes, name: str = "s.fountain") -> dict:
    """Import `text` as the script `name`; the story's data (it must validate and plan)."""
    Path(name).write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    report = api.import_script(name, "film.yaml")
    assert report.problems == []
    api.check("film.yaml")
    return yaml.safe_load(Path("film.yaml").read_text("utf-8"))


def refused(tmp_path: Path, text: str | bytes, name: str = "s.fountain") -> str:
    """Import `text`, which must be refused before anything is written; the message."""
    Path(name).write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    with within(20), pytest.raises(StoryforgeError) as caught:
        api.import_script(name, "film.yaml")
    assert not Path("film.yaml").exists() and not Path("film.import.json").exists()
    return str(caught.value)


def kinds(text: str) -> list[tuple[str, str]]:
    return [(e.kind, e.text) for e in fountain.parse(text, "t.fountain").elements]


# -- Fountain syntax corners --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    # forced action wins over what the line looks like: a cue, a heading, a transition, a section
    ("!SCANNING THE AISLES...\nWhere is it?\n", [("action", "SCANNING THE AISLES...\nWhere is it?")]),
    ("!INT. NOT A HEADING\n", [("action", "INT. NOT A HEADING")]),
    ("!CUT TO:\n", [("action", "CUT TO:")]),
    ("!# not a section\n", [("action", "# not a section")]),
    # a forced cue needs a name: extensions, a caret or punctuation alone are action
    ("@(V.O.)\nHello.\n", [("action", "@(V.O.)\nHello.")]),
    ("@ ^\nHello.\n", [("action", "@ ^\nHello.")]),
    ("@...\nHello.\n", [("action", "@...\nHello.")]),
    ("@李明\n你好。\n", [("cue", "李明"), ("dialogue", "你好。")]),
    ("@McCLANE (V.O.) (CONT'D) ^\nYippee.\n", [("cue", "McCLANE"), ("dialogue", "Yippee.")]),
    ("R2D2\nBeep.\n", [("cue", "R2D2"), ("dialogue", "Beep.")]),
])
def test_forcing_characters_decide_the_element(text: str, expected: list[tuple[str, str]]) -> None:
    assert kinds(text) == expected


@pytest.mark.parametrize(("heading", "scene_id", "location", "description"), [
    ("int. kitchen - day", "kitchen-day", "kitchen", "Interior, day."),
    ("INT KITCHEN - DAY", "kitchen-day", "kitchen", "Interior, day."),
    ("I/E. TRUCK - NIGHT", "truck-night", "truck", "Interior and exterior, night."),
    ("EST CITY - DAWN #I-1-A#", "i-1-a-city-dawn", "city", "Establishing shot, exterior, dawn."),
    (".FLASHBACK #12#", "12-flashback", "flashback", None),
    # a heading that names no place: no location, its side and time still described
    ("INT. - NIGHT", "night", None, "Interior, night."),
    ("EXT.", "ext", None, "Exterior."),
])
def test_headings_of_every_form_make_a_scene_that_plans(heading: str, scene_id: str, location: str | None,
                                                        description: str | None, tmp_path: Path) -> None:
    story = story_of(tmp_path, f"{heading}\n\nHe waits.\n")
    scene = story["scenes"][0]
    assert (scene["id"], scene.get("location"), scene.get("description")) == (scene_id, location, description)
    assert story.get("locations", {}) == ({location: location} if location else {})


@pytest.mark.parametrize("beat", ["...", "…", "- - -", "—", "-", "!...", "[[ ]]...", "?!"])
def test_a_paragraph_without_words_is_no_shot(beat: str, tmp_path: Path) -> None:
    """A shot's prompt must say something: '...' renders to nothing and would not plan."""
    path = tmp_path / "s.fountain"
    path.write_text(f"INT. A - DAY\n\nHe waits.\n\n{beat}\n\nShe comes.\n", "utf-8")
    report = api.import_script(path, tmp_path / "film.yaml")
    story = yaml.safe_load((tmp_path / "film.yaml").read_text("utf-8"))
    assert [shot["prompt"] for shot in story["scenes"][0]["shots"]] == ["He waits.", "She comes."]
    assert (report.left_out, report.problems) == ({"paragraphs without words": 1}, [])


def test_a_heading_alone_with_no_place_is_an_establishing_shot_that_plans(tmp_path: Path) -> None:
    story = story_of(tmp_path, "INT. - NIGHT\n\n.-\n\nEXT. GARDEN - DAY\n\nRain.\n")
    assert [(s["id"], [(x["prompt"], x.get("camera")) for x in s["shots"]]) for s in story["scenes"]] == [
        ("night", [("night", "establishing shot")]),
        (f"scene-{fingerprint('-')}", [("the place", "establishing shot")]),
        ("garden-day", [("Rain.", None)]),
    ]


@pytest.mark.parametrize(("newline", "bom"), [("\n", ""), ("\r\n", ""), ("\r", ""), ("\r\n", "\ufeff")])
def test_line_endings_and_a_bom_read_alike(newline: str, bom: str, tmp_path: Path) -> None:
    text = bom + newline.join(["Title:", "    Two", "    Lines", "Author: Ann", "", "INT. A - DAY", "",
                               "He\tcooks  ", "and eats.", "", "BOB", "(beat)", "Hi.", "  ", "Ho.", ""])
    story = story_of(tmp_path, text)
    assert story["title"] == "Two Lines"
    shot = story["scenes"][0]["shots"][0]
    assert (shot["prompt"], shot["dialogue"]) == ("He cooks and eats.", [{"character": "bob",
                                                                          "line": "(beat) Hi. Ho."}])


# -- names and texts ----------------------------------------------------------------------------------------------

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


# -- what is not a screenplay --------------------------------------------------------------------------------------

NOTHING = ("s.fountain: the script has no scene heading, action or dialogue, so there is nothing to make shots of; "
           "is this the screenplay?")


@pytest.mark.parametrize("text", ["", "\n\n\n", "\ufeff", "Title: Only a title page\nAuthor: Ann\n",
                                  "[[just a note]]\n\n/* and\n\nboneyard */\n\n===\n\n>THE END<\n",
                                  "# Act one\n\n= a synopsis\n\n~la la\n", "...\n\n* * *\n"])
def test_a_script_with_nothing_to_film_is_refused_before_anything_is_written(text: str, tmp_path: Path) -> None:
    assert refused(tmp_path, text) == NOTHING


def test_an_empty_final_draft_file_is_refused(tmp_path: Path) -> None:
    assert refused(tmp_path, '<?xml version="1.0"?>\n<FinalDraft><Content/></FinalDraft>\n', "s.fdx") == (
        NOTHING.replace("s.fountain", "s.fdx"))


def test_a_story_larger_than_a_story_file_may_be_is_refused_before_it_is_written(tmp_path: Path) -> None:
    paragraph = " ".join(["word"] * 390) + "\n\n"
    text = "INT. A - DAY\n\n" + paragraph * (990_000 // len(paragraph))
    message = refused(tmp_path, text)
    assert message.startswith("s.fountain: the story would be ") and message.endswith(
        " KB, more than the 500 KB a story file may hold; split the script into parts and import each")


def test_a_missing_script_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoryError) as caught:
        api.import_script("missing.fountain")
    assert str(caught.value) == "missing.fountain: no such file; check the path"
    os.symlink("/dev/zero", "zero.fdx")
    with pytest.raises(StoryError) as caught:
        api.import_script("zero.fdx")
    assert str(caught.value) == "zero.fdx: the script is not a regular file (a FIFO, device or socket); name a file"


# -- Final Draft encodings and namespaces -------------------------------------------------------------------------

FDX = ('<?xml version="1.0" encoding="{encoding}"?>\n<FinalDraft DocumentType="Script" Version="5">\n<Content>\n'
       '<Paragraph Type="Scene Heading"><Text>INT. CAFÉ - DAY</Text></Paragraph>\n'
       '<Paragraph Type="Action"><Text>Zoë </Text><Text Style="Bold">orders</Text><Text> tea.</Text></Paragraph>\n'
       '</Content>\n</FinalDraft>\n')


@pytest.mark.parametrize(("encoding", "data"), [
    ("UTF-8", lambda text: text.encode("utf-8")),
    ("UTF-8", lambda text: codecs.BOM_UTF8 + text.encode("utf-8")),
    ("ISO-8859-1", lambda text: text.encode("latin-1")),
    ("windows-1252", lambda text: text.encode("cp1252")),
    ("UTF-16", lambda text: text.encode("utf-16")),  # with its BOM
    ("UTF-16", lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be")),
    ("UTF-16", lambda text: text.encode("utf-16-le")),  # without a BOM: known by '<?'
])
def test_final_draft_in_each_encoding_it_declares(encoding: str, data, tmp_path: Path) -> None:
    story = story_of(tmp_path, data(FDX.format(encoding=encoding)), "s.fdx")
    assert story["locations"] == {"cafe": "café"}
    assert story["scenes"][0]["shots"][0]["prompt"] == "Zoë orders tea."


def test_final_draft_in_shift_jis(tmp_path: Path) -> None:
    text = FDX.format(encoding="Shift_JIS").replace("CAFÉ", "東京").replace("Zoë", "ゾーイ")
    story = story_of(tmp_path, text.encode("shift_jis"), "s.fdx")
    assert story["scenes"][0]["shots"][0]["prompt"] == "ゾーイ orders tea."


@pytest.mark.parametrize("root", ['<FinalDraft xmlns="http://www.finaldraft.com/fdx">',
                                  '<fd:FinalDraft xmlns:fd="http://www.finaldraft.com/fdx">'])
def test_final_draft_elements_in_a_namespace_are_read(root: str, tmp_path: Path) -> None:
    prefix = "fd:" if root.startswith("<fd:") else ""
    text = (f'{root}<{prefix}Content><{prefix}Paragraph {prefix}Type="Action"><{prefix}Text>Rain falls.'
            f'</{prefix}Text></{prefix}Paragraph></{prefix}Content></{prefix}FinalDraft>')
    assert story_of(tmp_path, text, "s.fdx")["scenes"][0]["shots"][0]["prompt"] == "Rain falls."


@pytest.mark.parametrize(("data", "message"), [
    (b'<?xml version="1.0" encoding="x-unknown"?><FinalDraft/>', "s.fdx:1: the XML declares the encoding "
     "'x-unknown', which a script cannot be read in; re-export the script as UTF-8"),
    (b'<?xml version="1.0" encoding="rot13"?><FinalDraft/>', "s.fdx:1: the XML declares the encoding 'rot13', "
     "which a script cannot be read in; re-export the script as UTF-8"),
    (b'<?xml version="1.0" encoding="unicode_escape"?><FinalDraft/>', "s.fdx:1: the XML declares the encoding "
     "'unicode_escape', which a script cannot be read in; re-export the script as UTF-8"),
    (b'<?xml version="1.0" encoding="zlib"?><FinalDraft/>', "s.fdx:1: the XML declares the encoding 'zlib', which "
     "a script cannot be read in; re-export the script as UTF-8"),
    (b'<?xml version="1.0" encoding="UTF-8"?>\n<FinalDraft>caf\xe9</FinalDraft>', "s.fdx:2: the file is not UTF-8 "
     "text as its XML declaration says (byte 0xe9); re-export the script from Final Draft"),
    (b'<FinalDraft>\n\n<Content>caf\xe9</Content></FinalDraft>', "s.fdx:3: the file is not UTF-8 text (byte 0xe9); "
     "re-export the script from Final Draft"),
    (codecs.BOM_UTF16_LE + "<FinalDraft>\n\u0000</FinalDraft>".encode("utf-16-le"), "s.fdx:2: the file holds "
     "binary data (a NUL byte), not a screenplay; export the script as Fountain (.fountain) or Final Draft (.fdx)"),
    (b"\xff\xfe<\x00F", "s.fdx:1: the file is not UTF-16 text (byte 0x46); re-export the script from Final Draft"),
    ('<FinalDraft><Content><Paragraph Type="Action"><Text>ok</Text></Paragraph></Content>\n<TitlePage><Content>'
     '<Paragraph><Text>T\u009b31m</Text></Paragraph></Content></TitlePage></FinalDraft>'.encode(),
     "s.fdx:2: control character U+009B in the script; a screenplay is plain text: remove it"),
])
def test_final_draft_that_cannot_be_read_says_why(data: bytes, message: str, tmp_path: Path) -> None:
    assert refused(tmp_path, data, "s.fdx") == message


# -- where the story goes --------------------------------------------------------------------------------------

SCRIPT = "INT. KITCHEN - DAY\n\nAnn cooks eggs in a pan.\n\nANN\nBreakfast!\n"


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.mkdir(), "out.yaml is a folder; name the story file to write, e.g. -o out.yaml/film.yaml"),
    (lambda p: os.mkfifo(p), "out.yaml is not a regular file (a FIFO, device or socket); write another file with -o"),
    (lambda p: os.symlink("/dev/zero", p), "out.yaml is not a regular file (a FIFO, device or socket); write "
                                           "another file with -o"),
    (lambda p: os.symlink("nowhere.yaml", p), "out.yaml is a symbolic link to nothing; remove it, or write another "
                                              "file with -o"),
    (lambda p: p.write_text("my notes\n"), "out.yaml already exists; re-import with --update to keep your edits, or "
                                           "write another file with -o"),
])
def test_the_story_path_is_never_a_file_storyforge_did_not_write(make, message: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("s.fountain").write_text(SCRIPT, "utf-8")
    make(Path("out.yaml"))
    for update in (False, True):
        if update and message.startswith("out.yaml already exists"):
            message = ("out.yaml has no import record (out.import.json); --update merges only into a story "
                       "storyforge imported: import into a new file with -o")
        with within(10), pytest.raises(StoryforgeError) as caught:
            api.import_script("s.fountain", "out.yaml", update=update)
        assert str(caught.value) == message
    assert not Path("out.import.json").exists()


@pytest.mark.parametrize("make", [lambda p: p.write_text('{"mine": true}\n'), lambda p: p.mkdir(),
                                  lambda p: os.mkfifo(p)])
def test_a_file_where_the_record_goes_is_not_replaced(make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("s.fountain").write_text(SCRIPT, "utf-8")
    make(Path("s.import.json"))
    with within(10), pytest.raises(StoryforgeError) as caught:
        api.import_script("s.fountain")
    assert str(caught.value) == ("s.import.json is in the way: the import record goes there, and storyforge did not "
                                 "write this file; move it, or write the story elsewhere with -o")
    assert not Path("s.yaml").exists()


def test_a_record_left_by_a_deleted_story_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("s.fountain").write_text(SCRIPT, "utf-8")
    api.import_script("s.fountain")
    Path("s.yaml").unlink()
    assert api.import_script("s.fountain").problems == [] and Path("s.yaml").is_file()


def test_a_story_in_a_folder_that_does_not_exist_yet_is_written_there(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("s.fountain").write_text(SCRIPT, "utf-8")
    report = api.import_script("s.fountain", "new/film.yaml")
    assert report.problems == [] and Path("new/film.yaml").is_file() and Path("new/film.import.json").is_file()
    assert json.loads(Path("new/film.import.json").read_text("utf-8"))["script"] == "../s.fountain"


# -- --update with a damaged record or story ---------------------------------------------------------------------

DAMAGED = ("s.import.json: the import record cannot be read (edited or damaged?); import into a new file with -o and "
           "carry your edits over by hand")


def _record_cases() -> list[tuple[str, object]]:
    def edit(**changes: object):
        def apply(record: dict) -> object:
            for dotted, value in changes.items():
                target = record
                *path, last = dotted.split(".")
                for key in path:
                    target = target[key]
                target[last] = value
            return record
        return apply
    return [
        ("a list", lambda record: []),
        ("null", lambda record: None),
        ("imported a list", edit(imported=[])),
        ("scenes not a list", edit(**{"imported.scenes": "x"})),
        ("a scene id a list", edit(**{"imported.scenes": [{"id": ["x"], "shots": []}]})),
        ("shots a number", edit(**{"imported.scenes": [{"id": "x", "shots": 5}, 7, {"id": "y", "shots": "abc"}]})),
        ("characters a list", edit(**{"imported.characters": ["ann"]})),
        ("origins a list", edit(origins=[])),
        ("origins without shots", edit(origins={"scenes": {}})),
        ("an origin a number", edit(**{"origins.scenes": {"kitchen-day": 5}})),
        ("an origin's line text", edit(**{"origins.shots": {"kitchen-day/ann-cooks-eggs": {"text": "x",
                                                                                         "line": "3"}}})),
        ("script a number", edit(script=5)),
        ("script with a NUL", edit(script="a\u0000b")),
        ("another version", edit(storyforge_import=2)),
        ("duplicate scene ids", lambda record: {**record, "imported": {**record["imported"], "scenes": [
            *record["imported"]["scenes"], *record["imported"]["scenes"]]}}),
        ("more shots than a story holds", lambda record: {**record, "imported": {**record["imported"], "scenes": [
            {"id": f"s{n}", "shots": [{"id": "x", "prompt": "p", "duration": "1f"}]} for n in range(1_001)]}}),
    ]


@pytest.mark.parametrize(("what", "damage"), _record_cases(), ids=[case[0] for case in _record_cases()])
def test_a_damaged_record_is_refused_and_nothing_is_touched(what: str, damage, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("s.fountain").write_text(SCRIPT, "utf-8")
    api.import_script("s.fountain")
    record = json.loads(Path("s.import.json").read_text("utf-8"))
    Path("s.import.json").write_text(json.dumps(damage(record)), "utf-8")
    story = Path("s.yaml").read_text("utf-8")
    with within(10), pytest.raises(StoryError) as caught:
        api.import_script("s.fountain", update=True)
    assert str(caught.value) == DAMAGED
    assert Path("s.yaml").read_text("utf-8") == story and not Path(".storyforge").exists()


@pytest.mark.parametrize(("content", "message"), [
    (b"[" * 100_000 + b"]" * 100_000, DAMAGED),
    (b'{"storyforge_import": NaN}', DAMAGED),
    (b"\xff\xfe{}", DAMAGED),
    (b" " * 4_000_001, "s.import.json: the import record is larger than 4 MB; it should be the JSON file storyforge "
                       "wrote beside the story: import into a new file with -o"),
    (None, "s.import.json: the import record is not a regular file (a FIFO, device or socket); it should be the JSON "
           "file storyforge wrote beside the story: import into a new file with -o"),
])
def test_a_record_that_is_not_json_storyforge_wrote_is_refused_quickly(content: bytes | None, message: str,
                                                                       tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("s.fountain").write_text(SCRIPT, "utf-8")
    api.import_script("s.fountain")
    Path("s.import.json").unlink()
    if content is None:
        os.mkfifo("s.import.json")
    else:
        Path("s.import.json").write_bytes(content)
    with within(10), pytest.raises(StoryError) as caught:
        api.import_script("s.fountain", update=True)
    assert str(caught.value) == message


@pytest.mark.parametrize(("edit", "lines"), [
    (lambda story: {**story, "scenes": "x"}, ["s.yaml:8: scenes: expected a list (items starting with '-'), got "
                                              "'x'"]),
    (lambda story: {**story, "characters": ["ann"]}, ["s.yaml:3: characters: expected a mapping of keys, got list"]),
    (lambda story: {**story, "scenes": json.loads(json.dumps(story["scenes"] * 2))}, [
        "s.yaml:21: kitchen-day: scene id 'kitchen-day' is already used at line 9; ids must be unique"]),
    (lambda story: {**story, "scenes": [{**story["scenes"][0], "shots": [{"id": "x", "prompt": "p", "duration": 2,
                                                                          "cast": [1]}]}]},
     ["s.yaml:17: kitchen-day/x.cast[0]: 1 is not text; quote it"]),
])
def test_a_story_that_does_not_load_is_not_merged_into(edit, lines: list[str], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("s.fountain").write_text(SCRIPT, "utf-8")
    api.import_script("s.fountain")
    story = yaml.safe_load(Path("s.yaml").read_text("utf-8"))
    Path("s.yaml").write_text(yaml.safe_dump(edit(story), sort_keys=False, allow_unicode=True), "utf-8")
    before = Path("s.yaml").read_text("utf-8")
    with pytest.raises(StoryError) as loading:
        api.validate("s.yaml")
    with within(10), pytest.raises(StoryError) as caught:
        api.import_script("s.fountain", update=True)
    said = str(caught.value).splitlines()
    assert said == ["s.yaml: --update merges the script into this story, which does not load (the lines below); fix "
                    "them and re-import, or import into a new file with -o", *str(loading.value).splitlines()]
    assert set(lines) <= set(said)
    assert Path("s.yaml").read_text("utf-8") == before


# -- --update round trips --------------------------------------------------------------------------------------

FIRST = """Title: Round trip

INT. KITCHEN - DAY

Ann cooks eggs in a pan.

ANN
Breakfast!

EXT. GARDEN - DAY

Bob waters the roses slowly.

Bob sits on the bench.

INT. GARAGE - NIGHT

Cal fixes the old car.

EXT. ROOF - NIGHT

Dee watches the stars.

EXT. POOL - DAY

Eve swims ten lengths.
"""


@pytest.fixture
def imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    Path("s.fountain").write_text(FIRST, "utf-8")
    api.import_script("s.fountain")
    return tmp_path / "s.yaml"


def _edit(story_path: Path, change) -> None:
    story = yaml.safe_load(story_path.read_text("utf-8"))
    change({scene["id"]: scene for scene in story["scenes"]}, story)
    story_path.write_text(yaml.safe_dump(story, sort_keys=False, allow_unicode=True), "utf-8")


def _reimport(text: str) -> tuple[Any, dict]:
    Path("s.fountain").write_text(text, "utf-8")
    report = api.import_script("s.fountain", update=True)
    assert report.problems == []
    return report, yaml.safe_load(Path("s.yaml").read_text("utf-8"))


def _shots(story: dict) -> list[tuple[str, list[tuple[str, str, str]]]]:
    return [(s["id"], [(x["id"], x["prompt"], x["duration"]) for x in s["shots"]]) for s in story["scenes"]]


def test_scenes_moved_in_the_script_keep_their_ids_and_the_edits_on_them(imported: Path) -> None:
    def change(scenes: dict, story: dict) -> None:
        scenes["roof-night"]["description"] = "Stars over the city."
        scenes["kitchen-day"]["shots"][0]["duration"] = "97f"
    _edit(imported, change)
    moved = FIRST.split("\n\n")
    # the roof scene (heading and action) moves to the top, the kitchen to the bottom
    roof = "\n\n".join(moved[9:11])
    kitchen = "\n\n".join(moved[1:4])
    rest = "\n\n".join([moved[0], *moved[4:9], *moved[11:]])
    report, story = _reimport(f"{moved[0]}\n\n{roof}\n\n" + rest.removeprefix(moved[0] + "\n\n") + f"\n{kitchen}\n")
    assert [s["id"] for s in story["scenes"]] == ["roof-night", "garden-day", "garage-night", "pool-day",
                                                  "kitchen-day"]
    scenes = {s["id"]: s for s in story["scenes"]}
    assert scenes["roof-night"]["description"] == "Stars over the city."
    assert scenes["kitchen-day"]["shots"][0]["duration"] == "97f"
    assert (report.added, report.removed, report.kept, report.conflicts) == ([], [], [], [])


def test_a_renamed_heading_is_the_same_scene_and_its_place_follows(imported: Path) -> None:
    _edit(imported, lambda scenes, story: scenes["kitchen-day"].update(description="Warm light."))
    report, story = _reimport(FIRST.replace("INT. KITCHEN - DAY", "INT. BIG KITCHEN - MORNING"))
    scene = story["scenes"][0]
    assert (scene["id"], scene["location"], scene["description"]) == ("kitchen-day", "big_kitchen", "Warm light.")
    assert "kitchen" not in story["locations"] and story["locations"]["big_kitchen"] == "big kitchen"
    assert report.conflicts == ['kitchen-day.description: kept your edit; the script now gives "Interior, morning."']
    assert (report.added, report.removed, report.kept) == ([], [], [])


def test_a_deleted_scene_goes_unless_it_was_edited(imported: Path) -> None:
    _edit(imported, lambda scenes, story: scenes["garage-night"]["shots"][0].update(prompt="Cal, oil on his hands."))
    without = FIRST.replace("INT. GARAGE - NIGHT\n\nCal fixes the old car.\n\n", "").replace(
        "EXT. POOL - DAY\n\nEve swims ten lengths.\n", "")
    report, story = _reimport(without)
    assert [s["id"] for s in story["scenes"]] == ["kitchen-day", "garden-day", "garage-night", "roof-night"]
    assert report.removed == ["scene pool-day: the script no longer has it"]
    assert report.kept == ["scene garage-night: the script no longer has it, but you edited it; kept"]
    assert story["scenes"][2]["shots"][0]["prompt"] == "Cal, oil on his hands."


def test_a_replaced_scene_does_not_inherit_the_edits_of_the_one_it_replaced(imported: Path) -> None:
    """A new scene in the place of a deleted one is another scene: the old one's edits stay on the old one."""
    _edit(imported, lambda scenes, story: scenes["garage-night"].update(description="My garage."))
    report, story = _reimport(FIRST.replace("INT. GARAGE - NIGHT\n\nCal fixes the old car.",
                                            "EXT. STREET - DAY\n\nFay walks by."))
    scenes = {s["id"]: s for s in story["scenes"]}
    assert scenes["street-day"]["description"] == "Exterior, day."
    assert scenes["garage-night"]["description"] == "My garage."
    assert report.added == ["scene street-day (script line 16)"]
    assert report.kept == ["scene garage-night: the script no longer has it, but you edited it; kept"]


def test_paragraphs_swapped_in_a_scene_keep_their_ids_and_edits(imported: Path) -> None:
    _edit(imported, lambda scenes, story: scenes["garden-day"]["shots"][1].update(duration="97f"))
    report, story = _reimport(FIRST.replace("Bob waters the roses slowly.\n\nBob sits on the bench.",
                                            "Bob sits on the bench.\n\nBob waters the roses slowly."))
    garden = next(s for s in story["scenes"] if s["id"] == "garden-day")
    assert [(x["id"], x["duration"]) for x in garden["shots"]] == [("bob-sits-bench", "97f"),
                                                                   ("bob-waters-roses", "49f")]
    assert (report.added, report.removed, report.kept, report.conflicts) == ([], [], [], [])


def test_untouched_shots_follow_the_script_and_edited_ones_stand(imported: Path) -> None:
    def change(scenes: dict, story: dict) -> None:
        scenes["kitchen-day"]["shots"][0]["duration"] = "97f"
        scenes["garden-day"]["shots"][0]["prompt"] = "Bob waters red roses, golden light."
    _edit(imported, change)
    report, story = _reimport(FIRST.replace("Ann cooks eggs in a pan.", "Ann cooks three eggs in a pan.")
                              .replace("Bob waters the roses slowly.", "Bob waters the roses very slowly.")
                              .replace("Eve swims ten lengths.", "Eve swims twenty lengths."))
    shots = dict(_shots(story))
    assert shots["kitchen-day"] == [("ann-cooks-eggs", "Ann cooks three eggs in a pan.", "97f")]
    assert shots["garden-day"][0][1] == "Bob waters red roses, golden light."
    assert shots["pool-day"] == [("eve-swims-ten", "Eve swims twenty lengths.", "49f")]
    assert report.conflicts == [  # the script's longer line would change the duration too
        'kitchen-day/ann-cooks-eggs.duration: kept your edit; the script now gives "65f"',
        'garden-day/bob-waters-roses.prompt: kept your edit; the script now gives "Bob waters the roses very slowly."']


def test_two_updates_in_one_second_keep_both_backups(imported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setattr(time, "strftime", lambda *_: "20261207-120000")
    _edit(imported, lambda scenes, story: scenes["kitchen-day"].update(description="one"))
    first = api.import_script("s.fountain", update=True).backup
    second = api.import_script("s.fountain", update=True).backup
    assert (first.name, second.name) == ("s.20261207-120000.yaml", "s.20261207-120000-2.yaml")
    assert "description: one" in first.read_text("utf-8")


# -- the command ---------------------------------------------------------------------------------------------------

def test_the_command_prints_nothing_raw_from_a_hostile_record(imported: Path, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    record = json.loads(Path("s.import.json").read_text("utf-8"))
    record["script"] = "\x1b[31mred\u202e.fountain"
    Path("s.import.json").write_text(json.dumps(record), "utf-8")
    monkeypatch.setattr(sys, "argv", ["storyforge", "import", "s.fountain", "--update"])
    monkeypatch.setenv("COLUMNS", "400")
    with pytest.raises(SystemExit) as done:
        cli.main()
    out, err = capsys.readouterr()
    assert done.value.code == 0 and "\x1b" not in out + err and "\u202e" not in out + err
    assert ("warning: s.yaml: it was imported from \\x1b[31mred\\u202e.fountain; merging s.fountain into it as a new "
            "version of that script") in err


@pytest.mark.parametrize(("heading", "scene_id"), [
    ("INT. A" + " " * 19_000 + "B - DAY", "a-b-day"),  # '\s+' before a dash tried each run of spaces again
    ("INT. A" + " \t" * 5_000 + "B -" + " " * 9_000 + "DAY", "a-b-day"),
    ("INT. A" + " " * 19_000 + "#1#", "1-a"),  # and '\s*' before a scene number
])
def test_runs_of_spaces_in_a_heading_are_read_in_one_pass(heading: str, scene_id: str, tmp_path: Path) -> None:
    with within(10):
        story = story_of(tmp_path, f"{heading}\n\nHe waits.\n")
    assert story["scenes"][0]["id"] == scene_id


def _padded(size: int) -> bytes:
    """A script of exactly `size` bytes: one scene, the rest boneyard (read, never filmed)."""
    head = b"INT. A - DAY\n\nHe waits.\n\n/*"
    return head + b"x\n" * ((size - len(head) - 2) // 2) + b"x" * ((size - len(head) - 2) % 2) + b"*/"


@pytest.mark.parametrize(("data", "message"), [
    (_padded(1_000_000), None),
    (_padded(1_000_001), "s.fountain: the script is larger than 1 MB; a feature-length screenplay is a few hundred "
                         "KB: split it or check the file"),
    (b"INT. A - DAY\n\n" + b"x" * 999_000, "s.fountain:3: the line is longer than 20,000 characters; a screenplay's "
                                           "paragraphs are far shorter: is this a script?"),
    (b"INT. A - DAY\n\nHe \xe2\x80 waits.\n", "s.fountain:3: the script is not UTF-8 text (byte 0xe2); save it as "
                                             "UTF-8"),
    (b"INT. A - DAY\n\nHe \x9b31m waits.\n".decode("latin-1").encode("utf-8"), "s.fountain:3: control character "
     "U+009B in the script; a screenplay is plain text: remove it"),
    (b"\xef\xbb\xbfINT. A - DAY\n\n\x00", "s.fountain:3: the file holds binary data (a NUL byte), not a screenplay; "
                                          "export the script as Fountain (.fountain) or Final Draft (.fdx)"),
])
def test_the_size_and_text_bounds_at_their_edges(data: bytes, message: str | None, tmp_path: Path) -> None:
    assert len(_padded(1_000_000)) == 1_000_000 and len(_padded(1_000_001)) == 1_000_001
    if message is None:
        assert story_of(tmp_path, data)["scenes"][0]["shots"][0]["prompt"] == "He waits."
    else:
        assert refused(tmp_path, data) == message


def test_of_two_equal_scenes_the_one_the_writer_kept_is_the_scripts(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    Path("s.fountain").write_text("INT. A - DAY\n\nAnn waits.\n\nINT. A - DAY\n\nAnn waits.\n", "utf-8")
    api.import_script("s.fountain")
    _edit(Path("s.yaml"), lambda scenes, story: story["scenes"].pop(0))  # deletes a-day, keeps a-day-2
    report, story = _reimport("INT. A - DAY\n\nAnn waits.\n")
    assert [s["id"] for s in story["scenes"]] == ["a-day-2"]
    assert (report.added, report.removed, report.kept) == ([], [], [])


def test_a_merge_that_would_leave_no_scene_is_refused(tmp_path: Path) -> None:
    Path("s.fountain").write_text("INT. A - DAY\n\nAnn waits.\n\nINT. B - DAY\n\nBob runs.\n", "utf-8")
    api.import_script("s.fountain")
    _edit(Path("s.yaml"), lambda scenes, story: story["scenes"].pop(1))  # the writer deletes b-day
    before = Path("s.yaml").read_text("utf-8")
    Path("s.fountain").write_text("INT. B - DAY\n\nBob runs.\n", "utf-8")  # the script drops a-day
    with pytest.raises(StoryforgeError) as caught:
        api.import_script("s.fountain", update=True)
    assert str(caught.value) == ("s.yaml: you deleted every scene the script still has, so the merged story would "
                                 "have none; the story is unchanged: import into a new file with -o")
    assert Path("s.yaml").read_text("utf-8") == before


def test_final_draft_paragraph_types_and_odd_paragraphs(tmp_path: Path) -> None:
    paragraphs = [("Scene Heading", "INT. HALL - NIGHT"), ("General", "A clock ticks."), ("Shot", "CLOSE ON THE CLOCK"),
                  (None, "No type at all."), ("Action", "   "), ("Cast List", "ANN, BOB"),
                  ("Character", "ANN (CONT'D)"), ("Parenthetical", "(softly)"), ("Dialogue", "Midnight."),
                  ("Transition", "DISSOLVE TO:"), ("Action", "Morning.")]
    body = "".join(f"<Paragraph{f' Type={chr(34)}{kind}{chr(34)}' if kind else ''}><Text>{text}</Text></Paragraph>"
                   for kind, text in paragraphs)
    story = story_of(tmp_path, f"<FinalDraft><Content>{body}<Paragraph Type=\"Action\"/></Content></FinalDraft>",
                     "s.fdx")
    shots = story["scenes"][0]["shots"]
    assert [(x["prompt"], x.get("transition"), x.get("dialogue")) for x in shots] == [
        ("A clock ticks.", None, None), ("CLOSE ON THE CLOCK", None, None), ("No type at all.", None, None),
        ("ANN, BOB", None, [{"character": "ann", "line": "(softly) Midnight."}]),
        ("Morning.", "crossfade", None)]


def test_a_scene_whose_kept_shots_left_it_gets_the_scripts_shots_again(tmp_path: Path) -> None:
    Path("s.fountain").write_text("INT. A - DAY\n\nAnn cooks eggs.\n\nBob waters the roses.\n", "utf-8")
    api.import_script("s.fountain")
    _edit(Path("s.yaml"), lambda scenes, story: scenes["a-day"]["shots"].pop(1))  # the writer deletes Bob's shot
    # the script splits the scene in two: Ann's shot goes to a scene of its own
    report, story = _reimport("INT. A - DAY\n\nAnn cooks eggs.\n\nINT. A - DAY\n\nBob waters the roses.\n")
    assert [[x["prompt"] for x in s["shots"]] for s in story["scenes"]] == [["Ann cooks eggs."],
                                                                           ["Bob waters the roses."]]
    assert report.kept[-1].endswith(": the shots you kept are gone from the script; it has the script's shots again")


def test_a_fifo_without_a_suffix_is_refused_not_waited_on(tmp_path: Path) -> None:
    os.mkfifo("script")
    with within(10), pytest.raises(StoryError) as caught:
        api.import_script("script")
    assert str(caught.value) == "script: the script is not a regular file (a FIFO, device or socket); name a file"


@pytest.mark.parametrize(("name", "data", "format"), [
    ("film.fountain", FDX.format(encoding="UTF-8").encode("utf-8"), "fdx"),  # Final Draft under another name
    ("film.fountain", FDX.format(encoding="UTF-16").encode("utf-16"), "fdx"),
    ("film", FDX.format(encoding="UTF-8").encode("utf-8"), "fdx"),
    ("film", b"INT. CAF\xc3\x89 - DAY\n\nZo\xc3\xab orders tea.\n", "fountain"),
    ("film.txt", b"\xef\xbb\xbf<?xml version='1.0'?>\n" + FDX.format(encoding="UTF-8").split("\n", 1)[1].encode(),
     "fdx"),
])
def test_the_format_is_what_the_file_holds(name: str, data: bytes, format: str, tmp_path: Path) -> None:
    Path(name).write_bytes(data)
    report = api.import_script(name, "film.yaml")
    story = yaml.safe_load(Path("film.yaml").read_text("utf-8"))
    assert (report.format, report.problems) == (format, [])
    assert story["scenes"][0]["shots"][0]["prompt"] == "Zoë orders tea."


def test_final_draft_is_bounded_at_2_mb_and_an_unknown_file_at_the_larger_bound(tmp_path: Path) -> None:
    for name, limit in (("big.fdx", "2 MB"), ("big", "2 MB"), ("big.fountain", "1 MB")):
        with Path(name).open("wb") as handle:
            handle.truncate(3_000_000)
        with pytest.raises(StoryError) as caught:
            api.import_script(name)
        assert str(caught.value) == (f"{name}: the script is larger than {limit}; a feature-length screenplay is a "
                                     "few hundred KB: split it or check the file")


def test_a_name_with_digits_is_written_as_the_script_writes_it(tmp_path: Path) -> None:
    story = story_of(tmp_path, "INT. A - DAY\n\nR2D2\nBeep.\n\n@McCLANE\nYippee.\n\nMR. STEEL\nHi.\n")
    assert {key: value["description"] for key, value in story["characters"].items()} == {
        "r2d2": "TODO: describe R2D2 (age, build, face, hair, clothes)",
        "mcclane": "TODO: describe McCLANE (age, build, face, hair, clothes)",
        "mr_steel": "TODO: describe Mr. Steel (age, build, face, hair, clothes)"}
    assert story["scenes"][0]["shots"][0]["prompt"] == "R2D2 speaks"


def test_update_before_any_import_imports_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    Path("s.fountain").write_text(SCRIPT, "utf-8")
    monkeypatch.setattr(sys, "argv", ["storyforge", "import", "s.fountain", "--update"])
    monkeypatch.setenv("COLUMNS", "400")
    with pytest.raises(SystemExit) as done:
        cli.main()
    out, err = capsys.readouterr()
    assert done.value.code == 0 and Path("s.yaml").is_file()
    assert err.startswith("note: s.yaml did not exist: imported afresh (--update merges from the next import on)\n")
    assert out.startswith("✓ wrote s.yaml from s.fountain (fountain)")
