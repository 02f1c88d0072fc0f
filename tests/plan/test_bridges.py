"""Bridges in the plan: the job between two shots (timeline, JSON, keys, prompt) and every mistake at its line."""

from __future__ import annotations

import json
import re

import pytest

from storyforge import api
from storyforge.cut import CutClip, StitchError, edges, total_frames
from storyforge.errors import PlanError, StoryError

# a (17f), then a bridge of 1s (12 frames at 12 fps), then b (17f); b's chain goes on in c
FILM = """\
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
        transition: {transition}
      - id: c
        prompt: the river flows on
        duration: 8f
        transition: continue
"""
BRIDGE = "{type: bridge, duration: 1s}"


def film(a: str = "a red fox runs through snow", b: str = "a river at dusk", transition: str = BRIDGE) -> str:
    return FILM.format(a=a, b=b, transition=transition)


def keys(plan) -> dict[str, str]:
    return {job.id: job.key for job in plan.jobs}


def test_a_bridge_is_a_job_between_the_two_shots_and_the_cut_is_longer_by_its_frames(write_story) -> None:
    plan = api.plan(write_story(film()))
    data = json.loads(plan.dumps())
    assert [job["id"] for job in data["jobs"]] == ["one/a", "two/b~bridge", "two/b", "two/c"]
    bridge = data["jobs"][1]
    assert {k: bridge[k] for k in ("kind", "after", "before", "frames", "start_frame")} == {
        "kind": "bridge", "after": "one/a", "before": "two/b", "frames": 12, "start_frame": 17}
    assert bridge["segments"] == [{"latent_frames": 5, "prefix_latents": 2, "rows": 2, "start_frame": 0}]
    assert re.fullmatch(r"[0-9a-f]{64}", bridge["key"])
    assert bridge["num_frames"] == 5 + 12  # the overlap it continues from, then its own frames
    b = data["jobs"][2]
    assert b["start_frame"] == 17 + 12 and b["transition"] == {"type": "bridge", "frames": 12}
    assert b["after"] is None and "before" not in b  # b is a chain head: its pixels do not depend on the bridge
    assert data["total_frames"] == 17 + 12 + 17 + 8
    # the same film with a cut is shorter by exactly the bridge
    cut = api.plan(write_story(film(transition="cut")))
    assert plan.total_frames - cut.total_frames == 12
    assert total_frames(plan.jobs) == plan.total_frames  # the cut's arithmetic agrees with the plan's
    assert [(s.job, s.frame, s.kind) for s in plan.seams()] == [
        ("two/b~bridge", 17, "bridge"), ("two/b~bridge", 29, "bridge"), ("two/c", 46, "continue")]
    assert [[job.id for job in chain] for chain in plan.chains()] == [["one/a"], ["two/b", "two/c"]]


def test_the_default_prompt_joins_both_shots_final_prompts_and_its_own_is_a_sandboxed_template(write_story) -> None:
    plan = api.plan(write_story(film()))
    assert plan.job("two/b~bridge").prompt == (
        "a red fox runs through snow. The camera moves on without a cut and arrives at: a river at dusk.")
    own = "{type: bridge, duration: 1s, prompt: 'the camera flies from {{ previous }} to {{ scene.id }}'}"
    plan = api.plan(write_story(film(transition=own)))
    assert plan.job("two/b~bridge").prompt == "the camera flies from a red fox runs through snow. to two"
    hostile = "{type: bridge, duration: 1s, prompt: \"{{ ''.__class__.__mro__ }}\"}"
    with pytest.raises(StoryError) as caught:
        api.plan(write_story(film(transition=hostile)))
    (problem,) = caught.value.problems
    assert str(problem).startswith("film.yaml:15: two/b~bridge: ")
    assert "unsafe" in str(problem) or "refused" in str(problem) or "not allowed" in str(problem)


