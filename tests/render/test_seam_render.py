"""Seams in real renders on the tiny model: every seam in run.json at the plan's film frame, colour matching on
and off frame-exact, continuations conditioned on the lossless tails, and a two-phase render equal to one run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from storyforge import api
from storyforge.cache import TAIL, Cache, CorruptEntry
from storyforge.clipfile import count_frames, read_frames
from storyforge.render import ModelHolder, clip_name, worker

pytestmark = pytest.mark.torch

# a: three windows (seams at its frames 17 and 29); b continues a; c crossfades in 3 frames early; d continues c
STORY = """\
storyforge: 1
title: Seams
render: {{model: tiny, resolution: 64x64, fps: 12, steps: 2, base_frames: 17, overlap_frames: 5{extra}}}
scenes:
  - id: s
    shots:
      - id: a
        prompt: a red fox
        duration: 33f
      - id: b
        prompt: the fox runs
        duration: 12f
        transition: continue
      - id: c
        prompt: the fox sleeps
        duration: 17f
        transition: {{type: crossfade, duration: 3f}}
      - id: d
        prompt: the fox dreams
        duration: 8f
        transition: continue
"""
# film frames: a 0-32 (seams 17, 29), b 33-44 (continue at 33), c 42-58 (crossfade), d 59-66 (continue at 59)
SEAMS = [("s/a", 17, "window"), ("s/a", 29, "window"), ("s/b", 33, "continue"), ("s/d", 59, "continue")]


def render_cli(story: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "storyforge", "render", str(story), *args], capture_output=True,
                          text=True, cwd=story.parent, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                                            "HOME": str(story.parent), "HF_HUB_OFFLINE": "1",
                                                            "OMP_NUM_THREADS": "1"}, timeout=600)


def plan_seams(plan_json: dict) -> list[tuple[str, int, str]]:
    """Every seam from the plan JSON alone: a continue's first frame, and each later window's start_frame."""
    found = []
    for job in plan_json["jobs"]:
        if job["kind"] == "extend":
            found.append((job["id"], job["start_frame"], "continue"))
        found += [(job["id"], job["start_frame"] + segment["start_frame"], "window") for segment in job["segments"][1:]]
    return found


@pytest.mark.parametrize("color_match", [True, False])
def test_every_seam_is_in_run_json_at_the_plans_frame_and_the_render_is_frame_exact(write_story,
                                                                                      color_match: bool) -> None:
    story = write_story(STORY.format(extra="" if color_match else ", color_match: false"))
    result = render_cli(story)
    assert result.returncode == 0, result.stderr
    out = story.parent / "renders" / "film"
    plan_json = json.loads((out / "plan.json").read_text())
    run = json.loads((out / "run.json").read_text())
    assert all(job["settings"]["color_match"] is color_match for job in plan_json["jobs"])
    assert count_frames(out / "film.mp4") == plan_json["total_frames"] == 67
    for job in plan_json["jobs"]:
        assert count_frames(out / clip_name(api.plan(story).job(job["id"]))) == job["frames"]
    listed = [(seam["job"], seam["frame"], seam["kind"]) for seam in run["seams"]]
    assert listed == SEAMS == plan_seams(plan_json)
    for seam in run["seams"]:
        assert set(seam) == {"job", "frame", "kind", "jump", "color_shift", "visible", "intended", "advice"}
        assert seam["jump"] >= 0 and seam["color_shift"] >= 0
    assert [chain["jobs"] for chain in run["chains"]] == [["s/a", "s/b"], ["s/c", "s/d"]]
    assert [chain["windows"] for chain in run["chains"]] == [4, 2]
    assert all(chain["drift"] >= 0 for chain in run["chains"])
    worst = max(run["seams"], key=lambda s: (s["jump"], s["color_shift"]))
    assert f"{worst['job']} at " in result.stdout and "seams: 4 seams, " in result.stdout

    # the OTIO export carries each seam as a marker on its clip, with the numbers
    otio = pytest.importorskip("opentimelineio")
    timeline = otio.adapters.read_from_file(str(api.export(story)))
    starts = {job["id"]: job["start_frame"] for job in plan_json["jobs"]}
    marked = [(clip.name, starts[clip.name] + int(marker.marked_range.start_time.value),
               marker.metadata["storyforge"]["seam"]) for clip in timeline.find_clips() for marker in clip.markers
              if "seam" in marker.metadata["storyforge"]]
    assert [(name, frame) for name, frame, _ in marked] == [(s["job"], s["frame"]) for s in run["seams"]]
    basic = ("job", "frame", "kind", "jump", "color_shift")  # the markers carry the numbers, not the advice
    assert [dict(seam) for _, _, seam in marked] == [{key: s[key] for key in basic} for s in run["seams"]]


def test_color_match_is_part_of_the_key(write_story) -> None:
    on = api.plan(write_story(STORY.format(extra="")))
    off = api.plan(write_story(STORY.format(extra=", color_match: false"), name="off.yaml"))
    assert all(a.key != b.key for a, b in zip(on.jobs, off.jobs, strict=True))


def test_continuations_condition_on_the_lossless_tail_and_two_phases_equal_one_run(write_story,
                                                                                    tmp_path: Path) -> None:
    story = write_story(STORY.format(extra=""))
    plan = api.plan(story)
    # phase 1 renders the chain heads only; phase 2 continues them from the cache
    api.render(plan, out=tmp_path / "two", only=["s/a"], cache_root=tmp_path / "two-cache")
    api.render(plan, out=tmp_path / "two", cache_root=tmp_path / "two-cache")
    api.render(plan, out=tmp_path / "one", cache_root=tmp_path / "one-cache")
    for job in plan.jobs:
        assert np.array_equal(read_frames(tmp_path / "two" / clip_name(job)), read_frames(tmp_path / "one" /
                                                                                          clip_name(job))), job.id
    assert np.array_equal(read_frames(tmp_path / "two" / "film.mp4"), read_frames(tmp_path / "one" / "film.mp4"))

    # what `s/b` conditions on is `s/a`'s tail exactly as it was encoded, not the H.264 decode of its clip
    cache = Cache(tmp_path / "one-cache")
    holder = ModelHolder()
    run = worker(plan, cache, "skyreels-df", {}, holder, {}, {job.id for job in plan.jobs})
    try:
        head = run.store.ensure(plan.job("s/a"))
        conditioning = run.store.tail(plan.job("s/b"))
    finally:
        holder.free()
    overlap = plan.job("s/b").settings.overlap_frames
    assert head.meta["tail_frames"] == overlap
    assert np.array_equal(conditioning, np.load(head.folder / TAIL))
    decoded = cache.read(head)[-overlap:]
    assert conditioning.shape == decoded.shape and not np.array_equal(conditioning, decoded)  # H.264 is lossy


def test_a_tail_that_does_not_load_discards_its_entry(write_story, tmp_path: Path) -> None:
    story = write_story(STORY.format(extra=""))
    plan = api.plan(story)
    api.render(plan, out=tmp_path / "out", only=["s/c"], cache_root=tmp_path / "cache")
    cache = Cache(tmp_path / "cache")
    tails = {json.loads((tail.parent / "meta.json").read_text())["job"]: tail
             for tail in (tmp_path / "cache").glob(f"*/*/{TAIL}")}
    assert sorted(tails) == ["s/c", "s/d"]
    shortened, garbled = tails["s/c"], tails["s/d"]
    shortened.write_bytes(shortened.read_bytes()[:-10])
    assert cache.get(shortened.parent.name) is None
    garbled.write_bytes(b"\0" * garbled.stat().st_size)  # the same size: caught by its hash when it is read
    entry = cache.get(garbled.parent.name)
    assert entry is not None
    with pytest.raises(CorruptEntry):
        cache.tail(entry)
    assert cache.get(garbled.parent.name) is None
    assert [line.split(": ", 1)[1] for line in cache.discarded] == [
        "its tail frames changed", "its tail frames' content changed (their hash does not match)"]
