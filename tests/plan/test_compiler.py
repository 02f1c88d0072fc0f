"""The compiler: chains, kinds, timeline, seeds and keys, and properties over random valid films."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from storyforge import api
from storyforge.errors import PlanError
from storyforge.plan import frames as fx

BASE = "storyforge: 1\ntitle: T\nrender: {seed: 5}\nscenes:\n  - id: s\n    shots:\n"


def test_chains_kinds_and_timeline(write_story) -> None:
    plan = api.plan(write_story(BASE + """\
      - {id: a, prompt: one, duration: 4s}
      - {id: b, prompt: two, duration: 2s, transition: continue}
      - {id: c, prompt: three, duration: 97f, image: refs/swan.png, transition: {type: crossfade, duration: 12f}}
      - {id: d, prompt: four, duration: 1s, transition: {type: fade, duration: 1s}}
"""))
    a, b, c, d = plan.jobs
    assert [j.kind for j in plan.jobs] == ["t2v", "extend", "i2v", "t2v"]
    assert [j.after for j in plan.jobs] == [None, "s/a", None, None]
    assert (a.requested_frames, a.frames, b.frames, b.num_frames) == (96, 97, 48, 65)
    assert [j.start_frame for j in plan.jobs] == [0, 97, 145 - 12, 145 - 12 + 97]
    assert plan.total_frames == 97 + 48 + 97 + 25 - 12
    assert (c.settings.guidance, c.settings.shift) == (5.0, 5.0)  # image-to-video defaults
    assert [len(chain) for chain in plan.chains()] == [2, 1, 1]


def test_seeds_are_derived_per_shot_and_stable(write_story) -> None:
    path = write_story(BASE + "      - {id: a, prompt: p, duration: 1s}\n      - {id: b, prompt: p, duration: 1s}\n"
                       "      - {id: c, prompt: p, duration: 1s, seed: 9}\n")
    first = api.plan(path)
    assert [j.seed for j in first.jobs][2] == 9
    assert len({j.seed for j in first.jobs}) == 3
    assert [j.seed for j in api.plan(path).jobs] == [j.seed for j in first.jobs]


def test_keys_change_with_pixels_not_with_titles(write_story) -> None:
    text = BASE + "      - {id: a, prompt: p, duration: 1s}\n      - {id: b, prompt: q, duration: 1s, " \
                  "transition: continue}\n      - {id: c, prompt: r, duration: 1s}\n"
    before = api.plan(write_story(text))
    retitled = api.plan(write_story(text.replace("title: T", "title: Another Title") + "# a comment\n"))
    assert [j.key for j in retitled.jobs] == [j.key for j in before.jobs]
    edited = api.plan(write_story(text.replace("prompt: p", "prompt: p2")))
    changed = [x.key != y.key for x, y in zip(before.jobs, edited.jobs, strict=True)]
    assert changed == [True, True, False]  # the edited shot and the one continuing it


def test_keying_copies_a_job_as_dataclasses_replace_does(write_story) -> None:
    from dataclasses import fields, replace

    from storyforge.plan.compiler import _keyed
    from storyforge.plan.model import Job

    job = api.plan(write_story(BASE + "      - {id: a, prompt: p, duration: 1s, render: {takes: 2}}\n")).jobs[0]
    changes = {"seed": 7, "key": "k", "take_seeds": (7, 8), "take_keys": ("k", "l")}
    assert _keyed(job, **changes) == replace(job, **changes) and _keyed(job, **changes).__dict__ == \
        replace(job, **changes).__dict__
    # the copy is only replace while every field is set by __init__ and nothing runs after it
    assert not hasattr(Job, "__post_init__") and all(field.init for field in fields(Job))
    with pytest.raises(TypeError):
        _keyed(job, no_such_field=1)


def test_overrides_take_precedence(write_story) -> None:
    plan = api.plan(write_story(BASE + "      - {id: a, prompt: p, duration: 1s, render: {model: df-14b-540p}}\n"),
                    {"model": "tiny"})
    assert plan.jobs[0].settings.model == "tiny"
    assert (plan.width, plan.height) == (64, 64)


def test_warns_about_a_wasteful_last_window(write_story) -> None:
    plan = api.plan(write_story(BASE + "      - {id: a, prompt: p, duration: 101f}\n"))
    assert [w.latent_frames for w in plan.jobs[0].segments] == [25, 6]
    assert "the last window has 6 of 25 latents" in str(plan.warnings[0])


shots = st.fixed_dictionaries({
    "seconds": st.floats(0.3, 14.0).map(lambda x: round(x, 2)),
    "transition": st.sampled_from(["cut", "continue", "crossfade", "fade"]),
    "blend": st.sampled_from(["4f", "0.25s", "0.5s", "1s"]),
})


@st.composite
def films(draw):
    mode = draw(st.sampled_from(["sync", "async"]))
    render = {"seed": draw(st.integers(0, 1000)), "fps": draw(st.sampled_from([16, 24, 30]))}
    if render["fps"] not in (16, 24):
        render["model"] = "tiny"  # the real checkpoints refuse other rates; the random test model takes any
    if mode == "async":
        render.update(ar_step=draw(st.integers(1, 6)), causal_block_size=5)
    specs = draw(st.lists(shots, min_size=1, max_size=8))
    film_shots = []
    for index, spec in enumerate(specs):
        kind = "cut" if index == 0 and spec["transition"] in ("continue", "crossfade") else spec["transition"]
        shot = {"id": f"s{index}", "prompt": f"shot {index}", "duration": f"{spec['seconds']}s"}
        if kind in ("crossfade", "fade"):
            shot["transition"] = {"type": kind, "duration": spec["blend"]}
        elif kind == "continue":
            shot["transition"] = "continue"
        film_shots.append(shot)
    return {"storyforge": 1, "title": "P", "render": render, "scenes": [{"id": "s", "shots": film_shots}]}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(film=films())
def test_plan_properties(film, write_story) -> None:
    try:
        plan = api.plan(write_story(yaml.safe_dump(film)))
    except PlanError as error:
        # the only rejections of these films: blends longer than a shot, chains shorter than the overlap
        assert all("crossfade of" in p.message or "fade of" in p.message or "continuing needs" in p.message
                   for p in error.problems), str(error)
        assume(False)
        return
    crossfades = sum(j.transition.frames for j in plan.jobs if j.transition.type == "crossfade")
    assert plan.total_frames == sum(j.frames for j in plan.jobs) - crossfades
    cursor = 0
    for job in plan.jobs:
        s = job.settings
        b = fx.latents(s.base_frames)
        overlap = job.transition.frames if job.transition.type == "crossfade" else 0
        assert job.start_frame == cursor - overlap
        cursor = job.start_frame + job.frames
        assert all(w.latent_frames <= b for w in job.segments)
        if s.causal_block_size > 1:
            assert all(w.latent_frames % s.causal_block_size == 0 for w in job.segments)
            assert job.segments[-1].latent_frames - job.segments[-1].prefix_latents >= s.causal_block_size
        if job.kind == "extend":
            assert job.num_frames == job.frames + s.overlap_frames and job.frames % 4 == 0
        else:
            assert job.num_frames == job.frames and fx.is_generation_length(job.frames)
        generated = fx.latents(job.num_frames)
        assert job.segments[0].latent_frames + sum(w.latent_frames - 5 for w in job.segments[1:]) == generated
        assert abs(job.frames - job.requested_frames) <= (60 if s.causal_block_size > 1 else 2)
        starts = [w.start_frame for w in job.segments]
        assert starts == fx.window_start_frames(job.num_frames, s.base_frames, s.overlap_frames,
                                                extend=job.kind == "extend")
        assert starts[0] == 0 and starts == sorted(set(starts)) and starts[-1] < job.frames
    assert cursor == plan.total_frames
    seams = plan.seams()
    assert [seam.frame for seam in seams] == sorted(seam.frame for seam in seams) or any(
        j.transition.type == "crossfade" for j in plan.jobs)
    assert sum(1 for seam in seams if seam.kind == "continue") == sum(1 for j in plan.jobs if j.kind == "extend")


# -- rules that keep the plan equal to the render (issue 11) --------------------------------------------------
def _problems(path) -> list[str]:
    import pytest

    with pytest.raises(PlanError) as caught:
        api.plan(path)
    return [str(p) for p in caught.value.problems]


def test_real_checkpoints_refuse_frame_rates_they_would_speed_up(write_story) -> None:
    text = "storyforge: 1\ntitle: T\nrender:\n  fps: 30\nscenes:\n  - id: s\n    shots:\n" \
           "      - {id: a, prompt: p, duration: 2s}\n      - {id: b, prompt: q, duration: 2s}\n"
    assert _problems(write_story(text)) == [
        "film.yaml:4: s/a: fps 30: SkyReels-V2 DF checkpoints make motion at 24 fps (their only frame-rate input "
        "tells 16 fps from any other), so a 30 fps film would play it 1.25x fast; set fps: 24 (or 16), and change "
        "the finished film's rate with a video tool if you need 30 fps"]  # once, at the setting, not per shot
    assert api.plan(write_story(text.replace("fps: 30", "fps: 16"))).fps == 16
    tiny = api.plan(write_story(text.replace("fps: 30", "fps: 30\n  model: tiny")))  # a random test model
    assert tiny.fps == 30 and "model_fps" not in tiny.to_json()


def test_an_overlap_the_pipeline_would_truncate_is_refused(write_story) -> None:
    text = "storyforge: 1\ntitle: T\nrender:\n  overlap_frames: 21\n  causal_block_size: 5\n  ar_step: 5\n" \
           "scenes:\n  - id: s\n    shots:\n      - {id: a, prompt: p, duration: 325f}\n" \
           "      - {id: b, prompt: q, duration: 97f}\n"
    assert _problems(write_story(text)) == [
        "film.yaml:4: s/a: overlap_frames 21 is 6 latents, not a multiple of causal_block_size 5: the pipeline "
        "would cut every window's conditioning to 5 latents and regenerate the other 1 only to drop them (a weaker "
        "seam for more work); use overlap_frames 17 with 317f or 37 with 317f"]
    # s/b fits one window: its overlap is never used
    plan = api.plan(write_story(text.replace("overlap_frames: 21", "overlap_frames: 17").replace("325f", "337f")))
    assert [w.prefix_latents for w in plan.jobs[0].segments] == [0, 5, 5, 5]


def test_segment_start_frames_are_the_pipelines_seams(write_story) -> None:
    plan = api.plan(write_story(BASE + """\
      - {id: a, prompt: one, duration: 257f}
      - {id: b, prompt: two, duration: 160f, transition: continue}
      - {id: c, prompt: three, duration: 177f, image: refs/swan.png, transition: {type: crossfade, duration: 8f}}
