"""Re-import with --update: the writer's edits stand, the script's changes arrive, ids stay, nothing is lost."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from storyforge import api
from storyforge.errors import StoryError

SCRIPT = """\
Title: Keeper

EXT. LIGHTHOUSE - NIGHT

Waves crash against the black rocks.

A gull circles the lamp.

MARA
The light must never go out.

INT. LAMP ROOM - NIGHT

Mara trims the wick.

Mara winds the clockwork.

Mara looks out to sea.
"""


def shots(story: Path) -> dict[str, dict]:
    data = yaml.safe_load(story.read_text("utf-8"))
    return {f"{scene['id']}/{shot['id']}": shot for scene in data["scenes"] for shot in scene["shots"]}


def edit(story: Path, change) -> None:  # noqa: ANN001
    data = yaml.safe_load(story.read_text("utf-8"))
    change(data)
    story.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), "utf-8")


@pytest.fixture
def imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "keeper.fountain"
    script.write_text(SCRIPT, "utf-8")
    report = api.import_script(script)
    assert report.problems == [] and report.story == tmp_path / "keeper.yaml"
    return script, report.story


def test_round_trip_keeps_edits_and_follows_the_script(imported: tuple[Path, Path]) -> None:
    script, story = imported
    before = shots(story)
    assert list(before) == ["lighthouse-night/waves-crash-against", "lighthouse-night/gull-circles-lamp",
                            "lamp-room-night/mara-trims-wick", "lamp-room-night/mara-winds-clockwork",
                            "lamp-room-night/mara-looks-out"]

    def by_hand(data: dict) -> None:
        data["scenes"][0]["shots"][0]["duration"] = "6s"  # waves: a longer shot
        data["scenes"][1]["shots"][1]["prompt"] = "close-up of brass gears turning"  # clockwork: a better prompt
        data["characters"]["mara"]["description"] = "a keeper in her sixties, grey braid, oilskin coat"

    edit(story, by_hand)
    script.write_text(
        "Title: Keeper\n\n"
        "EXT. CLIFF - DAWN\n\nA storm gathers over the sea.\n\n"  # a new scene above the others
        + SCRIPT.split("\n\n", 1)[1]
        .replace("Waves crash against the black rocks.", "Huge waves crash against the black rocks.")  # edited shot
        .replace("Mara winds the clockwork.", "Mara winds the old clockwork.")  # edited by hand too
        .replace("Mara looks out to sea.", "Mara looks out to the dark sea."),  # not edited by hand
        "utf-8")
    report = api.import_script(script, update=True)
    assert report.problems == [] and report.updated
    after = shots(story)
    assert list(after) == ["cliff-dawn/storm-gathers-over", *before]  # ids stay, the new scene is first
    waves = after["lighthouse-night/waves-crash-against"]
    assert (waves["duration"], waves["prompt"]) == ("6s", "Huge waves crash against the black rocks.")
    clockwork = after["lamp-room-night/mara-winds-clockwork"]
    assert clockwork["prompt"] == "close-up of brass gears turning"
    assert after["lamp-room-night/mara-looks-out"]["prompt"] == "Mara looks out to the dark sea."
    assert after["lighthouse-night/gull-circles-lamp"] == before["lighthouse-night/gull-circles-lamp"]
    data = yaml.safe_load(story.read_text("utf-8"))
    assert data["characters"]["mara"] == {"description": "a keeper in her sixties, grey braid, oilskin coat"}
    assert report.added == ["scene cliff-dawn (script line 3)"]
    assert report.conflicts == [
        'lighthouse-night/waves-crash-against.duration: kept your edit; the script now gives "57f"',
        'lamp-room-night/mara-winds-clockwork.prompt: kept your edit; the script now gives "Mara winds the old '
        'clockwork."']
    assert report.removed == [] and report.kept == []
    assert report.placeholders == []  # mara was described by hand
    assert report.backup is not None and report.backup.read_text("utf-8").count("6s") == 1
    assert len(api.plan(story).jobs) == 6
    # the same script again changes nothing
    text = story.read_text("utf-8")
    again = api.import_script(script, update=True)
    assert story.read_text("utf-8") == text
    assert (again.added, again.removed, again.kept) == ([], [], [])


def test_what_the_script_drops_goes_only_when_untouched(imported: tuple[Path, Path]) -> None:
    script, story = imported

    def by_hand(data: dict) -> None:
        data["scenes"][1]["shots"][2]["camera"] = "wide shot"  # looks-out: edited
        data["scenes"][1]["shots"].append({"id": "mine", "prompt": "my own shot", "duration": "2s"})

    edit(story, by_hand)
    script.write_text(SCRIPT.replace("\nMara winds the clockwork.\n", "").replace("\nMara looks out to sea.\n", ""),
                      "utf-8")
    report = api.import_script(script, update=True)
    assert report.removed == ["shot lamp-room-night/mara-winds-clockwork: the script no longer has it"]
    assert report.kept == ["shot lamp-room-night/mara-looks-out: the script no longer has it, but you edited it; "
                           "kept"]
    assert list(shots(story)) == ["lighthouse-night/waves-crash-against", "lighthouse-night/gull-circles-lamp",
                                  "lamp-room-night/mara-trims-wick", "lamp-room-night/mara-looks-out",
                                  "lamp-room-night/mine"]
    assert report.problems == []


def test_a_reworded_line_is_the_same_shot_and_a_new_line_is_a_new_shot(imported: tuple[Path, Path]) -> None:
    script, story = imported
    script.write_text(SCRIPT.replace("A gull circles the lamp.", "A white gull slowly circles the lamp.\n\n"
                                     "Rain begins to fall on the gallery."), "utf-8")
    report = api.import_script(script, update=True)
    after = shots(story)
    assert after["lighthouse-night/gull-circles-lamp"]["prompt"] == "A white gull slowly circles the lamp."
    assert after["lighthouse-night/rain-begins-fall"]["prompt"] == "Rain begins to fall on the gallery."
    assert report.added == ["shot lighthouse-night/rain-begins-fall (script line 9)"]
    # the dialogue followed its paragraph: it is now spoken in the new shot
    assert "dialogue" not in after["lighthouse-night/gull-circles-lamp"]
    assert after["lighthouse-night/rain-begins-fall"]["dialogue"] == [
        {"character": "mara", "line": "The light must never go out."}]


def test_update_refuses_a_damaged_record(imported: tuple[Path, Path]) -> None:
    script, story = imported
    story.with_name("keeper.import.json").write_text("{not json", "utf-8")
    with pytest.raises(StoryError) as caught:
        api.import_script(script, update=True)
    assert str(caught.value) == ("keeper.import.json: the import record cannot be read (edited or damaged?); import "
                                 "into a new file with -o and carry your edits over by hand")


def test_the_command_reports_what_the_update_did(imported: tuple[Path, Path], capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from storyforge import cli

    script, story = imported
    edit(story, lambda data: data["scenes"][1]["shots"][1].update(prompt="gears turning"))
    script.write_text(SCRIPT.replace("Mara winds the clockwork.", "Mara winds the old clockwork.")
                      .replace("\nMara looks out to sea.\n", "") + "\nEXT. BEACH - DAY\n\nFoam.\n", "utf-8")
    monkeypatch.setattr(sys, "argv", ["storyforge", "import", "keeper.fountain", "--update"])
    monkeypatch.setenv("COLUMNS", "400")
    with pytest.raises(SystemExit) as done:
        cli.main()
    out, err = capsys.readouterr()
    assert done.value.code == 0
    assert err.splitlines() == [
        "note: new: scene beach-day (script line 18)",
        "note: removed: shot lamp-room-night/mara-looks-out: the script no longer has it",
        "warning: keeper.yaml: lamp-room-night/mara-winds-clockwork.prompt: kept your edit; the script now gives "
        '"Mara winds the old clockwork."',
        "warning: keeper.yaml: fill in the description of 1 character: mara (each says TODO; prompts use them)",
    ]
    backup = next((story.parent / ".storyforge" / "imports").iterdir())
    assert out.splitlines()[1:] == [f"  the story as it was: .storyforge/imports/{backup.name}",
                                    "  next: storyforge plan keeper.yaml"]
    assert out.startswith("✓ updated keeper.yaml from keeper.fountain (fountain) in ")


def test_reworded_lines_around_a_new_one_keep_their_ids(imported: tuple[Path, Path]) -> None:
    script, story = imported
    script.write_text(SCRIPT.replace("Mara trims the wick.", "A storm lantern swings on its hook.\n\n"
                                     "Mara trims the long wick.")
                      .replace("Mara winds the clockwork.", "Mara winds the brass clockwork."), "utf-8")
    report = api.import_script(script, update=True)
    after = shots(story)
    assert list(after)[2:] == ["lamp-room-night/storm-lantern-swings", "lamp-room-night/mara-trims-wick",
                               "lamp-room-night/mara-winds-clockwork", "lamp-room-night/mara-looks-out"]
    assert after["lamp-room-night/mara-trims-wick"]["prompt"] == "Mara trims the long wick."
    assert (report.added, report.removed) == (["shot lamp-room-night/storm-lantern-swings (script line 14)"], [])


def test_an_update_from_another_script_says_so(imported: tuple[Path, Path]) -> None:
    script, story = imported
    (script.parent / "keeper-v2.fountain").write_text(SCRIPT, "utf-8")
    report = api.import_script(script.parent / "keeper-v2.fountain", story, update=True)
    assert report.warnings == ["keeper.yaml: it was imported from keeper.fountain; merging keeper-v2.fountain into it "
                               "as a new version of that script"]
    assert (report.added, report.removed, report.conflicts) == ([], [], [])
