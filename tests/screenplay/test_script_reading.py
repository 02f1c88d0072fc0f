"""Reading a script, untrusted like a story: huge, deeply nested, entity bombs, binary, control characters, files
that are not files and scripts with nothing to film end in one message at the script's line and exit 1
(bench/import_bench.py times them); the bounds hold exactly at their edges."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import run_cli, within
from screenplays import refused, story_of

from storyforge import api
from storyforge.errors import StoryError

pytestmark = pytest.mark.usefixtures("in_tmp")  # messages name files as given, relative to it


BOMB = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
        + "".join(f' <!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i else "&lol;" * 10}">\n'
                  for i in range(10))
        + ']>\n<FinalDraft><Content><Paragraph Type="Action"><Text>&lol9;</Text></Paragraph></Content></FinalDraft>\n')


CASES: list[tuple[str, bytes, str]] = [
    ("huge.fountain", b"", "huge.fountain: the script is larger than 1 MB; a feature-length screenplay is a few "
                           "hundred KB: split it or check the file"),
    ("nested.fdx", b"<FinalDraft>" + b"<a>" * 100_000, "nested.fdx:1: the XML nests more than 32 levels deep; a "
                                                          "Final Draft file nests about 6: is this a script?"),
    ("bomb.fdx", BOMB.encode(), "bomb.fdx:2: the XML declares DTD (a DTD, entity or external reference), which a "
                                "Final Draft file never needs; refused"),
    ("external.fdx", b'<?xml version="1.0"?>\n<!DOCTYPE FinalDraft SYSTEM "file:///etc/passwd">\n<FinalDraft/>\n',
     "external.fdx:2: the XML declares DTD (a DTD, entity or external reference), which a Final Draft file never "
     "needs; refused"),
    ("binary.fountain", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary.fountain:3: the file holds binary data (a NUL "
     "byte), not a screenplay; export the script as Fountain (.fountain) or Final Draft (.fdx)"),
    ("control.fountain", b"INT. A - DAY\n\nHe \x1b[2J walks.\n", "control.fountain:3: control character U+001B in "
     "the script; a screenplay is plain text: remove it"),
    ("latin1.fountain", "INT. CAFÉ - DAY\n".encode("latin-1"), "latin1.fountain:1: the script is not UTF-8 text "
     "(byte 0xc9); save it as UTF-8"),
    ("long.fountain", b"INT. A - DAY\n\n" + b"word " * 5000, "long.fountain:3: the line is longer than 20,000 "
     "characters; a screenplay's paragraphs are far shorter: is this a script?"),
    ("boneyard.fountain", b"INT. A - DAY\n\nx.\n\n/* never closed\n\ny.\n", "boneyard.fountain:5: the boneyard /* "
     "that opens here is never closed; add */ where it ends"),
    ("broken.fdx", b'<FinalDraft>\n<Content>\n<Paragraph Type="Action"><Text>x</Paragraph>\n</FinalDraft>\n',
     "broken.fdx:3: not well-formed XML (mismatched tag); re-export the script from Final Draft"),
    ("other.fdx", b"<html>\n<body/></html>\n", "other.fdx:1: the XML's root is <html>, not <FinalDraft>; is this a "
     "Final Draft file?"),
    ("many.fountain", b"A\nb\n\n" * 30_000, "many.fountain:30001: the script has more than 20,000 elements; a "
     "feature has a few thousand: split it"),
    ("controlfdx.fdx", b'<FinalDraft><Content><Paragraph Type="Action"><Text>a&#x1b;b</Text></Paragraph>'
                       b'</Content></FinalDraft>', "controlfdx.fdx:1: not well-formed XML (reference to invalid "
                                                  "character number); re-export the script from Final Draft"),
]


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    if name == "huge.fountain":
        with path.open("wb") as handle:  # sparse: 3 MB of nothing on disk
            handle.truncate(3_000_000)
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize(("name", "data", "message"), CASES, ids=[case[0] for case in CASES])
def test_a_hostile_script_is_one_message_at_its_line(name: str, data: bytes, message: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, name, data)
    with within(), pytest.raises(StoryError) as caught:
        api.import_script(path.name)
    assert str(caught.value) == message
    assert not (tmp_path / (path.stem + ".yaml")).exists()


def test_a_fifo_or_a_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    os.mkfifo("pipe.fountain")
    with within(), pytest.raises(StoryError) as caught:
        api.import_script("pipe.fountain")
    assert str(caught.value) == ("pipe.fountain: the script is not a regular file (a FIFO, device or socket); name "
                                 "a file")
    os.mkdir("dir.fountain")
    with pytest.raises(StoryError) as caught:
        api.import_script("dir.fountain")
    assert str(caught.value) == "dir.fountain: this is a folder; name a .fountain or .fdx script"


@pytest.mark.parametrize("name", ["bomb.fdx", "control.fountain", "huge.fountain"])
def test_the_command_exits_1_with_the_message(name: str, tmp_path: Path) -> None:
    data, message = next((data, message) for case, data, message in CASES if case == name)
    _write(tmp_path, name, data)
    with within(60):
        result = run_cli("import", name, cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", f"error: {message}\n")


# -- bounds at their edges --------------------------------------------------------------------------------------------

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


def test_final_draft_is_bounded_at_2_mb_and_an_unknown_file_at_the_larger_bound(tmp_path: Path) -> None:
    for name, limit in (("big.fdx", "2 MB"), ("big", "2 MB"), ("big.fountain", "1 MB")):
        with Path(name).open("wb") as handle:
            handle.truncate(3_000_000)
        with pytest.raises(StoryError) as caught:
            api.import_script(name)
        assert str(caught.value) == (f"{name}: the script is larger than {limit}; a feature-length screenplay is a "
                                     "few hundred KB: split it or check the file")


# -- what is not a screenplay -----------------------------------------------------------------------------------------

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


def test_a_fifo_without_a_suffix_is_refused_not_waited_on(tmp_path: Path) -> None:
    os.mkfifo("script")
    with within(10), pytest.raises(StoryError) as caught:
        api.import_script("script")
    assert str(caught.value) == "script: the script is not a regular file (a FIFO, device or socket); name a file"
