"""Scripts are untrusted like stories: huge, deeply nested, entity bombs, binary, control characters and broken
files end in one message at the script's line and exit 1 (bench/import_hostile_bench.py times them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import within

from storyforge import api
from storyforge.errors import StoryError

ROOT = Path(__file__).resolve().parents[2]
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


def test_pathological_but_valid_text_is_read_in_linear_time(tmp_path: Path) -> None:
    """Unclosed note brackets, lone boneyard openers inside notes, and emphasis runs: each a single pass."""
    lines = ["INT. A - DAY", ""] + ["[[" * 4000, ""] * 40 + ["*_" * 4000, ""] * 40
    (tmp_path / "p.fountain").write_text("\n".join(lines), "utf-8")
    with within():
        report = api.import_script(tmp_path / "p.fountain")
    # brackets alone are a paragraph without words, emphasis marks alone no paragraph: neither is a shot, so the
    # scene is its heading's establishing shot
    assert (report.shots, report.left_out, report.problems) == (1, {"paragraphs without words": 40}, [])


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
    result = subprocess.run([sys.executable, "-m", "storyforge", "import", name], capture_output=True, text=True,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", f"error: {message}\n")


def test_a_title_or_file_name_cannot_write_keys_through_the_header(tmp_path: Path) -> None:
    name = "a\nrender: {fps: 1}\u2028b.fountain"
    (tmp_path / name).write_text("Title: T\u2028scenes: []\nAuthor: x\u2029y\n\nINT. A - DAY\n\nx.\n", "utf-8")
    report = api.import_script(tmp_path / name, tmp_path / "film.yaml")
    text = (tmp_path / "film.yaml").read_text("utf-8")
    header = text.split("storyforge: 1\n")[0]
    assert all(line.startswith("# ") for line in header.splitlines()) and len(header.splitlines()) == 4
    assert report.problems == [] and "render" not in __import__("yaml").safe_load(text)
