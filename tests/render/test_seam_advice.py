"""Seams you can act on: documented thresholds, what is bad and what to do, seams marked intended, no drift score
for a chain aimed at an end image, and the animatic's title cards not scored."""

from __future__ import annotations

import json

from storyforge import api
from storyforge.console import seam_summary
from storyforge.review import _seam
from storyforge.seams import VISIBLE_JUMP, VISIBLE_SHIFT, report

STORY = """\
storyforge: 1
title: Seams
render: {{model: tiny, resolution: 64x64, fps: 12, steps: 2, base_frames: 17, overlap_frames: 5{extra}}}
scenes:
  - id: s
    shots:
      - {{id: a, prompt: a fox, duration: 29f}}
      - {{id: b, prompt: the fox runs, duration: 16f, transition: continue{b}}}
      - {{id: c, prompt: night falls, duration: 29f, end_image: refs/swan.png, image: refs/swan.png}}
"""


def measured(plan, jump: float, shift: float) -> dict:
    """Every seam of the plan measured at `jump` and `shift`, two window colours a job."""
    found: dict = {}
    for site in plan.seams():
        job = plan.job(site.job)
        entry = found.setdefault(site.job, {"seams": [], "windows": [[50.0, 0.0, 0.0], [52.0, 1.0, 1.0]]})
        entry["seams"].append({"frame": site.frame - job.start_frame, "kind": site.kind, "jump": jump,
                               "color_shift": shift})
    for job in plan.jobs:
        found.setdefault(job.id, {"seams": [], "windows": [[50.0, 0.0, 0.0], [53.0, 2.0, 2.0]]})
    return found


def test_the_thresholds_are_the_documented_ones() -> None:
    assert (VISIBLE_JUMP, VISIBLE_SHIFT) == (2.0, 2.0)


def test_a_visible_seam_says_what_is_bad_and_what_to_do(write_story) -> None:
    plan = api.plan(write_story(STORY.format(extra=", color_match: false", b="")))
    seams, chains = report(plan, measured(plan, 2.5, 3.1))
    by_kind = {(s["job"], s["kind"]): s for s in seams}
    assert by_kind[("s/b", "continue")]["advice"] == (
        "jump 2.50 is over 2; color_shift 3.10 is over 2: try another take (render.takes, then storyforge pick; or "
        "render --only s/b --no-cache), a longer overlap (overlap_frames: 37), a cut or crossfade instead of "
        "`continue`, colour matching on (color_match: true), or, if the change is meant, `seams: {intended: true}` "
        "on the shot")
    assert by_kind[("s/a", "window")]["advice"] == (
        "jump 2.50 is over 2; color_shift 3.10 is over 2: try another take (render.takes, then storyforge pick; or "
        "render --only s/a --no-cache), a longer overlap (overlap_frames: 37), colour matching on (color_match: "
        "true), or, if the change is meant, `seams: {intended: true}` on the shot")
    assert all(s["visible"] and not s["intended"] for s in seams)
    # the chain that ends on an end image is asked to change colour: no drift score for it
    assert [chain["jobs"] for chain in chains] == [["s/a", "s/b"]]
    line = seam_summary(seams, chains, plan.fps)
    assert line is not None and line.startswith(f"{len(seams)} seams, {len(seams)} visible: s/")
    assert line.endswith("(visible from jump 2, about 1 when invisible; from color_shift 2, CIEDE2000)")


def test_seams_under_the_thresholds_need_nothing(write_story) -> None:
    plan = api.plan(write_story(STORY.format(extra="", b="")))
    seams, chains = report(plan, measured(plan, 1.1, 0.4))
    assert [(s["visible"], s["advice"]) for s in seams] == [(False, None)] * len(seams)
    assert seam_summary(seams, chains, plan.fps) == (
        "4 seams, none visible; the largest: s/a at 00:00:01:05 (window) jump 1.10, color_shift 0.40; largest color "
        "drift along a chain: 2.64 (s/a, 4 windows) (visible from jump 2, about 1 when invisible; from color_shift "
        "2, CIEDE2000)")


def test_a_seam_the_story_asks_for_is_marked_intended_not_flagged(write_story) -> None:
    plan = api.plan(write_story(STORY.format(extra="", b=", seams: {intended: true}")))
    assert plan.job("s/b").seams_intended and plan.job("s/b").to_json()["seams"] == {"intended": True}
    seams, chains = report(plan, measured(plan, 4.0, 5.0))
    b = next(s for s in seams if s["job"] == "s/b")
    assert (b["visible"], b["intended"], b["advice"]) == (True, True, None)
    assert chains == []  # both chains aim somewhere on purpose
    assert "s/b" not in (seam_summary(seams, chains, plan.fps) or "").split("visible:")[1]
    assert "intended" in _seam(b, plan.fps) and 'class="loud"' not in _seam(b, plan.fps)


def test_the_review_page_says_what_to_do_at_a_visible_seam(write_story) -> None:
    plan = api.plan(write_story(STORY.format(extra="", b="")))
    seams, _ = report(plan, measured(plan, 2.5, 0.3))
    html = _seam(next(s for s in seams if s["job"] == "s/b"), plan.fps)
    assert html.startswith('<li class="loud">00:00:02:05 continue · jump 2.50 · color_shift 0.3 · jump 2.50 is over '
                           "2: try another take")


def test_a_misspelt_seams_key_is_an_error(write_story) -> None:
    import pytest

    from storyforge.errors import StoryError

    with pytest.raises(StoryError) as caught:
        api.validate(write_story(STORY.format(extra="", b=", seams: {intendd: true}")))
    assert [str(p) for p in caught.value.problems] == [
        "film.yaml:8: s/b.seams: unknown key 'intendd'; did you mean 'intended'?"]


def test_the_animatics_title_cards_are_not_scored(write_story, story_dir) -> None:
    path = write_story(STORY.format(extra="", b=""))
    report_ = api.render(api.plan(path), backend="animatic")
    run = json.loads((report_.out / "run.json").read_text())
    assert run["seams"] and all(s["jump"] is None and s["color_shift"] is None and not s["visible"]
                                for s in run["seams"])
    assert seam_summary(run["seams"], run["chains"], 12).startswith(
        "4 seams (not scored: an animatic's title cards, or nothing rendered)")
