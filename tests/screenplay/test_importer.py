"""`storyforge import` writes only its own files: where the story and its import record go, and --update
refusing a damaged record or a story that does not load before anything changes."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml
from conftest import within

from storyforge import api, cli
from storyforge.errors import StoryError, StoryforgeError

pytestmark = pytest.mark.usefixtures("in_tmp")  # messages name files as given, relative to it


SCRIPT = "INT. KITCHEN - DAY\n\nAnn cooks eggs in a pan.\n\nANN\nBreakfast!\n"


# -- where the story goes ---------------------------------------------------------------------------------------------

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


# -- --update with a damaged record or story --------------------------------------------------------------------------

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
