"""Every value a refusal suggests plans when followed, every rule considered (a property over one-shot stories)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storyforge import api
from storyforge.errors import PlanError, StoryError

WINDOW = st.one_of(st.sampled_from([5, 9, 13, 17, 21, 25, 33, 37, 49, 57, 97, 117, 121]),
                   st.integers(0, 32).map(lambda k: 4 * k + 1), st.integers(1, 129))
STORY = st.fixed_dictionaries({
    "base_frames": WINDOW,
    "overlap_frames": WINDOW,
    "causal_block_size": st.sampled_from([1, 1, 2, 3, 5, 5, 7]),
    "ar_step": st.sampled_from([0, 0, 2, 5]),
    "steps": st.sampled_from([2, 4]),
    "cache": st.sampled_from([None, None, "magcache", "firstblock"]),
    "duration": st.one_of(st.integers(1, 500).map(lambda n: f"{n}f"),
                          st.sampled_from([0.01, 0.04, 0.5, 1, 2.5, 4, 8, 12.5, 20])),
    "image": st.sampled_from([False, False, False, True]),
    "fade": st.one_of(st.none(), st.integers(1, 400).map(lambda n: f"{n}f")),
})


def story(case: dict) -> dict:
    render = {"model": "tiny", "resolution": "64x64", "fps": 24, "seed": 1,
              **{key: case[key] for key in ("base_frames", "overlap_frames", "causal_block_size", "ar_step", "steps")}}
    if case["cache"]:
        render["cache"] = case["cache"]
    shot = {"id": "a", "prompt": "a fox", "duration": case["duration"]}
    if case["image"]:
        shot["image"] = "refs/swan.png"
    if case["fade"]:
        shot["transition"] = {"type": "fade", "duration": case["fade"]}
    return {"storyforge": 1, "title": "T", "render": render, "scenes": [{"id": "s", "shots": [shot]}]}


def followed(data: dict, fix: tuple) -> dict:
    """The story with one suggestion applied: each (setting, value) where a person would write it."""
    data = copy.deepcopy(data)
    shot, render = data["scenes"][0]["shots"][0], data["render"]
    for name, value in fix:
        if name == "duration":
            shot["duration"] = value
        elif name == "transition.duration":
            shot["transition"]["duration"] = value
        elif value is None:
            render.pop(name, None)
        else:
            render[name] = value
    return data


def problems(folder: Path, data: dict) -> list:
    path = folder / "film.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    try:
        api.plan(path, use_lock=False)
    except StoryError as error:
        return list(error.problems)
    return []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=STORY)
def test_every_suggestion_of_a_refusal_plans(case: dict, story_dir: Path) -> None:
    data = story(case)
    found = problems(story_dir, data)
    for problem in found:
        for fix in problem.fixes:
            after = problems(story_dir, followed(data, fix))
            if len(found) == 1:
                assert after == [], f"{problem}\n  following {fix} is refused: {[str(p) for p in after]}"
            else:  # the other mistakes remain; this one is gone and none is added
                assert len(after) < len(found), f"{problem}\n  following {fix}: {[str(p) for p in after]}"
            for name, value in fix:  # the message says what the fix does
                shown = value if name in ("duration", "transition.duration") else f"{value}"
                assert value is None or str(shown).rstrip("f") in problem.message, (problem.message, fix)


@pytest.mark.parametrize(("settings", "duration", "expected"), [
    # the old advice "use 17 or 37" is not smaller than base_frames 17
    ("base_frames: 17, overlap_frames: 21", "96f",
     "film.yaml:9: s/a: 96 frames: a generation is 4k+1 frames long (the VAE turns 4 frames into one latent, plus "
     "the first); use 17f"),  # 93f and 97f span windows, which this overlap cannot
    ("base_frames: 17, overlap_frames: 21", "97f",
     "film.yaml:3: s/a: overlap_frames 21 must be smaller than base_frames 17 (each window must add new frames); "
     "use overlap_frames 9 or 13"),
    # a shot within one window never uses its overlap: not refused for it
    ("base_frames: 17, overlap_frames: 21", "17f", None),
    ("base_frames: 97, overlap_frames: 21, causal_block_size: 5, ar_step: 5", "97f", None),
    # with such an overlap no length of several windows plans: each overlap with the length it plans
    ("overlap_frames: 21, causal_block_size: 5, ar_step: 5", "325f",
     "film.yaml:3: s/a: overlap_frames 21 is 6 latents, not a multiple of causal_block_size 5: the pipeline would "
     "cut every window's conditioning to 5 latents and regenerate the other 1 only to drop them (a weaker seam for "
     "more work); use overlap_frames 17 with 317f or 37 with 317f"),
    ("cache: firstblock", "193f",
     "film.yaml:9: s/a: render.cache firstblock needs windows of one size, but this shot's windows have [25, 25, 9] "
     "latents (the cache keeps state across windows and breaks on a different one); use 177f or 257f, or remove "
     "`cache`"),
    ("cache: magcache, causal_block_size: 5, ar_step: 5", "257f",
     "film.yaml:9: s/a: render.cache magcache needs every window to take the same number of denoising rows, but "
     "this shot's take [20, 16, 16] (asynchronous mode: the first window has no prefix) (the cache keeps state "
     "across windows and breaks on a different one); use 97f, or cache: firstblock, or remove `cache`"),
])
def test_suggestions_that_plan(write_story, settings: str, duration: str, expected: str | None) -> None:
    path = write_story("storyforge: 1\ntitle: T\nrender: {model: tiny, resolution: 64x64, steps: 4, " + settings +
                       "}\nscenes:\n  - id: s\n    shots:\n      - id: a\n        prompt: a fox\n"
                       f"        duration: {duration}\n")
    if expected is None:
        api.plan(path)
        return
    with pytest.raises(PlanError) as caught:
        api.plan(path)
    assert [str(p) for p in caught.value.problems] == [expected]


def test_a_continued_shot_gets_an_overlap_and_length_that_plan(write_story) -> None:
    path = write_story("storyforge: 1\ntitle: T\nrender: {model: tiny, resolution: 64x64, steps: 4, "
                       "overlap_frames: 21, causal_block_size: 5, ar_step: 5}\nscenes:\n  - id: s\n    shots:\n"
                       "      - {id: a, prompt: a fox, duration: 97f}\n"
                       "      - {id: b, prompt: it runs, duration: 80f, transition: continue}\n")
    with pytest.raises(PlanError) as caught:
        api.plan(path)
    (problem,) = caught.value.problems
    assert str(problem) == (
        "film.yaml:8: s/b: 80 new frames in asynchronous mode with causal_block_size 5: the last window would have 7 "
        "latents, not divisible by causal_block_size 5, so its last 2 latents would stay pure noise; set "
        "overlap_frames: 17 with 80f or overlap_frames: 37 with 80f or causal_block_size: 1")
    text = path.read_text()
    for fix in problem.fixes:
        changed = text
        for name, value in fix:
            changed = changed.replace("duration: 80f", f"duration: {value}") if name == "duration" else \
                changed.replace(f"{name}: {'21' if name == 'overlap_frames' else '5'}", f"{name}: {value}")
        api.plan(write_story(changed))


def test_a_one_frame_shot_from_a_generated_keyframe_is_refused_in_the_plan(write_story) -> None:
    path = write_story("storyforge: 1\ntitle: T\nrender: {model: tiny, resolution: 64x64}\n"
                       "keyframes: {model: tiny}\ncharacters:\n"
                       "  swan: {description: a swan, reference: refs/swan.png}\nscenes:\n  - id: s\n    shots:\n"
                       "      - {id: a, prompt: '{{ characters.swan }}', duration: 1f}\n")
    with pytest.raises(PlanError) as caught:
        api.validate(path)
    assert [str(p) for p in caught.value.problems] == [
        "film.yaml:10: s/a: 1 frame: the start image is the shot's first latent, so it needs at least one more latent "
        "(4 frames) to generate; use 5f"]