def test_the_key_covers_both_shots_and_the_bridges_own_prompt_and_nothing_else(write_story) -> None:
    base = keys(api.plan(write_story(film())))
    edited_a = keys(api.plan(write_story(film(a="a grey wolf runs through snow"))))
    assert {job for job in base if base[job] != edited_a[job]} == {"one/a", "two/b~bridge"}
    edited_b = keys(api.plan(write_story(film(b="a river at night"))))
    # c continues b, so it changes too; a does not
    assert {job for job in base if base[job] != edited_b[job]} == {"two/b", "two/b~bridge", "two/c"}
    own = keys(api.plan(write_story(film(transition="{type: bridge, duration: 1s, prompt: over the hills}"))))
    assert {job for job in base if base[job] != own[job]} == {"two/b~bridge"}
    retitled = keys(api.plan(write_story(film().replace("title: Bridge", "title: Another"))))
    assert retitled == base
    # with its own prompt, editing a shot's prompt changes the bridge only through that shot's key
    fixed = "{type: bridge, duration: 1s, prompt: over the hills}"
    before = keys(api.plan(write_story(film(transition=fixed))))
    after = keys(api.plan(write_story(film(a="a grey wolf", transition=fixed))))
    assert {job for job in before if before[job] != after[job]} == {"one/a", "two/b~bridge"}


def test_a_bridge_is_joined_by_the_cut_only_between_its_two_shots() -> None:
    a = CutClip("one/a", None, 17)  # type: ignore[arg-type]
    bridge = CutClip("two/b~bridge", None, 12, "continue")  # type: ignore[arg-type]
    b = CutClip("two/b", None, 17, "bridge", 12)  # type: ignore[arg-type]
    assert edges([a, bridge, b]) == [(0, 0), (0, 0), (0, 0)]
    assert total_frames([a, bridge, b]) == 46
    with pytest.raises(StitchError) as caught:
        edges([a, b])
    assert str(caught.value) == ("two/b: a bridge of 12 frames needs its bridge clip (12 frames, continuing the clip "
                                 "before it) just before this clip, and a clip before that")
    with pytest.raises(StitchError):
        edges([a, CutClip("two/b~bridge", None, 8, "continue"), b])  # type: ignore[arg-type]


