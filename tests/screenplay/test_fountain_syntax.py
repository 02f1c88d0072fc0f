"""Fountain, element by element: the parser against the syntax page's rules, and each element's place in the story."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from conftest import within
from screenplays import story_of

from storyforge import api
from storyforge.screenplay import fountain
from storyforge.screenplay.to_story import Geometry, duration_frames, fingerprint, heading_parts, transition_of

DATA = Path(__file__).parent / "data"


def elements(text: str) -> list[tuple[int, str, str]]:
    return [(e.line, e.kind, e.text) for e in fountain.parse(text, "t.fountain").elements]


def test_every_element_of_the_syntax_script_at_its_line() -> None:
    script = fountain.parse((DATA / "syntax.fountain").read_text("utf-8"), "syntax.fountain")
    assert script.title_page == {"title": "The Lighthouse", "credit": "written by", "author": "Ada Example",
                                 "draft date": "2026-12-07"}
    got = [(e.line, e.kind, e.text, e.number, e.extension, e.dual, e.forced) for e in script.elements]
    assert got == [
        (6, "section", "Act One", None, "", False, False),
        (8, "synopsis", "The keeper keeps the light through a storm.", None, "", False, False),
        (10, "transition", "FADE IN:", None, "", False, False),
        (12, "heading", "EXT. LIGHTHOUSE - NIGHT", "1", "", False, False),
        (14, "action", "Waves crash against the black rocks below a white lighthouse.", None, "", False, False),
        (16, "cue", "MARA", None, "V.O.", False, False),
        (17, "dialogue", "The light must never go out.", None, "", False, False),
        (19, "heading", "INT. LIGHTHOUSE - LAMP ROOM - CONTINUOUS", "1A", "", False, False),
        (21, "action", "Mara trims the wick of the great brass lamp.", None, "", False, False),  # the note is gone
        (23, "cue", "MARA", None, "", False, False),
        (24, "parenthetical", "(to herself)", None, "", False, False),
        (25, "dialogue", "One more night.", None, "", False, False),
        # lines 27-31: the boneyard, scene and all
        (33, "transition", "DISSOLVE TO:", None, "", False, False),
        (35, "heading", "INT./EXT. MARA'S TRUCK - DAWN", None, "", False, False),
        (37, "action", "Mara drives along the coast road.", None, "", False, False),
        (39, "cue", "McCLANE", None, "", False, True),
        (40, "dialogue", "Yippee ki-yay.", None, "", False, False),
        (42, "cue", "MARA", None, "", False, False),
        (43, "dialogue", "Who are you?", None, "", False, False),
        (45, "cue", "TOM", None, "O.S.", True, False),
        (46, "dialogue", "Nobody.", None, "", False, False),
        (48, "heading", "I/E LIGHTHOUSE - DAY", None, "", False, False),
        (50, "action", "THE DOOR SLAMS.", None, "", False, True),
        (52, "heading", "EST. HARBOUR TOWN - DAY", None, "", False, False),
        (54, "action", "The town wakes under a grey sky.", None, "", False, False),
        (56, "lyric", "Row, row, row your boat", None, "", False, True),
        (58, "centered", "THE END OF THE BEGINNING", None, "", False, False),
        (60, "page_break", "", None, "", False, False),
        (62, "heading", "FLASHBACK", None, "", False, True),
        (64, "action", "A young Mara climbs the stairs.", None, "", False, False),
        (66, "cue", "MARA", None, "", False, False),  # (CONT'D) is not an extension worth keeping
        (67, "dialogue", "I was never afraid.", None, "", False, False),
        (69, "transition", "SMASH TO BLACK.", None, "", False, True),
        (71, "heading", "EXT. LIGHTHOUSE - NIGHT", None, "", False, False),
        (73, "action", "The lamp turns in the dark.", None, "", False, False),
        (75, "transition", "FADE OUT.", None, "", False, False),
    ]


@pytest.mark.parametrize(("text", "expected"), [
    # notes: inline, across lines (what surrounds them joins on the opening line), not a note across an empty line
    ("He runs [[fast?]] home.\n", [(1, "action", "He runs  home.")]),
    ("Before [[a\nlong\nnote]] after.\n\nNext.\n", [(1, "action", "Before  after."), (5, "action", "Next.")]),
    ("Not [[a note\n\nbecause]] of the gap.\n",
     [(1, "action", "Not [[a note"), (3, "action", "because]] of the gap.")]),
    # the boneyard takes whole scenes with it and keeps the line numbers after it
    ("INT. A - DAY\n\nx.\n\n/*\nINT. B - DAY\n\ny.\n*/\n\nEXT. C - NIGHT\n\nz.\n",
     [(1, "heading", "INT. A - DAY"), (3, "action", "x."), (11, "heading", "EXT. C - NIGHT"), (13, "action", "z.")]),
    ("CUT TO:\n/*\nINT. GONE - DAY\n*/\nEXT. PALACE - DAY\n\nBeer flies.\n",
     [(1, "transition", "CUT TO:"), (5, "heading", "EXT. PALACE - DAY"), (7, "action", "Beer flies.")]),
    # headings: any case, with a dot or a space; not words that merely begin like one; forced with one dot only
    ("int. kitchen - day\n\nEXT PARK - NIGHT\n\nINTERIOR design matters.\n\n...and then.\n",
     [(1, "heading", "int. kitchen - day"), (3, "heading", "EXT PARK - NIGHT"),
      (5, "action", "INTERIOR design matters."), (7, "action", "...and then.")]),
    # a transition is upper case with blank lines around it; otherwise it is action
    ("x.\n\nCut to:\n\ny.\n", [(1, "action", "x."), (3, "action", "Cut to:"), (5, "action", "y.")]),
    # a cue needs the line after it; two spaces keep a speech going across an empty line
    ("THE DOOR SLAMS.\n\nDEALER\nTen.\n  \nTwenty.\n",
     [(1, "action", "THE DOOR SLAMS."), (3, "cue", "DEALER"), (4, "dialogue", "Ten."), (6, "dialogue", "Twenty.")]),
    # emphasis marks go, escaped ones stay
    ("*Italic* **bold** _under_ \\*star\\*.\n", [(1, "action", "Italic bold under *star*.")]),
    # indentation does not matter; CR LF and a byte-order mark are fine
    ("\ufeffINT. A - DAY\r\n\r\n\t\tJACK\r\n\tHello.\r\n", [(1, "heading", "INT. A - DAY"), (3, "cue", "JACK"),
                                                         (4, "dialogue", "Hello.")]),
])
def test_edge_cases_of_the_syntax(text: str, expected: list[tuple[int, str, str]]) -> None:
    assert elements(text) == expected


def test_a_title_page_with_indented_values_and_no_title_page() -> None:
    script = fountain.parse("Title:\n\t_**BRICK & STEEL**_\n\tFULL RETIRED\nAuthor: Stu\n\nEXT. A - DAY\n\nx.\n", "t")
    assert script.title_page == {"title": "BRICK & STEEL FULL RETIRED", "author": "Stu"}
    assert [e.line for e in script.elements] == [6, 8]
    assert fountain.parse("EXT. A - DAY\n\nNote: this is action.\n", "t").title_page == {}


@pytest.mark.parametrize(("heading", "parts"), [
    ("EXT. BRICK'S POOL - DAY", ("exterior", "BRICK'S POOL", "DAY")),
    ("INT. LIGHTHOUSE - LAMP ROOM - CONTINUOUS", ("interior", "LIGHTHOUSE - LAMP ROOM", "CONTINUOUS")),
    ("INT./EXT. MARA'S TRUCK - DAWN", ("interior and exterior", "MARA'S TRUCK", "DAWN")),
    ("I/E LIGHTHOUSE - DAY", ("interior and exterior", "LIGHTHOUSE", "DAY")),
    ("EST. HARBOUR TOWN - DAY", ("establishing shot, exterior", "HARBOUR TOWN", "DAY")),
    ("INT. HOUSE - KITCHEN", ("interior", "HOUSE - KITCHEN", None)),
    ("FLASHBACK", (None, "FLASHBACK", None)),
])
def test_a_heading_is_a_side_a_place_and_a_time(heading: str, parts: tuple[str | None, str, str | None]) -> None:
    assert heading_parts(heading) == parts


@pytest.mark.parametrize(("written", "kind"), [
    ("CUT TO:", "cut"), ("SMASH CUT TO:", "cut"), ("TIME CUT TO:", "cut"), ("INTERCUT WITH:", "cut"),
    ("SMASH TO BLACK.", "cut"), ("DISSOLVE TO:", "crossfade"), ("Match dissolve to:", "crossfade"),
    ("FADE IN:", "fade"), ("FADE OUT.", "fade"), ("FADE TO BLACK.", "fade"), ("BURN TO PINK.", None),
    ("BACK TO:", None),
])
def test_transitions_map_by_their_key_word(written: str, kind: str | None) -> None:
    assert transition_of(written) == kind


def test_the_duration_rule_gives_lengths_the_model_makes_without_waste() -> None:
    geometry = Geometry.default()
    assert (geometry.fps, geometry.base_frames, geometry.overlap_frames, geometry.longest) == (24, 97, 17, 257)
    valid = [n for n in range(1, 300) if geometry.without_waste(n)]
    assert valid[:3] == [1, 5, 9] and valid[-3:] == [97, 177, 257]
    assert duration_frames("A door.", [], geometry) == 49  # 2 words: the 2 s minimum, 48 frames -> 4k+1
    assert duration_frames(" ".join(["word"] * 12), [], geometry) == 97  # 4 s
    assert duration_frames(" ".join(["word"] * 12), ["(quietly) " + " ".join(["hi"] * 10)], geometry) == 177
    assert duration_frames(" ".join(["word"] * 300), [], geometry) == 257  # capped at three windows


# -- the story, element by element ---------------------------------------------------------------------------------


@pytest.fixture
def story(tmp_path: Path) -> dict:
    shutil.copy(DATA / "syntax.fountain", tmp_path / "syntax.fountain")
    report = api.import_script(tmp_path / "syntax.fountain")
    assert report.problems == []
    return yaml.safe_load((tmp_path / "syntax.yaml").read_text("utf-8"))


def test_headings_become_scenes_with_locations_and_descriptions(story: dict) -> None:
    assert story["title"] == "The Lighthouse"
    assert [(s["id"], s.get("location"), s.get("description")) for s in story["scenes"]] == [
        ("1-lighthouse-night", "lighthouse", "Exterior, night. Act One. The keeper keeps the light through a storm."),
        ("1a-lighthouse-lamp-room-continuous", "lighthouse_lamp_room", "Interior, continuous."),
        ("maras-truck-dawn", "maras_truck", "Interior and exterior, dawn."),
        ("lighthouse-day", "lighthouse", "Interior and exterior, day."),
        ("harbour-town-day", "harbour_town", "Establishing shot, exterior, day."),
        ("flashback", "flashback", None),
        ("lighthouse-night", "lighthouse", "Exterior, night."),
    ]
    # one location per place, shared by every scene there
    assert story["locations"] == {"lighthouse": "lighthouse", "lighthouse_lamp_room": "lighthouse, lamp room",
                                  "maras_truck": "mara's truck", "harbour_town": "harbour town",
                                  "flashback": "flashback"}


def test_action_becomes_shots_with_dialogue_cast_and_transitions(story: dict) -> None:
    shots = [(scene["id"], shot) for scene in story["scenes"] for shot in scene["shots"]]
    assert [(s, shot["id"], shot["prompt"], shot["duration"], shot.get("transition"), shot.get("cast"),
             shot.get("dialogue")) for s, shot in shots] == [
        ("1-lighthouse-night", "waves-crash-against", "Waves crash against the black rocks below a white lighthouse.",
         "177f", "fade", None,  # FADE IN:; a voice over is not in the picture
         [{"character": "mara", "line": "(V.O.) The light must never go out."}]),
        ("1a-lighthouse-lamp-room-continuous", "mara-trims-wick", "Mara trims the wick of the great brass lamp.",
         "97f", None, ["mara"], [{"character": "mara", "line": "(to herself) One more night."}]),
        ("maras-truck-dawn", "mara-drives-along", "Mara drives along the coast road.", "97f", "crossfade",
         ["mcclane", "mara"], [{"character": "mcclane", "line": "Yippee ki-yay."},
                               {"character": "mara", "line": "Who are you?"},
                               {"character": "tom", "line": "(O.S.) Nobody."}]),
        ("lighthouse-day", "door-slams", "THE DOOR SLAMS.", "49f", None, None, None),
        ("harbour-town-day", "town-wakes-under", "The town wakes under a grey sky.", "57f", None, None, None),
        ("flashback", "young-mara-climbs", "A young Mara climbs the stairs.", "85f", None, ["mara"],
         [{"character": "mara", "line": "I was never afraid."}]),
        ("lighthouse-night", "lamp-turns-dark", "The lamp turns in the dark.", "49f", "cut", None, None),  # > SMASH
    ]
    prompts = " ".join(shot["prompt"] for _, shot in shots)
    for never in ("check the lamp model", "CELLAR", "Nothing happens", "Row, row", "THE END OF THE BEGINNING"):
        assert never not in prompts  # notes, boneyard, lyrics, centred text


def test_speakers_become_characters_with_placeholders(story: dict, tmp_path: Path) -> None:
    assert story["characters"] == {
        "mara": {"description": "TODO: describe Mara (age, build, face, hair, clothes)"},
        "mcclane": {"description": "TODO: describe McCLANE (age, build, face, hair, clothes)"},
        "tom": {"description": "TODO: describe Tom (age, build, face, hair, clothes)"},
    }


def test_the_report_lists_placeholders_warnings_and_what_was_left_out(tmp_path: Path) -> None:
    shutil.copy(DATA / "syntax.fountain", tmp_path / "syntax.fountain")
    report = api.import_script(tmp_path / "syntax.fountain", tmp_path / "film.yaml")
    assert report.placeholders == ["mara", "mcclane", "tom"]
    assert report.left_out == {"lyrics": 1, "centred text": 1, "page breaks": 1}
    assert [w.split(": ", 1)[1] for w in report.warnings] == [
        "'FADE OUT.' ends the script; a story's transitions begin shots, so the film simply ends"]
    assert (report.scenes, report.shots, report.characters, report.locations) == (7, 7, 3, 5)
    assert report.record == tmp_path / "film.import.json" and report.record.is_file()


def test_template_syntax_in_a_script_stays_text(tmp_path: Path) -> None:
    (tmp_path / "t.fountain").write_text("INT. A - DAY\n\nHe writes {{ characters }} and {% x %} on a wall.\n")
    api.import_script(tmp_path / "t.fountain")
    plan = api.plan(tmp_path / "t.yaml")
    assert plan.jobs[0].prompt == "He writes { { characters }} and { % x %} on a wall."


def test_a_script_made_of_dialogue_and_headings_only_still_plans(tmp_path: Path) -> None:
    (tmp_path / "t.fountain").write_text("BOB\nHello.\n\nINT. EMPTY ROOM - NIGHT\n\nEXT. YARD - DAY\n\nANN\nHi.\n")
    report = api.import_script(tmp_path / "t.fountain")
    story = yaml.safe_load((tmp_path / "t.yaml").read_text("utf-8"))
    assert [(s["id"], [(x["id"], x["prompt"], x.get("camera")) for x in s["shots"]]) for s in story["scenes"]] == [
        ("opening", [("bob-speaks", "Bob speaks", None)]),
        ("empty-room-night", [("empty-room-night", "Empty Room, night", "establishing shot")]),
        ("yard-day", [("ann-speaks", "Ann speaks", None)]),
    ]
    assert report.problems == [] and len(api.plan(tmp_path / "t.yaml").jobs) == 3


def test_names_in_other_scripts_get_keys_templates_can_use(tmp_path: Path) -> None:
    (tmp_path / "t.fountain").write_text("EXT. 東京 - NIGHT\n\nRain.\n\n@黒澤\nこんにちは。\n\n"
                                         "@2ND COP (V.O., FILTERED)\nStop!\n\n@黒澤\nはい。\n\n"
                                         "INT. 東京 - DAY\n\nSun.\n", "utf-8")
    report = api.import_script(tmp_path / "t.fountain")
    story = yaml.safe_load((tmp_path / "t.yaml").read_text("utf-8"))
    assert story["characters"] == {"character_44ebeb": {"description": "TODO: describe 黒澤 (age, build, face, "
                                                                       "hair, clothes)"},
                                   "n_2nd_cop": {"description": "TODO: describe 2ND Cop (age, build, face, hair, "
                                                                "clothes)"}}
    assert story["locations"] == {"place_130016": "東京"}
    assert [(s["id"], s["location"]) for s in story["scenes"]] == [("night-9b8e60", "place_130016"),
                                                                    ("day-0bce8a", "place_130016")]
    shot = story["scenes"][0]["shots"][0]
    assert shot["cast"] == ["character_44ebeb"]  # the cop is a voice over, off screen
    assert [d["character"] for d in shot["dialogue"]] == ["character_44ebeb", "n_2nd_cop", "character_44ebeb"]
    assert shot["dialogue"][1]["line"] == "(V.O., FILTERED) Stop!"
    assert report.problems == []


def test_a_dissolve_before_the_first_shot_fades_in(tmp_path: Path) -> None:
    (tmp_path / "t.fountain").write_text("DISSOLVE TO:\n\nINT. A - DAY\n\nx y.\n", "utf-8")
    api.import_script(tmp_path / "t.fountain")
    assert yaml.safe_load((tmp_path / "t.yaml").read_text("utf-8"))["scenes"][0]["shots"][0]["transition"] == "fade"


def test_final_draft_without_defusedxml_says_how_to_install_it(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from storyforge.errors import MissingExtra

    monkeypatch.setitem(sys.modules, "defusedxml", None)
    monkeypatch.setitem(sys.modules, "defusedxml.ElementTree", None)
    shutil.copy(DATA / "lighthouse.fdx", tmp_path / "l.fdx")
    with pytest.raises(MissingExtra) as caught:
        api.import_script(tmp_path / "l.fdx")
    assert str(caught.value) == ("Importing Final Draft (.fdx) scripts needs the Python package 'defusedxml', which "
                                 "is not installed. Install it with: pip install 'storyforge[screenplay]'")



# -- syntax corners ---------------------------------------------------------------------------------------------------

def kinds(text: str) -> list[tuple[str, str]]:
    return [(e.kind, e.text) for e in fountain.parse(text, "t.fountain").elements]


@pytest.mark.usefixtures("in_tmp")  # messages name files as given, relative to it
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


@pytest.mark.usefixtures("in_tmp")  # messages name files as given, relative to it
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


@pytest.mark.usefixtures("in_tmp")  # messages name files as given, relative to it
@pytest.mark.parametrize("beat", ["...", "…", "- - -", "—", "-", "!...", "[[ ]]...", "?!"])
def test_a_paragraph_without_words_is_no_shot(beat: str, tmp_path: Path) -> None:
    """A shot's prompt must say something: '...' renders to nothing and would not plan."""
    path = tmp_path / "s.fountain"
    path.write_text(f"INT. A - DAY\n\nHe waits.\n\n{beat}\n\nShe comes.\n", "utf-8")
    report = api.import_script(path, tmp_path / "film.yaml")
    story = yaml.safe_load((tmp_path / "film.yaml").read_text("utf-8"))
    assert [shot["prompt"] for shot in story["scenes"][0]["shots"]] == ["He waits.", "She comes."]
    assert (report.left_out, report.problems) == ({"paragraphs without words": 1}, [])


