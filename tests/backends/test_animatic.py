"""The animatic backend: exact frame counts and size, deterministic pictures, camera moves, burnt-in text."""

from __future__ import annotations

import numpy as np
import pytest

from storyforge import api
from storyforge.backends.animatic import Animatic, Motion, _band_height, _fit, motion
from storyforge.backends.base import RenderInputs, load_backend
from storyforge.plan.model import Job, Plan

STORY = """\
storyforge: 1
title: Animatic
render: {resolution: 128x96, fps: 16, base_frames: 17, overlap_frames: 5}
scenes:
  - id: one
    shots:
      - id: a
        prompt: a red fox wakes up in a misty pine forest at sunrise
        camera: wide shot, slow push in
        duration: 17f
      - id: b
        prompt: the fox stretches
        camera: static
        duration: 12f
        transition: continue
      - id: c
        prompt: the fox looks at the sun
        camera: static
        image: refs/takeoff_start.png
        end_image: refs/takeoff_end.png
        duration: 17f
"""
PICTURE = 96 - _band_height(96)  # rows above the caption band


@pytest.fixture
def plan(write_story) -> Plan:
    return api.plan(write_story(STORY))


def render_all(plan: Plan) -> dict[str, np.ndarray]:
    """Every job through one Animatic, extensions fed the last overlap frames as render.py does."""
    backend, out = Animatic(), {}
    for job in plan.jobs:
        previous = out[job.after][-job.settings.overlap_frames:] if job.after else None
        out[job.id] = backend.render(job, RenderInputs(previous_frames=previous))
    return out


def test_every_job_has_its_planned_frames_at_the_plan_size(plan: Plan) -> None:
    frames = render_all(plan)
    for job in plan.jobs:
        assert frames[job.id].shape == (job.frames, 96, 128, 3)
        assert frames[job.id].dtype == np.uint8


def test_the_pictures_are_deterministic(plan: Plan) -> None:
    first, second = render_all(plan), render_all(plan)
    for job in plan.jobs:
        assert np.array_equal(first[job.id], second[job.id])


def test_the_registry_builds_it_and_ignores_real_backend_options() -> None:
    backend = load_backend("animatic", device="cuda", dtype="bfloat16")
    assert isinstance(backend, Animatic) and backend.name == "animatic"


def test_identity_names_what_is_burnt_in_but_not_in_the_job_key(plan: Plan) -> None:
    job = plan.jobs[0]
    identity = Animatic().identity(job)
    assert identity["backend"] == "animatic" and isinstance(identity["version"], int)
    assert (identity["shot"], identity["camera"], identity["start_frame"]) == (job.id, job.camera, 0)


@pytest.mark.parametrize(("camera", "expected"), [
    ("slow push in", Motion(zoom=1.0 + 0.04 * 2)),
    ("zoom out", Motion(zoom=1.0 / 1.08)),
    ("medium shot, pan left", Motion(dx=-0.7)),
    ("tracking shot", Motion(dx=0.7)),
    ("tilt up", Motion(dy=-0.7)),
    ("tilt down", Motion(dy=0.7)),
    ("close-up, static", Motion()),
    (None, Motion(zoom=1.04)),  # no motion words: a gentle push in
])  # fmt: skip
def test_camera_words_become_a_slow_move(camera: str | None, expected: Motion) -> None:
    got = motion(camera, seconds=2.0)
    assert got.zoom == pytest.approx(expected.zoom)
    assert (got.dx, got.dy) == pytest.approx((expected.dx, expected.dy))


def test_a_push_in_moves_the_picture_and_the_timecode_runs(plan: Plan) -> None:
    clip = render_all(plan)["one/a"]
    assert not np.array_equal(clip[0, :PICTURE], clip[-1, :PICTURE])
    band = clip[:, PICTURE:]
    assert not np.array_equal(band[0], band[1])  # the timecode's frame digits changed
    # the caption and shot id stay put: the band's left half is the same on every frame
    assert all(np.array_equal(band[0, :, :64], band[n, :, :64]) for n in range(len(band)))


def test_the_timecode_follows_the_film_timeline(plan: Plan) -> None:
    """Two jobs with the same pictures but other start frames differ only in the timecode corner."""
    from dataclasses import replace

    job = plan.jobs[0]
    backend = Animatic()
    here = backend.render(job, RenderInputs())
    later = backend.render(replace(job, start_frame=job.start_frame + 100), RenderInputs())
    assert np.array_equal(here[:, :PICTURE], later[:, :PICTURE])
    assert not np.array_equal(here[:, PICTURE:], later[:, PICTURE:])


def test_an_extension_goes_on_from_the_last_frame_it_is_given(plan: Plan) -> None:
    frames = render_all(plan)
    head, extension = frames["one/a"], frames["one/b"]
    # static camera: the extension's first picture is the head's last one (nearest resampling, no blur)
    assert np.abs(extension[0, :PICTURE].astype(int) - head[-1, :PICTURE].astype(int)).mean() < 2
    # fed other frames, it shows them instead: the pictures come from the chain, not from a title card
    job = plan.job("one/b")
    grey = np.full((5, 96, 128, 3), 128, np.uint8)
    again = Animatic().render(job, RenderInputs(previous_frames=grey))
    assert (again[:, :PICTURE] == 128).all()


def test_a_start_image_is_the_first_frame_and_an_end_image_the_last(plan: Plan) -> None:
    from PIL import Image

    job = plan.job("one/c")
    clip = render_all(plan)["one/c"]
    start = np.asarray(_fit(Image.open(job.image.path), (128, PICTURE))).astype(int)
    end = np.asarray(_fit(Image.open(job.end_image.path), (128, PICTURE))).astype(int)
    assert np.abs(clip[0, :PICTURE].astype(int) - start).mean() < 1
    assert np.abs(clip[-1, :PICTURE].astype(int) - end).mean() < 1
    assert np.abs(clip[len(clip) // 2, :PICTURE].astype(int) - end).mean() > 5


def test_title_cards_differ_from_shot_to_shot(plan: Plan) -> None:
    frames = render_all(plan)
    assert not np.array_equal(frames["one/a"][0], Animatic().render(_renamed(plan.jobs[0]), RenderInputs())[0])


def _renamed(job: Job) -> Job:
    from dataclasses import replace

    return replace(job, id="one/z", key="0" * 64)


def test_draws_a_full_540p_window(write_story) -> None:
    """A whole 540p window draws at the planned size and count (its speed is bench/render_overhead.py's business,
    not a timed test's)."""
    big = STORY.replace("128x96", "960x544").replace("fps: 16", "fps: 24").replace("base_frames: 17", "base_frames: 97")
    plan = api.plan(write_story(big.replace("duration: 17f", "duration: 97f", 1)))
    job = plan.jobs[0]
    frames = Animatic().render(job, RenderInputs())
    assert frames.shape == (97, 544, 960, 3)
