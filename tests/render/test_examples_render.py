"""Every example renders: with the animatic, and through the real diffusers pipelines on the tiny model.

The tiny-model run is the planner's oracle: each clip's decoded frame count must equal the plan's `frames`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLES

from storyforge import api
from storyforge.clipfile import count_frames

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))


def _check_outputs(plan, out: Path) -> None:
    run = json.loads((out / "run.json").read_text())
    assert [job["id"] for job in run["jobs"]] == [job.id for job in plan.jobs]
    for job, record in zip(plan.jobs, run["jobs"], strict=True):
        assert count_frames(out / record["clip"]) == job.frames, job.id
    assert count_frames(out / "film.mp4") == plan.total_frames == run["total_frames"]


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_example_renders_with_the_animatic(path: Path, tmp_path: Path) -> None:
    plan = api.plan(path, {"resolution": "256x144"})  # the same timeline, smaller pictures: fast on 2 cores
    out = tmp_path / "out"
    report = api.render(plan, out=out, backend="animatic", cache_root=tmp_path / "cache")
    assert report.backend == "animatic"
    _check_outputs(plan, out)


@pytest.mark.torch
@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_example_renders_on_the_tiny_model_frame_for_frame(path: Path, tmp_path: Path) -> None:
    plan = api.plan(path, {"model": "tiny", "resolution": "64x64", "steps": 2})
    out = tmp_path / "out"
    report = api.render(plan, out=out, backend="skyreels-df", cache_root=tmp_path / "cache")
    assert report.backend == "skyreels-df"
    _check_outputs(plan, out)


def test_the_readme_render_command_works_without_a_gpu(tmp_path: Path) -> None:
    folder = tmp_path / "stories"
    shutil.copytree(EXAMPLES, folder)  # the cache and renders/ land beside the story: keep them out of the repo
    result = subprocess.run([sys.executable, "-m", "storyforge", "render", "swan-lake.yaml"],
                            capture_output=True, text=True, cwd=folder)
    assert result.returncode == 0, result.stderr
    assert "animatic" in result.stdout + result.stderr  # it says why there is no real render
    plan = api.plan(folder / "swan-lake.yaml")
    _check_outputs(plan, folder / "renders" / "swan-lake")


def test_the_soundtrack_is_trimmed_to_the_cut(write_story, story_dir: Path, tmp_path: Path) -> None:
    import wave

    import av

    (story_dir / "music").mkdir()
    with wave.open(str(story_dir / "music" / "theme.wav"), "wb") as sound:  # 5 s of sound under a 2 s cut
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(16000)
        sound.writeframes(b"\x00\x10" * 16000 * 5)
    path = write_story("storyforge: 1\ntitle: T\nrender: {resolution: 128x96}\naudio: music/theme.wav\nscenes:\n"
                       "  - id: s\n    shots:\n      - {id: a, prompt: p, duration: 25f}\n"
                       "      - {id: b, prompt: q, duration: 24f, transition: continue}\n")
    plan = api.plan(path)
    out = tmp_path / "out"
    api.render(plan, out=out, backend="animatic", cache_root=tmp_path / "cache")
    _check_outputs(plan, out)
    with av.open(str(out / "film.mp4")) as film:
        stream = film.streams.audio[0]
        samples = sum(frame.samples for frame in film.decode(stream))
        rate = stream.rate
    assert abs(samples / rate - plan.total_frames / plan.fps) <= 1024 / rate  # within one AAC frame


@pytest.mark.torch
def test_every_kind_of_shot_renders_frame_exact_on_the_tiny_model(write_story, story_dir: Path, tmp_path: Path) -> None:
    # long image shots off a window boundary, end images on short, long and continued shots, async blocks of 5
    path = write_story("""\
storyforge: 1
title: Kinds
render: {model: tiny, resolution: 64x64, fps: 12, steps: 2, base_frames: 17, overlap_frames: 5}
scenes:
  - id: s
    shots:
      - {id: a, prompt: a fox, duration: 33f}
      - {id: b, prompt: it runs, duration: 20f, transition: continue, end_image: refs/swan.png}
      - {id: c, prompt: a swan, duration: 21f, image: refs/swan.png}
      - {id: d, prompt: it flies, duration: 29f, image: refs/takeoff_start.png, end_image: refs/takeoff_end.png}
      - {id: e, prompt: it lands, duration: 5f, image: refs/swan.png, transition: {type: crossfade, duration: 2f}}
      - {id: f, prompt: a lake, duration: 57f, render: {base_frames: 37, overlap_frames: 17, ar_step: 2,
                                                         causal_block_size: 5}}
""")
    plan = api.plan(path)
    assert [j.kind for j in plan.jobs] == ["t2v", "extend", "i2v", "i2v", "i2v", "t2v"]
    out = tmp_path / "out"
    report = api.render(plan, out=out, backend="skyreels-df", cache_root=tmp_path / "cache")
    assert report.rendered == len(plan.jobs) and not report.notices  # a verified diffusers: nothing to note
    _check_outputs(plan, out)