@pytest.mark.usefixtures("in_tmp")  # messages name files as given, relative to it
def test_a_heading_alone_with_no_place_is_an_establishing_shot_that_plans(tmp_path: Path) -> None:
    story = story_of(tmp_path, "INT. - NIGHT\n\n.-\n\nEXT. GARDEN - DAY\n\nRain.\n")
    assert [(s["id"], [(x["prompt"], x.get("camera")) for x in s["shots"]]) for s in story["scenes"]] == [
        ("night", [("night", "establishing shot")]),
        (f"scene-{fingerprint('-')}", [("the place", "establishing shot")]),
        ("garden-day", [("Rain.", None)]),
    ]


@pytest.mark.usefixtures("in_tmp")  # messages name files as given, relative to it
@pytest.mark.parametrize(("newline", "bom"), [("\n", ""), ("\r\n", ""), ("\r", ""), ("\r\n", "\ufeff")])
def test_line_endings_and_a_bom_read_alike(newline: str, bom: str, tmp_path: Path) -> None:
    text = bom + newline.join(["Title:", "    Two", "    Lines", "Author: Ann", "", "INT. A - DAY", "",
                               "He\tcooks  ", "and eats.", "", "BOB", "(beat)", "Hi.", "  ", "Ho.", ""])
    story = story_of(tmp_path, text)
    assert story["title"] == "Two Lines"
    shot = story["scenes"][0]["shots"][0]
    assert (shot["prompt"], shot["dialogue"]) == ("He cooks and eats.", [{"character": "bob",
                                                                          "line": "(beat) Hi. Ho."}])


