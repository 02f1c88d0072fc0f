"""The Fountain specification's sample scripts and Final Draft files import into stories that validate and plan,
and the story says what the script says, line by line; the command's messages, word for word."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from storyforge import api, cli
from storyforge.errors import StoryError
from storyforge.screenplay import fdx, fountain
from storyforge.screenplay.importer import read
from storyforge.screenplay.to_story import safe_text, stable_key

DATA = Path(__file__).parent / "data"
SAMPLES = ["Brick-and-Steel.fountain", "The-Last-Birthday-Card.fountain", "Big-Fish.fountain", "Brick-and-Steel.fdx",
           "lighthouse.fdx", "syntax.fountain"]
ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """`storyforge ARGS` in this process: exit code, stdout, stderr."""
    monkeypatch.setattr(sys, "argv", ["storyforge", *args])
    monkeypatch.setenv("COLUMNS", "400")
    with pytest.raises(SystemExit) as done:
        cli.main()
    captured = capsys.readouterr()
    return int(done.value.code or 0), captured.out, captured.err


@pytest.mark.parametrize("name", SAMPLES)
def test_each_sample_validates_plans_and_follows_the_script(name: str, tmp_path: Path) -> None:
    shutil.copy(DATA / name, tmp_path / name)
    report = api.import_script(tmp_path / name, tmp_path / "film.yaml")
    assert report.problems == []
    plan = api.plan(tmp_path / "film.yaml")
    assert plan.warnings == () and len(plan.jobs) == report.shots
    story = yaml.safe_load((tmp_path / "film.yaml").read_text("utf-8"))
    origins = json.loads((tmp_path / "film.import.json").read_text("utf-8"))["origins"]
    script = read(tmp_path / name)
    # every scene heading is a scene, in order, at its line
    headings = [(e.line, e.text) for e in script.elements if e.kind == "heading"]
    scenes = [(origins["scenes"][s["id"]]["line"], origins["scenes"][s["id"]]["heading"]) for s in story["scenes"]
              if origins["scenes"][s["id"]]["heading"]]
    assert scenes == headings
    # every action paragraph is a shot whose prompt is its text, in order
    actions = [(e.line, safe_text(e.text)) for e in script.elements if e.kind == "action"]
    shots = [(origins["shots"][f"{s['id']}/{x['id']}"]["line"], x["prompt"]) for s in story["scenes"]
             for x in s["shots"] if x.get("camera") is None and not x["prompt"].endswith(" speaks")]
    assert shots == actions
    # every speech is a dialogue line of its speaker, in order; every speaker a character
    cues = [stable_key(e.text, "character") for e in script.elements if e.kind == "cue"]
    spoken = [d["character"] for s in story["scenes"] for x in s["shots"] for d in x.get("dialogue", [])]
    assert spoken == cues
    assert set(story.get("characters", {})) == set(cues)
    # every transition the story has came from the script, on the first shot after it
    kinds = {"cut", "crossfade", "fade"}
    assert {x.get("transition", "cut") for s in story["scenes"] for x in s["shots"]} <= kinds
    # every place is a location, shared
    assert {s.get("location") for s in story["scenes"]} - {None} == set(story.get("locations", {}))


def test_the_fdx_and_the_fountain_of_brick_and_steel_agree(tmp_path: Path) -> None:
    fountain_script = fountain.parse((DATA / "Brick-and-Steel.fountain").read_text("utf-8"), "b.fountain")
    fdx_script = fdx.parse((DATA / "Brick-and-Steel.fdx").read_bytes(), "b.fdx")

    def spoken(script):  # noqa: ANN001, ANN202
        return [(e.kind, " ".join(e.text.split())) for e in script.elements if e.kind in ("cue", "dialogue")]

    assert spoken(fdx_script) == spoken(fountain_script)
    assert [e.text for e in fdx_script.elements if e.kind == "heading"] == [
        e.text for e in fountain_script.elements if e.kind == "heading"]


def test_my_fdx_line_by_line(tmp_path: Path) -> None:
    script = fdx.parse((DATA / "lighthouse.fdx").read_bytes(), "lighthouse.fdx")
    assert script.title_page == {"title": "THE LIGHTHOUSE", "author": "Ada Example"}
    assert [(e.line, e.kind, e.text, e.number, e.extension, e.dual) for e in script.elements] == [
        (4, "transition", "FADE IN:", None, "", False),
        (7, "heading", "EXT. LIGHTHOUSE - NIGHT", "1", "", False),
        (10, "action", "Waves crash against the black rocks below a white lighthouse.", None, "", False),
        (13, "cue", "MARA", None, "V.O.", False),
        (16, "dialogue", "The light must never go out.", None, "", False),
        (19, "transition", "DISSOLVE TO:", None, "", False),
        (22, "heading", "INT. LIGHTHOUSE - LAMP ROOM - CONTINUOUS", "2", "", False),
        (25, "action", "Mara trims the wick of the great brass lamp.", None, "", False),
        (28, "cue", "MARA", None, "", False),
        (31, "parenthetical", "(to herself)", None, "", False),
        (34, "dialogue", "One more night.", None, "", False),
        (37, "action", "A knock at the door below.", None, "", False),
        (42, "cue", "MARA", None, "", False),
        (45, "dialogue", "Who is there?", None, "", False),
        (48, "cue", "TOM", None, "O.S.", True),
        (51, "dialogue", "Only me.", None, "", False),
        (56, "transition", "CUT TO:", None, "", False),
        (59, "heading", "EXT. LIGHTHOUSE - DAY", "3", "", False),
        (62, "action", "Tom climbs the stairs with a basket of bread.", None, "", False),  # a Shot paragraph
        (65, "cue", "TOM", None, "", False),
        (68, "lyric", "Row, row, row your boat", None, "", False),
        (71, "transition", "FADE OUT.", None, "", False),
    ]


def test_the_command_says_what_it_wrote_and_what_to_fill_in(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copy(DATA / "Brick-and-Steel.fountain", "bs.fountain")
    code, out, err = run("import", "bs.fountain", capsys=capsys, monkeypatch=monkeypatch)
    assert code == 0
    seconds = out.split(" in ", 1)[1].split("s —")[0]
    assert out == (f"✓ wrote bs.yaml from bs.fountain (fountain) in {seconds}s — 8 scenes, 21 shots, 7 characters, "
                   "8 locations\n  next: storyforge plan bs.yaml\n")
    assert err.splitlines() == [
        "warning: bs.fountain:158: the transition 'BURN TO PINK.' has no storyforge equivalent; the next shot "
        "begins with a cut (use cut, crossfade or fade in the story)",
        "note: not imported (never prompts): 5 centred text",
        "warning: bs.yaml: fill in the description of 7 characters: brick, cognito, dan, handsome_man, jack, minion, "
        "steel (each says TODO; prompts use them)",
    ]
    text = Path("bs.yaml").read_text("utf-8")
    assert text.splitlines()[1:3] == [
        "# BRICK & STEEL FULL RETIRED Written by Stu Maschwitz",
        "# Imported from bs.fountain by `storyforge import`; re-import with --update to keep your edits (the record "
        "is in bs.import.json).",
    ]
    assert yaml.safe_load(text)["title"] == "BRICK & STEEL FULL RETIRED"
    code, out, err = run("import", "bs.fountain", capsys=capsys, monkeypatch=monkeypatch)
    assert (code, out, err) == (1, "", "error: bs.yaml already exists; re-import with --update to keep your edits, "
                                       "or write another file with -o\n")
    Path("hand.yaml").write_text(text)
    code, out, err = run("import", "bs.fountain", "-o", "hand.yaml", "--update", capsys=capsys,
                         monkeypatch=monkeypatch)
    assert (code, out, err) == (1, "", "error: hand.yaml has no import record (hand.import.json); --update merges "
                                       "only into a story storyforge imported: import into a new file with -o\n")
    code, out, err = run("import", "bs.fountain", "-o", "bs.fountain", capsys=capsys, monkeypatch=monkeypatch)
    assert (code, err) == (1, "error: bs.fountain: the story would overwrite the script; choose another file with "
                              "-o\n")


def test_import_without_llm_imports_nothing_heavy(tmp_path: Path) -> None:
    shutil.copy(DATA / "lighthouse.fdx", tmp_path / "l.fdx")
    code = (
        "import sys, runpy\n"
        "sys.argv = ['storyforge', 'import', 'l.fdx']\n"
        "try:\n"
        "    runpy.run_module('storyforge', run_name='__main__')\n"
        "except SystemExit as done:\n"
        "    assert done.code == 0, done.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'diffusers', 'transformers', "
        "'moviepy'))\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == ""


def test_a_transition_typed_as_action_in_final_draft_is_a_transition() -> None:
    script = fdx.parse(b'<FinalDraft><Content>\n<Paragraph Type="Action"><Text>FADE IN:</Text></Paragraph>\n'
                       b'<Paragraph Type="General"><Text>A river.</Text></Paragraph>\n</Content></FinalDraft>', "f.fdx")
    assert [(e.line, e.kind, e.text) for e in script.elements] == [(2, "transition", "FADE IN:"),
                                                                    (3, "action", "A river.")]


def test_an_overlong_paragraph_is_cut_at_a_sentence_with_a_warning(tmp_path: Path) -> None:
    paragraph = " ".join(f"Sentence number {n} of a very long action paragraph." for n in range(60))
    (tmp_path / "long.fountain").write_text(f"INT. HALL - DAY\n\n{paragraph}\n", "utf-8")
    report = api.import_script(tmp_path / "long.fountain")
    assert [w.split("long.fountain")[1] for w in report.warnings] == [
        ":3: the action paragraph is longer than 2,000 characters (more than a video model reads); the story keeps "
        "its beginning: split the paragraph, or import with --llm"]
    prompt = yaml.safe_load((tmp_path / "long.yaml").read_text("utf-8"))["scenes"][0]["shots"][0]["prompt"]
    assert len(prompt) <= 2000 and prompt.endswith("paragraph.") and paragraph.startswith(prompt)
    assert report.problems == []


def test_dialogue_reaches_templates_and_the_plan_but_not_the_cache_key(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    story = tmp_path / "film.yaml"
    text = ("storyforge: 1\ntitle: T\ncharacters:\n  mara: a keeper\nenhance: {template: says.j2}\nscenes:\n"
            "  - id: s\n    shots:\n      - id: a\n        prompt: Mara trims the wick\n        duration: 2s\n"
            "        dialogue:\n          - {character: mara, line: \"(quietly) One more night.\"}\n"
            "      - id: b\n        prompt: the lamp turns\n        duration: 2s\n")
    story.write_text(text, "utf-8")
    (tmp_path / "says.j2").write_text(
        "{{ shot.prompt }}{% for d in shot.dialogue %}; {{ characters[d.character] }} says {{ d.line }}{% endfor %}",
        "utf-8")
    plan = api.plan(story)
    assert [job.prompt for job in plan.jobs] == ["Mara trims the wick; a keeper says (quietly) One more night.",
                                                 "the lamp turns"]
    jobs = json.loads(plan.dumps())["jobs"]
    assert jobs[0]["dialogue"] == [{"character": "mara", "line": "(quietly) One more night."}]
    assert "dialogue" not in jobs[1]
    (tmp_path / "says.j2").write_text("{{ shot.prompt }}", "utf-8")
    key = api.plan(story).jobs[0].key
    story.write_text(text.replace("One more night.", "Two more nights."), "utf-8")
    assert api.plan(story).jobs[0].key == key  # what is said is not in the picture
    story.write_text(text.replace("character: mara", "character: tom"), "utf-8")
    with pytest.raises(StoryError) as caught:
        api.plan(story)
    assert str(caught.value) == ("film.yaml:13: s/a: unknown character 'tom' speaks in the dialogue; known "
                                 "characters: mara")
