"""`import --llm`: the real from_pretrained + chat template + generate path on tiny offline Qwen2 models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from storyforge import api
from storyforge.enhance import qwen
from storyforge.screenplay.breakdown import conversation, parse_shots

LONG = ("Waves crash against the black rocks below the white lighthouse while the wind tears at the gallery rail, "
        "and high above them Mara trims the wick of the great brass lamp with steady hands.")
SCRIPT = f"EXT. LIGHTHOUSE - NIGHT\n\n{LONG}\n\nMARA\nOne more night.\n\nA gull lands.\n"
# What the parrot model says, whatever it is asked; every token distinct (a lone \r breaks the line: the chat
# prompt ends in \n, which the chain cannot use twice).
ANSWER = "Wide shot: waves crash below.\rClose-up | Mara trims wicks"


@pytest.mark.parametrize(("answer", "shots"), [
    ("wide shot, slow push in: waves crash on the rocks.\nclose-up: Mara trims the wick.",
     [("wide shot, slow push in", "waves crash on the rocks."), ("close-up", "Mara trims the wick.")]),
    ("1. Wide shot — waves crash.\n2. Close-up - Mara trims the wick\n",
     [("Wide shot", "waves crash."), ("Close-up", "Mara trims the wick.")]),
    ("Here are the shots you asked for, in order, with the camera first", None),  # not a list
    ("wide shot: waves crash.", None),  # one shot is no breakdown
    ("a very long camera description that goes on and on for words: x y", None),
    ("", None),
])
def test_the_answer_is_read_as_camera_and_action_per_line(answer: str, shots: list[tuple[str, str]] | None) -> None:
    assert parse_shots(answer) == shots


def test_the_model_is_told_the_scene_and_the_action() -> None:
    assert conversation("EXT. SEA - DAY", "Waves.")[1] == {
        "role": "user", "content": "Scene: EXT. SEA - DAY\nAction: Waves.\nWrite the shots."}


@pytest.fixture(scope="module")
def parrot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen2 whose weights make greedy decoding say ANSWER and stop (tests/parrot.py)."""
    from parrot import build_parrot

    return build_parrot(tmp_path_factory.mktemp("llm") / "parrot", ANSWER, conversation("x", "y"))


@pytest.mark.torch
def test_a_long_paragraph_becomes_the_shots_the_model_proposes(parrot: Path, tmp_path: Path) -> None:
    (tmp_path / "keeper.fountain").write_text(SCRIPT, "utf-8")
    report = api.import_script(tmp_path / "keeper.fountain", llm=str(parrot))
    assert report.problems == [] and report.warnings == [] and report.llm == str(parrot)
    story = yaml.safe_load((tmp_path / "keeper.yaml").read_text("utf-8"))
    assert story["scenes"][0]["shots"] == [
        {"id": "waves-crash-below", "prompt": "waves crash below.", "camera": "Wide shot", "duration": "49f"},
        {"id": "mara-trims-wicks", "prompt": "Mara trims wicks.", "camera": "Close-up", "duration": "53f",
         "cast": ["mara"], "dialogue": [{"character": "mara", "line": "One more night."}]},
        {"id": "gull-lands", "prompt": "A gull lands.", "duration": "49f"},  # short: not broken down
    ]
    origins = json.loads((tmp_path / "keeper.import.json").read_text("utf-8"))["origins"]["shots"]
    assert [(o["line"], o["part"]) for o in origins.values()] == [(3, 0), (3, 1), (8, 0)]
    assert len(api.plan(tmp_path / "keeper.yaml").jobs) == 3


@pytest.mark.torch
def test_a_model_that_says_nothing_usable_leaves_the_paragraph_whole(tmp_path: Path) -> None:
    tiny = qwen.build_tiny(tmp_path / "tiny")
    (tmp_path / "keeper.fountain").write_text(SCRIPT, "utf-8")
    report = api.import_script(tmp_path / "keeper.fountain", llm=str(tiny))
    assert [w.split("keeper.fountain")[1] for w in report.warnings] == [
        ":3: the LLM gave no usable shot list for this paragraph; it stays one shot"]
    story = yaml.safe_load((tmp_path / "keeper.yaml").read_text("utf-8"))
    assert [shot["prompt"] for shot in story["scenes"][0]["shots"]] == [LONG, "A gull lands."]
    assert report.problems == []