@pytest.mark.usefixtures("in_tmp")  # messages name files as given, relative to it
@pytest.mark.parametrize(("heading", "scene_id"), [
    ("INT. A" + " " * 19_000 + "B - DAY", "a-b-day"),  # '\s+' before a dash tried each run of spaces again
    ("INT. A" + " \t" * 5_000 + "B -" + " " * 9_000 + "DAY", "a-b-day"),
    ("INT. A" + " " * 19_000 + "#1#", "1-a"),  # and '\s*' before a scene number
])
def test_runs_of_spaces_in_a_heading_are_read_in_one_pass(heading: str, scene_id: str, tmp_path: Path) -> None:
    with within(10):
        story = story_of(tmp_path, f"{heading}\n\nHe waits.\n")
    assert story["scenes"][0]["id"] == scene_id


def test_pathological_but_valid_text_is_read_in_linear_time(tmp_path: Path) -> None:
    """Unclosed note brackets, lone boneyard openers inside notes, and emphasis runs: each a single pass."""
    lines = ["INT. A - DAY", ""] + ["[[" * 4000, ""] * 40 + ["*_" * 4000, ""] * 40
    (tmp_path / "p.fountain").write_text("\n".join(lines), "utf-8")
    with within():
        report = api.import_script(tmp_path / "p.fountain")
    # brackets alone are a paragraph without words, emphasis marks alone no paragraph: neither is a shot, so the
    # scene is its heading's establishing shot
    assert (report.shots, report.left_out, report.problems) == (1, {"paragraphs without words": 40}, [])
