"""Generated keyframes on a local Ray cluster: the edit model's candidates made on a worker, before the shot that
starts from them, placed here as the local executor places them (a module of its own: its own cluster, so it runs
beside the other Ray tests)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import CANDIDATES
from ray_local import local_cluster, statuses  # noqa: F401 - local_cluster: the module's own Ray cluster, `cluster`

from storyforge import api
from storyforge.api import render
from storyforge.clipfile import read_frames


@pytest.mark.ray
@pytest.mark.torch
@pytest.mark.slow
def test_a_generated_keyframe_renders_on_a_worker_before_the_shot_it_starts(cluster, write_story,
                                                                             tmp_path: Path) -> None:
    """A keyframe is a node of the graph: the edit model makes its two candidates on a worker, the pictures come
    back into this machine's cache and output folder, and the shot that starts from the picked one (and the shot
    continuing that) render after it, on workers, frame for frame as the local executor renders the story."""
    import socket

    pytest.importorskip("diffusers")
    from storyforge.confined import Folder
    from storyforge.readback import read_run

    story = write_story(CANDIDATES)
    plan = api.plan(story)
    assert plan.job("s/a").keyframe.candidates == 2 and plan.job("s/b").keyframe is None  # b continues a
    report = render(plan, out=tmp_path / "ray", backend="skyreels-df", cache_root=tmp_path / "ray-cache",
                    executor="ray")
    here = (socket.gethostname(), os.getpid())
    assert [(k.id, k.status, k.image, k.candidate) for k in report.keyframes] == [
        ("s/a", "rendered", "keyframes/s__a.k1.png", 1), ("s/a", "rendered", "keyframes/s__a.k2.png", 2)]
    [maker] = {keyframe.rendered_by for keyframe in report.keyframes}
    assert maker is not None and maker.host == here[0] and maker.pid != here[1]  # a worker made them, not here
    assert statuses(report) == {"s/a": "rendered", "s/b": "rendered"} and report.rendered == 2
    # the edit model, then the video model, each read from disk once (no other test here loads a model that a
    # worker process of this module's cluster could still hold)
    assert report.model_loads == 2

    # run.json says the same, read back by the typed reader: the driver is this process, every node a worker
    with Folder.open(tmp_path / "ray") as out:
        run = read_run(out)
    assert run.driver is not None and (run.driver.host, run.driver.pid) == here
    assert [(line.id, line.status, line.image, line.rendered_by) for line in run.keyframes] == [
        ("s/a", "rendered", f"keyframes/s__a.k{n}.png", maker) for n in (1, 2)]
    takes = {job.id: job for job in report.jobs}
    assert {takes[shot].rendered_by.pid for shot in ("s/a", "s/b")}.isdisjoint({here[1]})
    # the edges: a starts from the keyframe's picture, b from a's last frames
    assert max(line.finished for line in run.keyframes) <= takes["s/a"].started
    assert takes["s/a"].finished <= takes["s/b"].started

    # the pictures the worker made are in this machine's cache (by entry key) and in the output folder
    ray = tmp_path / "ray" / "keyframes"
    cached = sorted(path.read_bytes() for path in (tmp_path / "ray-cache" / "keyframes").glob("??/*.png"))
    pictures = [(ray / f"s__a.k{n}.png").read_bytes() for n in (1, 2)]
    assert cached == sorted(pictures) and pictures[0] != pictures[1]
    assert (ray / "s__a.png").read_bytes() == pictures[0]  # the video starts from candidate 1
    film = read_frames(tmp_path / "ray" / "film.mp4")  # decoded by FFmpeg, every frame
    assert film.shape == (plan.total_frames, 64, 64, 3) == (25, 64, 64, 3)

    # the local executor renders the same story to the same pictures and the same frames
    local = render(plan, out=tmp_path / "local", backend="skyreels-df", cache_root=tmp_path / "local-cache")
    assert [k.key for k in local.keyframes] == [k.key for k in report.keyframes]
    assert {k.rendered_by.pid for k in local.keyframes} == {here[1]}
    assert sorted(p.name for p in ray.iterdir()) == sorted(p.name for p in (tmp_path / "local/keyframes").iterdir())
    for path in ray.iterdir():
        assert path.read_bytes() == (tmp_path / "local" / "keyframes" / path.name).read_bytes(), path.name
    assert [job.key for job in local.jobs] == [job.key for job in report.jobs]
    assert np.array_equal(read_frames(tmp_path / "local" / "film.mp4"), film)

    # again: the pictures and both clips come from the cache, no model is read and no cluster is needed
    again = render(plan, out=tmp_path / "ray", backend="skyreels-df", cache_root=tmp_path / "ray-cache",
                   executor="ray")
    assert [(k.status, k.rendered_by) for k in again.keyframes] == [("cached", None)] * 2
    assert set(statuses(again).values()) == {"cached"} and again.model_loads == 0
    assert not [notice for notice in again.notices if notice.startswith("rendered on")]
