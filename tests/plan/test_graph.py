"""The graph of work: every take, keyframe and bridge a node; edges to what each waits for; strands for workers."""

from __future__ import annotations

from dataclasses import replace

from storyforge import api
from storyforge.plan.graph import BRIDGE, HEAD, KEYFRAME, PICTURE, TAIL, TAKE, Edge, graph_of
from storyforge.render import select

# a (2 takes) is continued by b (2 takes); a bridge leads from b into c; c is continued by d
FILM = """\
storyforge: 1
title: Graph
render: {model: tiny, resolution: 64x64, fps: 12, steps: 2, base_frames: 17, overlap_frames: 5}
scenes:
  - id: one
    shots:
      - id: a
        prompt: a red fox wakes up
        duration: 17f
        render: {takes: 2}
      - id: b
        prompt: the fox stretches
        duration: 8f
        transition: continue
        render: {takes: 2}
  - id: two
    shots:
      - id: c
        prompt: a river at dusk
        duration: 17f
        transition: {type: bridge, duration: 1s}
      - id: d
        prompt: the river flows on
        duration: 8f
        transition: continue
"""


def test_every_take_and_bridge_is_a_node_and_each_waits_for_the_picked_take_it_continues(write_story) -> None:
    plan = api.plan(write_story(FILM))
    graph = graph_of(plan, plan.jobs)
    assert [(node.id, node.kind) for node in graph] == [
        ("one/a#take1", TAKE), ("one/a#take2", TAKE), ("one/b#take1", TAKE), ("one/b#take2", TAKE),
        ("two/c#take1", TAKE), ("two/d#take1", TAKE), ("two/c~bridge#take1", BRIDGE)]  # the bridge after both
    parents = {node.id: node.parents for node in graph}
    assert parents["one/b#take2"] == (Edge("one/a#take1", TAIL),)  # every take of b continues a's pick
    assert parents["two/c~bridge#take1"] == (Edge("one/b#take1", TAIL), Edge("two/c#take1", HEAD))
    assert [node.job.seed for node in graph if node.job.id == "one/a"] == list(plan.job("one/a").take_seeds)
    order = [node.id for node in graph]
    assert all(order.index(edge.parent) < order.index(node.id) for node in graph for edge in node.parents)
    assert [node.id for node in graph.ready([])] == ["one/a#take1", "one/a#take2", "two/c#take1"]
    assert [node.id for node in graph.ready(["one/a#take1", "two/c#take1"])] == [
        "one/a#take2", "one/b#take1", "one/b#take2", "two/d#take1"]
    # a worker runs a chain of picks in a row; other takes and the bridge (two parents) start strands of their own
    assert [[node.id for node in strand] for strand in graph.strands()] == [
        ["one/a#take1", "one/b#take1"], ["one/a#take2"], ["one/b#take2"], ["two/c#take1", "two/d#take1"],
        ["two/c~bridge#take1"]]
    assert graph.external_parents(graph.strands()[-1]) == {"one/b#take1", "two/c#take1"}


def test_a_pick_moves_every_edge_to_the_picked_take(write_story) -> None:
    story = write_story(FILM)
    api.pick(story, "one/a", 2)
    plan = api.plan(story)
    graph = graph_of(plan, plan.jobs)
    assert graph.node("one/b#take1").parents == (Edge("one/a#take2", TAIL),)
    assert [n.id for n in graph if n.picked and n.job.id == "one/a"] == ["one/a#take2"]
    assert graph.strands()[0] == [graph.node("one/a#take1")] and graph.strands()[1] == [
        graph.node("one/a#take2"), graph.node("one/b#take1")]


def test_only_brings_in_the_picked_take_of_what_it_continues_and_keyframes_come_first(write_story) -> None:
    plan = api.plan(write_story(FILM))
    graph = graph_of(plan, select(plan, ["one/b"]), keyframes=["one/a"])
    assert [(node.id, node.wanted) for node in graph] == [  # a has no keyframe to make
        ("one/a#take1", False), ("one/b#take1", True), ("one/b#take2", True),
        ("two/c#take1", False), ("two/c~bridge#take1", True)]  # b's bridge renders again, after c's pick
    with_picture = replace(plan.jobs[0], keyframe=replace(plan.jobs[0].keyframe or _keyframe(), key="k"))
    plan = replace(plan, jobs=(with_picture, *plan.jobs[1:]))
    graph = graph_of(plan, select(plan, ["one/b"]), keyframes=["one/a"])
    assert [(node.id, node.kind) for node in graph][:2] == [("one/a#keyframe", KEYFRAME), ("one/a#take1", TAKE)]
    assert graph.node("one/a#take1").parents == (Edge("one/a#keyframe", PICTURE),)
    assert [node.kind for node in graph_of(plan, plan.jobs, keyframes=["one/a"], takes=False)] == [KEYFRAME]


def _keyframe():  # type: ignore[no-untyped-def]
    from storyforge.plan.model import Keyframe

    return Keyframe(references=(), cast=(), location=None, prompt="p", model="tiny", steps=1, guidance=1.0, seed=1,
                    width=64, height=64)
