"""Seams on synthetic clips: Lab and CIEDE2000 against published data, injected steps, hue turns and drift
detected with the magnitude put in, and colour matching reducing them by a measured factor."""

from __future__ import annotations

import numpy as np
import pytest
from seamclips import drift, moving_lab, step, to_frames

from storyforge import api, colormatch, seams
from storyforge.lab import delta_e_2000, lab_to_srgb, srgb_to_lab

SEAM = 30


def test_ciede2000_matches_sharma_wu_dalal_test_data() -> None:
    # pairs 1, 2, 3, 4, 13, 25 and 34 of the published CIEDE2000 test data (Sharma, Wu, Dalal 2005)
    pairs = [((50, 2.6772, -79.7751), (50, 0, -82.7485), 2.0425), ((50, 3.1571, -77.2803), (50, 0, -82.7485), 2.8615),
             ((50, 2.8361, -74.0200), (50, 0, -82.7485), 3.4412), ((50, -1.3802, -84.2814), (50, 0, -82.7485), 1.0),
             ((50, 0, 0), (50, -1, 2), 2.3669), ((50, 2.5, 0), (73, 25, -18), 27.1492),
             ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082)]
    first, second, expected = (np.array(column, dtype=float) for column in zip(*pairs, strict=True))
    assert np.round(delta_e_2000(first, second), 4).tolist() == expected.tolist()
    assert np.round(delta_e_2000(second, first), 4).tolist() == expected.tolist()  # symmetric


def test_lab_round_trips_8bit_colours_exactly() -> None:
    levels = np.unique(np.r_[np.arange(0, 256, 3), 255]).astype(np.uint8)  # every third level and white
    cube = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    assert np.array_equal(lab_to_srgb(srgb_to_lab(cube)), cube)
    white, black = srgb_to_lab(np.array([[255, 255, 255], [0, 0, 0]], dtype=np.uint8))
    assert np.allclose(white, [100, 0, 0], atol=1e-3) and np.allclose(black, [0, 0, 0], atol=1e-3)


def test_a_clean_seam_measures_about_one() -> None:
    frames = to_frames(moving_lab(60))
    clean = seams.measure(frames[:SEAM], frames[SEAM:])
    assert 0.7 < clean["jump"] < 1.3
    assert clean["color_shift"] < 1.0  # under what an observer sees


@pytest.mark.parametrize(("lightness", "hue"), [(6.0, 0.0), (-10.0, 0.0), (0.0, 25.0), (3.0, 15.0)])
def test_an_injected_step_is_detected_with_its_magnitude_and_matched_away(lightness: float, hue: float) -> None:
    lab = moving_lab(60)
    injected = step(lab, SEAM, lightness=lightness, hue_degrees=hue)
    frames = to_frames(injected)
    clean = seams.measure(to_frames(lab)[:SEAM], to_frames(lab)[SEAM:])
    # what was put in: the CIEDE2000 of the mean Lab colour of SIDE frames either side of the seam
    side = seams.SIDE
    expected = float(delta_e_2000(injected[SEAM - side:SEAM].reshape(-1, 3).mean(0),
                                  injected[SEAM:SEAM + side].reshape(-1, 3).mean(0)))
    found = seams.measure(frames[:SEAM], frames[SEAM:])
    assert found["color_shift"] == pytest.approx(expected, rel=0.05)
    assert found["jump"] > clean["jump"]
    if abs(lightness) >= 6:
        assert found["jump"] > 2 * clean["jump"]

    matched = colormatch.match_job(frames, [SEAM])
    assert matched.shape == frames.shape and np.array_equal(matched[:SEAM], frames[:SEAM])  # before: untouched
    after = seams.measure(matched[:SEAM], matched[SEAM:])
    assert found["color_shift"] / max(after["color_shift"], 1e-3) > 10
    assert after["jump"] < 1.2 * clean["jump"]


def test_drift_along_a_chain_is_detected_and_matched_away() -> None:
    starts = [0, 20, 40, 60, 80]
    lab = drift(moving_lab(100), starts, lightness=2.5, yellow=2.0)
    frames = to_frames(lab)
    bounds = [*starts, len(lab)]
    expected = float(delta_e_2000(lab[bounds[0]:bounds[1]].reshape(-1, 3).mean(0),
                                  lab[bounds[-2]:bounds[-1]].reshape(-1, 3).mean(0)))
    found = seams.chain_drift(seams.window_colours(frames, starts))
    assert found == pytest.approx(expected, rel=0.1)

    matched = colormatch.match_job(frames, starts)
    remaining = seams.chain_drift(seams.window_colours(matched, starts))
    assert found / remaining > 5
    for start in starts[1:]:
        assert seams.measure(matched[:start], matched[start:])["color_shift"] < 0.5


