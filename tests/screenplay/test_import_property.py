"""Any text built from Fountain's (and Final Draft's) elements imports into a story that validates and plans, or is
refused with one message; a re-import after random edits to the script keeps the writer's edits."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storyforge import api
from storyforge.errors import StoryforgeError

EXAMPLES = int(os.environ.get("STORYFORGE_HYPOTHESIS_EXAMPLES", "120"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

WORDS = st.sampled_from([
    "he", "She", "RUNS", "the", "door", "...", ".", "-", "—", "*", "**", "_", "\\*", "é", "Иван", "李", "R2D2",
    "{{", "{%", "{#", "}}", "#", "=", "~", ">", "<", "^", "@", "!", "(", ")", "[[", "]]", "/*", "*/", "TO:", "CUT",
    "FADE", "IN:", "INT.", "EXT", "1A", "#1#", "\t", "  ", "x" * 50, "\u202e", "\u200f", "\u2028", "\u00a0", "'",
    '"', ":", "&", "%", "$", "\\", "null", "true", "- ", "?", "|", "`", "0", "1e3", "V.O.", "(V.O.)", "(CONT'D)",
    "(O.S.)", "\u0301", "ǅ", "ß", "&amp;", "ﬁ", "Ⅻ", "٣", "\U0001f600",
])


def phrase(least: int = 0, most: int = 6) -> st.SearchStrategy[str]:
    return st.lists(WORDS, min_size=least, max_size=most).map(" ".join)


LINE = st.one_of(
    phrase(),
    st.builds(lambda side, place, time: f"{side} {place} - {time}",
              st.sampled_from(["INT.", "EXT.", "int.", "INT", "EST", "I/E", "INT./EXT.", "EXT/INT", "E/I."]),
              phrase(0, 3), phrase(0, 2)),
    st.builds(lambda text, number: f".{text} #{number}#", phrase(0, 3),
              st.sampled_from(["1", "1A", "I-1-A", "", "#", "a.b", "1.2.3"])),
    phrase(1, 3).map(str.upper),
    st.builds(lambda name, mark: f"@{name}{mark}", phrase(0, 2),
              st.sampled_from(["", " (V.O.)", " ^", " (CONT'D) ^", "(O.S.)(V.O.)", "()"])),
    phrase().map(lambda text: f"({text})"),
    phrase().map(lambda text: f"~{text}"),
    phrase().map(lambda text: f">{text}<"),
    phrase().map(lambda text: f"> {text}"),
    phrase().map(lambda text: f"!{text}"),
    phrase().map(lambda text: f"# {text}"),
    phrase().map(lambda text: f"## {text}"),
    phrase().map(lambda text: f"= {text}"),
    st.sampled_from(["===", "", "", "", "  ", "FADE IN:", "FADE OUT.", "CUT TO:", "DISSOLVE TO:", "SMASH CUT TO:",
                     "Title: X", "Author: Y", "    indented value", "[[note", "]]", "/*", "*/", "THE END", "BRICK",
                     "BRICK ^", "Credit:", "\tTabbed", "Draft date: 1"]),
)
FOUNTAIN = st.builds(lambda lines, newline, bom: ("\ufeff" if bom else "") + newline.join(lines),
                     st.lists(LINE, max_size=40), st.sampled_from(["\n", "\r\n", "\r"]), st.booleans())

TYPES = st.sampled_from(["Scene Heading", "Action", "Character", "Dialogue", "Parenthetical", "Transition", "Shot",
                         "General", "Lyrics", "New Act", "End of Act", "Outline", "Outline Body", "Cast List", ""])
PARAGRAPH = st.builds(
    lambda kind, runs, number: (f'<Paragraph Type="{kind}"{number}>'
                                + "".join(f'<Text Style="{style}">{escape(text)}</Text>' for text, style in runs)
                                + "</Paragraph>"),
    TYPES, st.lists(st.tuples(phrase(0, 4), st.sampled_from(["", "Bold", "Italic+Underline"])), max_size=3),
    st.sampled_from(["", ' Number="12"', ' Number="I-1-A"', ' Number=""']))
DUAL = st.lists(PARAGRAPH, max_size=4).map(lambda inner: f"<Paragraph><DualDialogue>{''.join(inner)}</DualDialogue>"
                                                         "</Paragraph>")
FDX = st.builds(lambda paragraphs, title: ('<?xml version="1.0" encoding="UTF-8"?>\n<FinalDraft Version="5">'
                                           f"<Content>{''.join(paragraphs)}</Content><TitlePage><Content>"
                                           f"<Paragraph><Text>{escape(title)}</Text></Paragraph></Content>"
                                           "</TitlePage></FinalDraft>"),
                st.lists(st.one_of(PARAGRAPH, DUAL), max_size=30), phrase(0, 3))


def imports_or_refuses(name: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / name
        script.write_bytes(data)
        try:
            report = api.import_script(script, Path(folder) / "film.yaml")
        except StoryforgeError as error:
            message = str(error)
            assert message and "\n" not in message and "Traceback" not in message
            assert not (Path(folder) / "film.yaml").exists()
            return
        assert report.problems == [], (Path(folder) / "film.yaml").read_text("utf-8")
        api.check(Path(folder) / "film.yaml")


@SETTINGS
@given(FOUNTAIN)
def test_any_fountain_text_imports_to_a_story_that_plans_or_is_refused(text: str) -> None:
    imports_or_refuses("s.fountain", text.encode("utf-8"))


@SETTINGS
@given(FDX)
def test_any_final_draft_file_imports_to_a_story_that_plans_or_is_refused(text: str) -> None:
    imports_or_refuses("s.fdx", text.encode("utf-8"))


SCENE = st.builds(lambda place, actions: (place, actions),
                  st.sampled_from(["KITCHEN", "GARDEN", "GARAGE", "ROOF", "POOL", "ДОМ"]),
                  st.lists(st.sampled_from(["Ann cooks eggs.", "Bob waters the roses.", "Cal fixes the car.",
                                            "Dee watches the stars.", "Eve swims.", "Fay reads a long letter.",
                                            "Иван ждёт."]), min_size=1, max_size=3, unique=True))


def fountain_of(scenes: list[tuple[str, list[str]]]) -> str:
    return "\n\n".join(f"INT. {place} - DAY\n\n" + "\n\n".join(actions) for place, actions in scenes) + "\n"


@SETTINGS
@given(st.lists(SCENE, min_size=1, max_size=5), st.lists(SCENE, min_size=1, max_size=5), st.data())
def test_a_re_import_after_any_script_change_keeps_every_edit(first: list, second: list, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as folder:
        script, story_path = Path(folder) / "s.fountain", Path(folder) / "s.yaml"
        script.write_text(fountain_of(first), "utf-8")
        api.import_script(script)
        story = yaml.safe_load(story_path.read_text("utf-8"))
        # the writer sets one shot's duration and prompt to values no script gives
        scene = data.draw(st.sampled_from(story["scenes"]))
        shot = data.draw(st.sampled_from(scene["shots"]))
        shot["duration"], shot["prompt"] = "121f", "An edit by hand."
        story_path.write_text(yaml.safe_dump(story, sort_keys=False, allow_unicode=True), "utf-8")
        script.write_text(fountain_of(second), "utf-8")
        report = api.import_script(script, update=True)
        assert report.problems == []
        api.check(story_path)
        merged = yaml.safe_load(story_path.read_text("utf-8"))
        edited = [(s["id"], x["id"]) for s in merged["scenes"] for x in s["shots"]
                  if x["prompt"] == "An edit by hand." and x["duration"] == "121f"]
        assert edited == [(scene["id"], shot["id"])]  # the edit stands, once, on the shot it was made to
