"""Re-import with --update, scene by scene: scenes moved, renamed, deleted, replaced or split in the script keep
their ids and the writer's edits, and the command prints nothing raw from a hostile record."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from storyforge import api, cli
from storyforge.errors import StoryforgeError

pytestmark = pytest.mark.usefixtures("in_tmp")  # messages name files as given, relative to it


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


def test_a_scene_whose_kept_shots_left_it_gets_the_scripts_shots_again(tmp_path: Path) -> None:
    Path("s.fountain").write_text("INT. A - DAY\n\nAnn cooks eggs.\n\nBob waters the roses.\n", "utf-8")
    api.import_script("s.fountain")
    _edit(Path("s.yaml"), lambda scenes, story: scenes["a-day"]["shots"].pop(1))  # the writer deletes Bob's shot
    # the script splits the scene in two: Ann's shot goes to a scene of its own
    report, story = _reimport("INT. A - DAY\n\nAnn cooks eggs.\n\nINT. A - DAY\n\nBob waters the roses.\n")
    assert [[x["prompt"] for x in s["shots"]] for s in story["scenes"]] == [["Ann cooks eggs."],
                                                                           ["Bob waters the roses."]]
    assert report.kept[-1].endswith(": the shots you kept are gone from the script; it has the script's shots again")


def test_two_updates_in_one_second_keep_both_backups(imported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setattr(time, "strftime", lambda *_: "20261207-120000")
    _edit(imported, lambda scenes, story: scenes["kitchen-day"].update(description="one"))
    first = api.import_script("s.fountain", update=True).backup
    second = api.import_script("s.fountain", update=True).backup
    assert (first.name, second.name) == ("s.20261207-120000.yaml", "s.20261207-120000-2.yaml")
    assert "description: one" in first.read_text("utf-8")


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