def test_a_continued_shot_is_matched_to_the_frames_it_continues() -> None:
    lab = step(moving_lab(50), 20, lightness=-8.0)
    frames = to_frames(lab)
    previous, shot = frames[:20], frames[20:]
    before = seams.measure(previous, shot)["color_shift"]
    matched = colormatch.match_job(shot, [], reference=previous)
    assert before / max(seams.measure(previous, matched)["color_shift"], 1e-3) > 10


def test_matching_window_by_window_gives_the_same_frames_as_matching_at_once() -> None:
    starts = [0, 13, 29]
    frames = to_frames(drift(moving_lab(45), starts, lightness=4.0, yellow=-3.0))
    whole = colormatch.match_job(frames, starts)
    for size in (1, 3, 7, 16):
        matcher = colormatch.ColorMatch(starts)
        parts = [matcher.feed(frames[i:i + size]) for i in range(0, len(frames), size)] + [matcher.finish()]
        assert np.array_equal(np.concatenate([p for p in parts if len(p)]), whole), size


def test_a_job_without_seams_is_left_as_it_is() -> None:
    frames = to_frames(moving_lab(12))
    assert np.array_equal(colormatch.match_job(frames, [0]), frames)


def test_window_seams_are_where_the_pipeline_starts_each_window(write_story) -> None:
    story = write_story("""\
storyforge: 1
title: Windows
render: {model: tiny, resolution: 64x64, fps: 24, base_frames: 97, overlap_frames: 17}
scenes:
  - id: s
    shots:
      - id: long
        prompt: a long take
        duration: 257f
      - id: more
        prompt: and more
        duration: 160f
        transition: continue
""")
    plan = api.plan(story)
    # 257 frames = windows of 25, 25, 25 latents; each later window appends 25 - 5 latents (80 frames)
    assert [(s.frame, s.kind) for s in seams.job_sites(plan.jobs[0])] == [(97, "window"), (177, "window")]
    # the extension: 17 + 160 frames = 45 latents = windows 25, 25; its first new frames come after the 17 given
    assert [(s.frame, s.kind) for s in seams.job_sites(plan.jobs[1])] == [(0, "continue"), (80, "window")]
    film = [seams.film_frame(job, site) for job in plan.jobs for site in seams.job_sites(job)]
    assert film == [seam.frame for seam in plan.seams()] == [97, 177, 257, 337]


def test_color_match_is_true_or_false(write_story) -> None:
    import subprocess
    import sys

    from conftest import ROOT

    story = write_story("storyforge: 1\ntitle: T\nrender: {model: tiny, color_match: \"yes\"}\nscenes:\n  - id: s\n"
                        "    shots:\n      - id: a\n        prompt: x\n        duration: 17f\n")
    done = subprocess.run([sys.executable, "-m", "storyforge", "validate", str(story)], capture_output=True,
                          text=True, cwd=story.parent, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1
    assert done.stderr.strip() == "error: film.yaml:3: render.color_match: 'yes' is not true or false"


def test_measuring_a_stream_gives_the_numbers_of_the_whole_clip(write_story) -> None:
    story = write_story("""\
storyforge: 1
title: Windows
render: {model: tiny, resolution: 64x64, fps: 24, base_frames: 97, overlap_frames: 17}
scenes:
  - id: s
    shots:
      - id: long
        prompt: a long take
        duration: 257f
""")
    job = api.plan(story).jobs[0]
    frames = to_frames(drift(moving_lab(257, 64, 64), seams.window_starts(job), lightness=3.0, yellow=1.0))
    whole = seams.measure_job(job, frames, None)
    assert [s["frame"] for s in whole["seams"]] == [97, 177] and len(whole["windows"]) == 3
    for size in (4, 33, 100):  # the tiny model's VAE hands over 4 frames at a time
        meter = seams.SeamMeter(job, None)
        for start in range(0, len(frames), size):
            meter.add(frames[start:start + size])
        assert meter.result() == whole, size