ERRORS = {
    "on the film's first shot": (
        film().replace("      - id: a\n        prompt: a red fox runs through snow\n        duration: 17f\n",
                       "      - id: a\n        prompt: a fox\n        duration: 17f\n        transition: "
                       "{type: bridge, duration: 1s}\n"),
        "film.yaml:10: one/a: the first shot of the film has nothing to bridge from (a bridge continues "
        "the shot before it); use cut or fade"),
    "into a shot that also continues": (
        film(transition="{type: continue, prompt: over the river}"),
        "film.yaml:15: two/b.transition: a shot either continues the previous one or is reached by a bridge, not "
        "both (a bridge ends on this shot's first frame, which a continue would make from the bridge's); remove "
        "'prompt', or use type: bridge"),
    "shorter than the model can make": (
        film(transition="{type: bridge, duration: 2f}"),
        "film.yaml:15: two/b: a bridge of 2f is 2 frames at 12 fps, shorter than the model can make: it adds whole "
        "latents of 4 frames, at least 4; use 4f (0.333s) or 8f (0.667s)"),
    "a fraction of a second shorter than the model can make": (
        film(transition="{type: bridge, duration: 0.1s}"),
        "film.yaml:15: two/b: a bridge of 0.1s is 1 frame at 12 fps, shorter than the model can make: it adds whole "
        "latents of 4 frames, at least 4; use 4f (0.333s) or 8f (0.667s)"),
    "frames that are not whole latents": (
        film(transition="{type: bridge, duration: 10f}"),
        "film.yaml:15: two/b: a bridge of 10 frames: a bridge adds whole latents of 4 frames each, at least one; use "
        "8f (0.667s) or 12f (1.000s)"),
    "neighbours with different models": (
        film().replace("fps: 12", "fps: 24").replace(
            "        duration: 17f\n        transition: {type: bridge",
            "        duration: 17f\n        render: {model: df-1.3b-540p}\n        transition: {type: bridge"),
        "film.yaml:15: two/b: a bridge is one generation by one model, from one/a's last frames to this shot's first, "
        "but one/a uses model tiny and this shot df-1.3b-540p; give both the same model, or use cut or crossfade "
        "here"),
    "neighbours with different resolutions": (
        film().replace(
            "        duration: 17f\n        transition: {type: bridge",
            "        duration: 17f\n        render: {resolution: 128x64}\n        transition: {type: bridge"),
        "film.yaml:15: two/b: resolution 128x64 differs from the film's 64x64 (shot one/a); every shot of a film "
        "shares one resolution: set it once under the film's `render:`"),
    "a block size that would lose the end frame": (
        film().replace("        duration: 17f\n        transition: {type: bridge",
                       "        duration: 17f\n        render: {causal_block_size: 5, ar_step: 5, base_frames: 37, "
                       "overlap_frames: 17}\n        transition: {type: bridge"),
        "film.yaml:15: two/b: a bridge ends on this shot's first frame, one latent that causal_block_size 5 would "
        "overwrite (the bridge would not arrive at it); set causal_block_size: 1 for this shot"),
    "a prompt on a crossfade": (
        film(transition="{type: crossfade, duration: 3f, prompt: over the river}"),
        "film.yaml:15: two/b.transition: a 'crossfade' has no prompt: only a bridge generates frames of its own; "
        "remove 'prompt' or use type: bridge"),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_a_bridge_that_cannot_be_made_is_refused_at_its_line(name: str, write_story) -> None:
    text, expected = ERRORS[name]
    with pytest.raises((StoryError, PlanError)) as caught:
        api.plan(write_story(text))
    assert expected in [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize("duration", ["2f", "0.1s", "10f", "1f", "5f", "0.05s"])
def test_every_suggested_bridge_length_plans_when_followed(duration: str, write_story) -> None:
    with pytest.raises(PlanError) as caught:
        api.plan(write_story(film(transition=f"{{type: bridge, duration: {duration}}}")))
    message = str(caught.value.problems[0])
    suggested = re.findall(r"(\d+f) \((\d+\.\d+s)\)", message.split("; use ", 1)[1])
    assert suggested
    for frames, seconds in suggested:
        for written in (frames, seconds):
            plan = api.plan(write_story(film(transition=f"{{type: bridge, duration: {written}}}")))
            assert plan.job("two/b~bridge").frames == int(frames[:-1])


def test_a_bridge_length_in_seconds_snaps_to_whole_latents(write_story) -> None:
    plan = api.plan(write_story(film(transition="{type: bridge, duration: 0.9s}")))  # 10.8 -> 11 -> 12
    assert (plan.job("two/b~bridge").requested_frames, plan.job("two/b~bridge").frames) == (11, 12)
    assert not plan.warnings


def test_a_bridge_needs_enough_frames_before_it_to_continue(write_story) -> None:
    text = film().replace("        duration: 17f\n  - id: two", "        duration: 1f\n  - id: two")
    with pytest.raises(PlanError) as caught:
        api.plan(write_story(text))
    assert ("film.yaml:15: two/b: a bridge continues the last 5 frames (overlap_frames) of what came before, but "
            "the chain ending at one/a has 1; make one/a longer") in [str(p) for p in caught.value.problems]


def test_a_long_bridge_spans_several_windows(write_story) -> None:
    plan = api.plan(write_story(film(transition="{type: bridge, duration: 24f}")))
    bridge = plan.job("two/b~bridge")
    assert [w.latent_frames for w in bridge.segments] == [5, 5]
    assert [(s.frame, s.kind) for s in plan.seams() if s.job == bridge.id] == [
        (17, "bridge"), (17 + 12, "window"), (17 + 24, "bridge")]


def test_the_plan_table_counts_bridges_apart_from_shots(write_story) -> None:
    from storyforge.console import plan_footer

    assert plan_footer(api.plan(write_story(film()))).startswith("3 shots and 1 bridge, 54 frames")


def test_a_bridge_joins_the_picked_takes_of_both_shots(write_story) -> None:
    text = film().replace("render: {model: tiny,", "render: {takes: 2, model: tiny,")
    story = write_story(text)
    plan = api.plan(story)
    bridge = plan.job("two/b~bridge")
    assert bridge.takes == 1 and "takes" not in json.loads(plan.dumps())["jobs"][1]
    base = keys(plan)
    api.pick(story, "two/b", 2)
    picked_b = keys(api.plan(story))
    assert {job for job in base if base[job] != picked_b[job]} == {"two/b", "two/b~bridge", "two/c"}
    api.pick(story, "one/a", 2)
    picked_a = keys(api.plan(story))
    assert {job for job in base if picked_b[job] != picked_a[job]} == {"one/a", "two/b~bridge"}


def test_a_bridges_prompt_is_locked_like_every_prompt(write_story) -> None:
    from storyforge.enhance.lock import lock_path

    story = write_story(film())
    api.enhance(story)
    shots = json.loads(lock_path(story).read_text())["shots"]
    assert shots["two/b~bridge"]["kind"] == "bridge"
    assert shots["two/b~bridge"]["prompt"] == api.plan(story).job("two/b~bridge").prompt
    # a locked text (as an LLM would write it) is the bridge's prompt, and its key follows
    before = api.plan(story).job("two/b~bridge").key
    data = json.loads(lock_path(story).read_text())
    data["shots"]["two/b~bridge"]["prompt"] = "a long aerial move over snowy hills down to a river at dusk"
    lock_path(story).write_text(json.dumps(data))
    plan = api.plan(story)
    assert plan.job("two/b~bridge").prompt == "a long aerial move over snowy hills down to a river at dusk"
    assert plan.job("two/b~bridge").key != before and not plan.warnings


def test_the_compiler_refuses_a_first_bridge_even_without_the_story_checks(write_story, monkeypatch) -> None:
    from storyforge.story import load

    monkeypatch.setattr(load, "check_film", lambda film, source: [])  # as a caller that skips them would
    text = ERRORS["on the film's first shot"][0]
    with pytest.raises(PlanError) as caught:
        api.plan(write_story(text))
    assert [str(p) for p in caught.value.problems] == [
        "film.yaml:10: one/a: a bridge continues the shot before it, and there is none to continue; use cut or fade"]


def test_a_bridge_is_a_graph_node_with_two_parents_after_both(write_story) -> None:
    from storyforge.plan.graph import BRIDGE, HEAD, TAIL, Edge, graph_of

    plan = api.plan(write_story(film()))
    graph = graph_of(plan, plan.jobs)
    node = graph.node("two/b~bridge#take1")
    assert node.kind == BRIDGE and node.job.id == "two/b~bridge"
    assert node.parents == (Edge("one/a#take1", TAIL), Edge("two/b#take1", HEAD))
    order = [n.id for n in graph]
    assert order.index(node.id) > max(order.index("one/a#take1"), order.index("two/b#take1"))
    assert node not in graph.ready([])  # waits for both shots
    assert node not in graph.ready(["one/a#take1"]) and node not in graph.ready(["two/b#take1"])
    assert node in graph.ready(["one/a#take1", "two/b#take1"])
    # asked for alone, it brings in both shots it joins (and nothing that continues them)
    alone = graph_of(plan, [plan.job("two/b~bridge")])
    assert sorted(n.id for n in alone) == ["one/a#take1", "two/b#take1", "two/b~bridge#take1"]
    assert [n.wanted for n in alone if n.kind == BRIDGE] == [True]


def test_every_bridge_of_a_film_joins_its_own_two_shots(write_story) -> None:
    # a bridge's template reads `previous` and `next`: a render kept from one bridge must not serve the next
    shots = "\n".join(f"      - {{id: s{n}, prompt: animal {n} runs, duration: 17f"
                      f"{', transition: ' + BRIDGE if n else ''}}}" for n in range(5))
    story = ("storyforge: 1\ntitle: Bridges\nrender: {model: tiny, resolution: 64x64, fps: 12, steps: 2, "
             "base_frames: 17, overlap_frames: 5}\nscenes:\n  - id: one\n    shots:\n" + shots + "\n")
    jobs = {job.id: job for job in api.plan(write_story(story)).jobs}
    for n in range(1, 5):
        assert jobs[f"one/s{n}~bridge"].prompt == (f"animal {n - 1} runs. The camera moves on without a cut and "
                                                   f"arrives at: animal {n} runs.")
