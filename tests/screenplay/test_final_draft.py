"""Final Draft (.fdx): every encoding it declares, namespaces, paragraph types, files that cannot be read (each
one message), and the format known by what the file holds, whatever its name."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest
import yaml
from screenplays import refused, story_of

from storyforge import api

pytestmark = pytest.mark.usefixtures("in_tmp")  # messages name files as given, relative to it


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