"""))
    a, b, c = plan.jobs
    assert [w.start_frame for w in a.segments] == [0, 97, 177]
    assert [w.start_frame for w in b.segments] == [0, 80]  # an extension's first window adds its first frame
    assert [w.start_frame for w in c.segments] == [0, 97]
    assert [(s.job, s.frame, s.kind) for s in plan.seams()] == [
        ("s/a", 97, "window"), ("s/a", 177, "window"), ("s/b", 257, "continue"), ("s/b", 337, "window"),
        ("s/c", 417 - 8 + 97, "window")]
    assert [w["start_frame"] for w in plan.to_json()["jobs"][0]["segments"]] == [0, 97, 177]
    # the non-block-multiple overlap (refused by the planner) still has its seams where the pipelines put them
    assert fx.window_start_frames(325, 97, 21) == [0, 97, 173, 249]


def test_image_shots_of_any_length_and_end_images(write_story) -> None:
    plan = api.plan(write_story(BASE + """\
      - {id: a, prompt: one, duration: 10s, image: refs/swan.png, end_image: refs/takeoff_end.png}
      - {id: b, prompt: two, duration: 24f, end_image: refs/takeoff_end.png, transition: continue}
"""))
    a, b = plan.jobs
    assert (a.kind, a.frames, [w.latent_frames for w in a.segments]) == ("i2v", 241, [25, 25, 21])
    assert (b.kind, b.end_image is not None) == ("extend", True)
    data = plan.to_json()["jobs"]
    assert data[0]["end_image"]["at_frame"] == 241 + 3 and data[1]["end_image"]["at_frame"] == 24 + 3


def test_async_cost_warnings(write_story) -> None:
    plan = api.plan(write_story("storyforge: 1\ntitle: T\nrender:\n  ar_step: 5\nscenes:\n  - id: s\n    shots:\n"
                                "      - {id: a, prompt: p, duration: 97f}\n      - {id: b, prompt: q, duration: 97f}\n"
                                "      - {id: c, prompt: r, duration: 97f, render: {ar_step: 0, "
                                "causal_block_size: 5}}\n"
                                "      - {id: d, prompt: r, duration: 97f, render: {causal_block_size: 5, "
                                "causal_attention: true}}\n"))
    assert [str(w) for w in plan.warnings] == [
        "film.yaml:4: s/a: asynchronous mode (ar_step 5) with causal_block_size 1 staggers every latent: a window "
        "of 97 frames takes 150 denoising rows, 3x the 50 of causal_block_size 5 (SkyReels' async setting); set "
        "causal_block_size: 5 unless you mean it",
        "film.yaml:10: s/c: causal_block_size 5 with ar_step 0 is synchronous: it only limits the lengths this shot "
        "can have (every window divisible by 5) and does nothing else; use causal_block_size 1, or ar_step 5 for "
        "asynchronous mode",
        "film.yaml:11: s/d: block-causal attention builds a dense 2.4 GiB mask for every transformer call on a "
        "97-frame window and cannot use flash attention; SkyReels-V2 runs full attention unless asked "
        "(--causal_attention)"]
    jobs = plan.to_json()["jobs"]
    assert [j["attention_mask_bytes"] for j in jobs] == [0, 0, 0, 51_000 ** 2]
    assert fx.attention_mask_bytes(31, 1280, 720) == 111_600 ** 2  # 720p: 11.6 GiB per call
    assert plan.jobs[0].key != api.plan(write_story(BASE + "      - {id: a, prompt: p, duration: 97f}\n")).jobs[0].key


def test_start_image_warnings(write_story, story_dir) -> None:
    from PIL import Image

    Image.new("RGB", (90, 160)).save(story_dir / "refs" / "portrait.png")
    plan = api.plan(write_story(BASE + """\
      - {id: a, prompt: one, duration: 97f, image: refs/swan.png, end_image: refs/takeoff_end.png}
      - {id: b, prompt: two, duration: 97f, image: refs/takeoff_end.png}
      - {id: c, prompt: three, duration: 97f, image: refs/portrait.png}
"""))
    assert [str(w) for w in plan.warnings] == [
        "film.yaml:8: s/b: its start image is the end image of s/a, whose video stops about 4 frames short of it "
        "(the end image conditions one latent past that shot's last frame, which is dropped), so the cut jumps; use "
        "`transition: continue` instead of `image:` to carry s/a's motion over",
        "film.yaml:9: s/c: the start image is portrait (90x160) and the film is 960x544: it is centre-cropped to "
        "the film's shape, keeping 32% of it; for a portrait film set resolution: 544x960"]


def test_the_default_negative_prompt_is_the_references(write_story) -> None:
    plan = api.plan(write_story(BASE + "      - {id: a, prompt: p, duration: 1s}\n"))
    assert plan.jobs[0].settings.negative_prompt.startswith("色调艳丽，过曝，静态，细节模糊不清，字幕")
    assert plan.jobs[0].settings.negative_prompt.endswith("三条腿，背景人很多，倒着走")
