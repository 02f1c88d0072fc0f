"""Re-rolling keeps the cut: `render --only SHOT --no-cache` replaces what it renders, not the rest; the other
clips and the film stay, the film is cut again with the new clip, and the shared cache is not touched."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conftest import TINY

from storyforge import api
from storyforge.clipfile import count_frames, read_frames


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_rerolling_one_shot_keeps_the_other_clips_and_the_film(write_story, story_dir: Path) -> None:
    path = write_story(TINY.replace("fps: 12, steps: 2", "fps: 12, steps: 2, seed: 3"))
    plan = api.plan(path)
    first = api.render(plan, backend="skyreels-df")
    out, cache = first.out, story_dir / ".storyforge" / "cache"
    before, cached = files(out / "clips"), files(cache)
    film = read_frames(out / "film.mp4")

    again = api.render(plan, backend="skyreels-df", only=["s/c"], use_cache=False)
    run = json.loads((out / "run.json").read_text())
    assert {job["id"]: job["status"] for job in run["jobs"]} == {"s/a": "cached", "s/b": "cached", "s/c": "rendered"}
    after = files(out / "clips")
    assert after["s__a.mp4"] == before["s__a.mp4"] and after["s__b.mp4"] == before["s__b.mp4"]
    assert again.film == out / "film.mp4" and count_frames(out / "film.mp4") == plan.total_frames
    # the same seed renders the same pixels: the film cut again from the new clip is the film it was
    assert np.array_equal(read_frames(out / "film.mp4"), film)
    assert files(cache) == cached  # --no-cache: the shared cache was read for the other shots, never written
    assert not [p for p in out.iterdir() if p.is_dir() and p.name.startswith(".")]  # no scratch left behind


def test_rerolling_a_shot_whose_neighbours_are_not_cached_keeps_their_clips_and_the_film(write_story,
                                                                                         story_dir: Path) -> None:
    path = write_story(TINY)
    plan = api.plan(path)
    out = api.render(plan, backend="skyreels-df").out
    before = files(out / "clips")
    film = (out / "film.mp4").read_bytes()
    cache = story_dir / ".storyforge" / "cache"
    import shutil

    shutil.rmtree(cache)  # the shared cache is gone (cleaned, or another machine): the outputs are all that is left
    report = api.render(plan, backend="skyreels-df", only=["s/c"], use_cache=False)
    after = files(out / "clips")
    assert after["s__a.mp4"] == before["s__a.mp4"] and after["s__b.mp4"] == before["s__b.mp4"]
    assert (out / "film.mp4").read_bytes() == film  # not cut (two clips are in no cache), and not removed either
    assert any(n.startswith("film.mp4 was not cut again: 2 shots") for n in report.notices), report.notices
