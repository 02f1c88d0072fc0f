"""The animatic draws a bridge at its planned length: a labelled move from the last picture of one shot to the
first of the next, so a bridge's timing can be judged on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from storyforge import api
from storyforge.backends.animatic import _band_height
from storyforge.clipfile import count_frames, read_frames
from storyforge.render import clip_name

STORY = """\
storyforge: 1
title: Animatic bridge
render: {resolution: 128x96, fps: 16, base_frames: 17, overlap_frames: 5}
scenes:
  - id: one
    shots:
      - id: a
        prompt: a red fox wakes up in a misty pine forest
        camera: static
        image: refs/takeoff_start.png
        duration: 17f
  - id: two
    shots:
      - id: b
        prompt: a river at dusk
        camera: static
        duration: 17f
        transition: {type: bridge, duration: 1.5s, prompt: the camera flies over the hills to the river}
"""
PICTURE = 96 - _band_height(96)


def distance(one: np.ndarray, other: np.ndarray) -> float:
    return float(np.abs(one[:PICTURE].astype(int) - other[:PICTURE].astype(int)).mean())


def test_the_animatic_draws_a_bridge_as_a_move_between_the_two_shots_at_its_planned_length(write_story,
                                                                                          tmp_path: Path) -> None:
    story = write_story(STORY)
    plan = api.plan(story)
    bridge = plan.job("two/b~bridge")
    assert bridge.frames == 24  # 1.5s at 16 fps, whole latents already
    report = api.render(plan, out=tmp_path / "out", cache_root=tmp_path / "cache", backend="animatic")
    assert report.backend == "animatic"
    out = tmp_path / "out"
    assert count_frames(out / "film.mp4") == plan.total_frames == 17 + 24 + 17
    a, moving, b = (read_frames(out / clip_name(plan.job(job_id))) for job_id in ("one/a", bridge.id, "two/b"))
    assert len(moving) == 24
    # it leaves a's last picture and arrives at b's first, step by step
    towards_b = [distance(frame, b[0]) for frame in moving]
    from_a = [distance(frame, a[-1]) for frame in moving]
    assert from_a[0] < distance(a[-1], b[0]) / 3 and towards_b[-1] < distance(a[-1], b[0]) / 3
    assert towards_b[0] > towards_b[len(moving) // 2] > towards_b[-1]
    assert from_a[0] < from_a[len(moving) // 2] < from_a[-1]
    # labelled: its caption band is not either shot's
    assert not np.array_equal(moving[0][PICTURE:], a[-1][PICTURE:])
    assert not np.array_equal(moving[0][PICTURE:], b[0][PICTURE:])
    run = json.loads((out / "run.json").read_text())
    assert [job["id"] for job in run["jobs"]] == ["one/a", "two/b~bridge", "two/b"]


def test_the_timeline_export_places_the_bridge_between_its_shots_with_both_seams(write_story, tmp_path: Path) -> None:
    otio = pytest.importorskip("opentimelineio")
    story = write_story(STORY)
    plan = api.plan(story)
    api.render(plan, out=tmp_path / "out", cache_root=tmp_path / "cache", backend="animatic")
    written = api.export(story, output=tmp_path / "film.otio", render_dir=tmp_path / "out")
    timeline = otio.adapters.read_from_file(str(written))
    clips = list(timeline.tracks[0])
    assert [clip.name for clip in clips] == ["one/a", "two/b~bridge", "two/b"]
    assert [clip.duration().value for clip in clips] == [17, 24, 17]
    assert timeline.duration().value == plan.total_frames
    # the bridge's start is its first window's marker; its arrival, the next clip's first frame
    leaving, window = clips[1].markers  # 24 frames from 17-frame windows: a second window at its frame 12
    assert window.marked_range.start_time.value == 12
    (arriving,) = clips[2].markers
    for marker, frame in ((leaving, 17), (arriving, 17 + 24)):  # the animatic's seams are listed, not scored
        assert marker.marked_range.start_time.value == 0
        seam = marker.metadata["storyforge"]["seam"]
        assert (seam["job"], seam["frame"], seam["kind"]) == ("two/b~bridge", frame, "bridge")
    assert clips[1].metadata["storyforge"]["leads_into"] == "two/b"


def test_several_films_each_render_their_bridge_after_both_shots(story_dir: Path, tmp_path: Path) -> None:
    stories = []
    for name in ("first", "second"):
        story = story_dir / f"{name}.yaml"
        story.write_text(STORY.replace("Animatic bridge", name).replace("1.5s", "1s" if name == "first" else "2s"))
        stories.append(story)
    plans = [api.plan(story) for story in stories]
    results = api.render_films(plans, out=tmp_path / "out", cache_root=tmp_path / "cache", backend="animatic")
    for plan, (report, error) in zip(plans, results, strict=True):
        assert error is None and report is not None
        out = tmp_path / "out" / plan.story.stem
        assert count_frames(out / "film.mp4") == plan.total_frames
        times = {job["id"]: job for job in json.loads((out / "run.json").read_text())["jobs"]}
        bridge = times["two/b~bridge"]
        assert bridge["started"] >= max(times["one/a"]["finished"], times["two/b"]["finished"])
    assert [plan.job("two/b~bridge").frames for plan in plans] == [16, 32]
