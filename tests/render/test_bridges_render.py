"""Bridges rendered by the real diffusers pipelines on the tiny model: the planned frames, the conditioning seen at
the pipeline call (the first shot's lossless tail, the next shot's first frame), what an edit re-renders, both
joins in run.json and on the review page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from storyforge import api
from storyforge.cache import TAIL, Cache
from storyforge.clipfile import count_frames, read_frames
from storyforge.render import clip_name

pytestmark = pytest.mark.torch

STORY = """\
storyforge: 1
title: Bridge
render: {{model: tiny, resolution: 64x64, fps: 12, steps: 2, base_frames: 17, overlap_frames: 5}}
scenes:
  - id: one
    shots:
      - id: a
        prompt: {a}
        duration: 17f
  - id: two
    shots:
      - id: b
        prompt: {b}
        duration: 17f
        transition: {{type: bridge, duration: 1s}}
"""


def story_text(a: str = "a red fox runs through snow", b: str = "a river at dusk") -> str:
    return STORY.format(a=a, b=b)


class Recorded:
    """Every call of the V2V-to-an-end-image pipeline, its keyword arguments as given (the real call goes on)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        from storyforge.backends import skyreels_df

        self.calls: list[dict[str, Any]] = []
        original = skyreels_df._EndFrameVideoToVideo.__call__
        recorded = self.calls

        def call(pipe: Any, *args: Any, **kwargs: Any) -> Any:
            recorded.append(dict(kwargs))
            return original(pipe, *args, **kwargs)

        monkeypatch.setattr(skyreels_df._EndFrameVideoToVideo, "__call__", call)


def entries(cache_root: Path) -> dict[str, Path]:
    """Cache entry folders by job id."""
    return {json.loads(meta.read_text())["job"]: meta.parent for meta in cache_root.glob("*/*/meta.json")}


def statuses(out: Path) -> dict[str, str]:
    return {job["id"]: job["status"] for job in json.loads((out / "run.json").read_text())["jobs"]}


def test_a_film_with_a_bridge_renders_the_planned_frames_conditioned_on_both_shots(write_story, tmp_path: Path,
                                                                                    monkeypatch) -> None:
    recorded = Recorded(monkeypatch)
    story = write_story(story_text())
    plan = api.plan(story)
    out, cache_root = tmp_path / "out", tmp_path / "cache"
    report = api.render(plan, out=out, cache_root=cache_root, backend="skyreels-df")
    assert count_frames(out / "film.mp4") == plan.total_frames == 17 + 12 + 17
    for job in plan.jobs:
        assert count_frames(out / clip_name(job)) == job.frames, job.id
    # the film is A, then the bridge, then B, each clip's frames in place
    film = read_frames(out / "film.mp4")
    for job in plan.jobs:
        clip = read_frames(out / clip_name(job))
        assert np.abs(film[job.start_frame:job.start_frame + job.frames].astype(int) - clip).mean() < 2, job.id

    (call,) = recorded.calls  # a and b are text-to-video: the one V2V-to-an-end-image call is the bridge's
    bridge = plan.job("two/b~bridge")
    assert call["prompt"] == bridge.prompt and call["num_frames"] == 5 + 12
    found = entries(cache_root)
    tail = np.load(found["one/a"] / TAIL)  # a's last frames exactly as they were encoded, not a decode of its clip
    video = np.stack([np.asarray(frame) for frame in call["video"]])
    assert np.array_equal(video, tail[-5:])
    cache = Cache(cache_root)
    first = cache.head(cache.get(found["two/b"].name), 1)[0]  # b's first frame, the picked (only) take's
    assert np.array_equal(np.asarray(call["last_image"]), first)

    run = json.loads((out / "run.json").read_text())
    times = {job["id"]: job for job in run["jobs"]}
    assert times["two/b~bridge"]["started"] >= max(times["one/a"]["finished"], times["two/b"]["finished"])
    seams = [seam for seam in run["seams"] if seam["kind"] == "bridge"]
    assert [(seam["job"], seam["frame"]) for seam in seams] == [("two/b~bridge", 17), ("two/b~bridge", 29)]
    assert all(seam["jump"] is not None and seam["color_shift"] is not None for seam in seams)
    page = (out / "review.html").read_text()
    assert 'data-shot="two/b~bridge"' in page and "bridge from one/a into two/b" in page
    assert report.rendered == 3


def test_editing_a_shot_renders_it_and_the_bridge_again_and_nothing_else(write_story, tmp_path: Path) -> None:
    cache_root = tmp_path / "cache"

    def render(text: str, out: str) -> dict[str, str]:
        api.render(api.plan(write_story(text)), out=tmp_path / out, cache_root=cache_root, backend="skyreels-df")
        return statuses(tmp_path / out)

    assert set(render(story_text(), "first").values()) == {"rendered"}
    assert render(story_text(a="a grey wolf runs through snow"), "a") == {
        "one/a": "rendered", "two/b~bridge": "rendered", "two/b": "cached"}
    assert render(story_text(a="a grey wolf runs through snow", b="a river at night"), "b") == {
        "one/a": "cached", "two/b~bridge": "rendered", "two/b": "rendered"}
    assert set(render(story_text(a="a grey wolf runs through snow", b="a river at night"), "again").values()) == {
        "cached"}


def test_only_the_next_shot_renders_the_bridge_after_it(write_story, tmp_path: Path) -> None:
    story = write_story(story_text())
    api.render(api.plan(story), out=tmp_path / "out", cache_root=tmp_path / "cache", only=["two/b"],
               backend="skyreels-df")
    # the bridge comes with the shot it leads into, and brings in the shot it continues
    assert statuses(tmp_path / "out") == {"one/a": "rendered", "two/b~bridge": "rendered", "two/b": "rendered"}
    assert count_frames(tmp_path / "out" / "film.mp4") == 46
