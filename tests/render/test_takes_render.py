"""Takes rendered as a user renders them: every take on disk, the pick in clips/ and the film, metadata in every
file, and picking upstream re-renders only what continues it (tiny model and animatic)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from storyforge import __version__, api
from storyforge.backends.animatic import Animatic, _band_height
from storyforge.backends.base import RenderInputs
from storyforge.clipfile import count_frames, read_frames
from storyforge.provenance import read_tags

ROOT = Path(__file__).resolve().parents[2]
# s/a: three takes; s/b continues it (one take); s/c: two takes, crossfading from s/b.
STORY = """\
storyforge: 1
title: Takes <&> "quoted"
render: {model: tiny, resolution: 64x64, fps: 12, steps: 2, base_frames: 17, overlap_frames: 5}
scenes:
  - id: s
    shots:
      - id: a
        prompt: a red fox
        duration: 17f
        render: {takes: 3}
      - id: b
        prompt: the fox runs
        duration: 8f
        transition: continue
      - id: c
        prompt: the fox sleeps
        duration: 13f
        transition: {type: crossfade, duration: 3f}
        render: {takes: 2}
"""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`storyforge ARGS` in this process (tests/conftest.run_cli)."""
    return run_cli(*args, cwd=cwd)


def statuses(out: Path) -> dict[str, str]:
    """`id` or `id take N` -> rendered | cached, from run.json."""
    run = json.loads((out / "run.json").read_text("utf-8"))
    return {f"{job['id']} take {take['take']}": take["status"] for job in run["jobs"] for take in job["takes"]}


@pytest.mark.torch
@pytest.mark.slow
def test_takes_on_the_tiny_model_then_a_pick_recuts_the_film_and_rerenders_only_what_continues_it(write_story):
    story = write_story(STORY)
    out = story.parent / "renders" / "film"
    first = cli("render", "film.yaml", cwd=story.parent)
    assert first.returncode == 0, first.stderr
    assert "6 takes rendered, 0 cached" in first.stdout
    assert statuses(out) == {"s/a take 1": "rendered", "s/a take 2": "rendered", "s/a take 3": "rendered",
                             "s/b take 1": "rendered", "s/c take 1": "rendered", "s/c take 2": "rendered"}
    takes = {n: read_frames(out / f"takes/s__a/take{n}.mp4") for n in (1, 2, 3)}
    assert all(frames.shape == (17, 64, 64, 3) for frames in takes.values())
    assert not np.array_equal(takes[1], takes[2]) and not np.array_equal(takes[2], takes[3])  # own seeds
    assert not np.array_equal(takes[1], takes[3])
    assert np.array_equal(read_frames(out / "clips/s__a.mp4"), takes[1])  # the default pick is take 1
    run = json.loads((out / "run.json").read_text("utf-8"))
    plan = api.plan(story)
    a = run["jobs"][0]
    assert (a["take"], a["clip"], a["key"]) == (1, "clips/s__a.mp4", plan.jobs[0].key)
    assert [(t["take"], t["key"], t["clip"]) for t in a["takes"]] == [
        (n, plan.jobs[0].take_keys[n - 1], f"takes/s__a/take{n}.mp4") for n in (1, 2, 3)]
    film_before = read_frames(out / "film.mp4")
    b_before = read_frames(out / "clips/s__b.mp4")
    assert len(film_before) == plan.total_frames == count_frames(out / "film.mp4")
    assert run["warnings"] == []  # every clip, metadata and all, was stream-copied into the film

    picked = cli("pick", "film.yaml", "s/a", "2", cwd=story.parent)
    assert picked.returncode == 0, picked.stderr
    lock_text = (story.parent / "film.lock.json").read_text("utf-8")
    second = cli("render", "film.yaml", cwd=story.parent)
    assert second.returncode == 0, second.stderr
    # only the continued shot is rendered again: it continues the picked take now
    assert statuses(out) == {"s/a take 1": "cached", "s/a take 2": "cached", "s/a take 3": "cached",
                             "s/b take 1": "rendered", "s/c take 1": "cached", "s/c take 2": "cached"}
    assert np.array_equal(read_frames(out / "clips/s__a.mp4"), takes[2])
    assert os.path.samefile(out / "clips/s__a.mp4", out / "takes/s__a/take2.mp4")
    b_after = read_frames(out / "clips/s__b.mp4")
    assert b_after.shape == b_before.shape
    b_record = json.loads((out / "run.json").read_text("utf-8"))["jobs"][1]
    assert b_record["key"] == api.plan(story).jobs[1].key != run["jobs"][1]["key"]  # it continues take 2 now
    film = read_frames(out / "film.mp4")
    assert len(film) == len(film_before) and not np.array_equal(film, film_before)
    assert np.array_equal(film[:17], takes[2])  # the cut starts with the picked take, frame for frame
    assert np.array_equal(film[17:22], b_after[:5])  # its last 3 frames crossfade into s/c
    assert json.loads((out / "run.json").read_text("utf-8"))["jobs"][0]["take"] == 2

    # metadata: every take, every clip and the film say how they were made
    tags = read_tags(out / "takes/s__a/take3.mp4")
    plan = api.plan(story)
    take3 = plan.jobs[0].for_take(3)
    assert tags["title"] == 'Takes <&> "quoted" — s/a take 3'
    assert (tags["comment"], tags["storyforge_prompt"]) == (take3.prompt, take3.prompt)
    assert (tags["storyforge_shot"], tags["storyforge_take"], tags["storyforge_seed"]) == ("s/a", "3",
                                                                                            str(take3.seed))
    assert (tags["storyforge_job_key"], tags["storyforge_version"]) == (take3.key, __version__)
    assert (story.parent / ".storyforge/cache" / tags["storyforge_cache_key"][:2] /
            tags["storyforge_cache_key"]).is_dir()
    assert read_tags(out / "clips/s__b.mp4")["storyforge_shot"] == "s/b"
    film_tags = read_tags(out / "film.mp4")
    assert film_tags["title"] == 'Takes <&> "quoted"' and film_tags["storyforge_version"] == __version__
    shots = json.loads(film_tags["storyforge_shots"])
    assert [(s["shot"], s["take"], s["seed"], s["job_key"]) for s in shots] == [
        (job.id, job.take, job.seed, job.key) for job in plan.jobs]

    # a third render changes nothing, and picking the same take again leaves the lock's bytes alone
    third = cli("render", "film.yaml", cwd=story.parent)
    assert "0 takes rendered, 6 cached" in third.stdout and "cut unchanged" in third.stdout
    assert cli("pick", "film.yaml", "s/a", "2", cwd=story.parent).returncode == 0
    assert (story.parent / "film.lock.json").read_text("utf-8") == lock_text


ANIMATIC = STORY.replace("model: tiny, resolution: 64x64, fps: 12", "resolution: 256x144, fps: 24")


def test_animatic_takes_differ_only_in_their_caption(write_story) -> None:
    story = write_story(ANIMATIC)
    out = story.parent / "renders" / "film"
    plan = api.plan(story)
    report = api.render(plan, backend="animatic")
    assert report.rendered == 6
    assert all(read_frames(out / f"takes/s__a/take{n}.mp4").shape == (17, 144, 256, 3) for n in (1, 2, 3))
    one, two = (Animatic().render(take, RenderInputs()) for take in plan.jobs[0].all_takes[:2])
    band = 144 - _band_height(144)  # where the caption band starts
    assert np.array_equal(one[:, :band], two[:, :band])
    assert not np.array_equal(one[:, band:], two[:, band:])
    # take 1 of a shot with takes is the shot without takes: its cache entry is kept when takes are added
    single = story.parent / "single.yaml"
    single.write_text(ANIMATIC.replace("render: {takes: 3}", "seed: 0").replace(
        "        render: {takes: 2}\n", ""), "utf-8")
    plan = api.plan(single)
    assert plan.jobs[2].key == api.plan(story).jobs[2].take_keys[0]


def test_picks_the_shot_no_longer_has_leave_no_stale_takes_behind(write_story) -> None:
    story = write_story(ANIMATIC)
    out = story.parent / "renders" / "film"
    api.render(api.plan(story), backend="animatic")
    manifest = json.loads((out / ".storyforge-out.json").read_text("utf-8"))["files"]
    assert {"review.html", "takes/s__a/take3.mp4", "review/s__a.take3.jpg", "clips/s__a.mp4"} <= set(manifest)
    (out / "takes/s__a/mine.mp4").write_bytes(b"not storyforge's")  # a user's files are never removed
    (out / "review/mine.jpg").write_bytes(b"not storyforge's")
    story.write_text(ANIMATIC.replace("render: {takes: 3}", "render: {takes: 2}"), "utf-8")
    report = api.render(api.plan(story), backend="animatic")
    assert report.rendered == 0
    assert (out / "takes/s__a/mine.mp4").read_bytes() == (out / "review/mine.jpg").read_bytes()
    (out / "takes/s__a/mine.mp4").unlink()
    assert sorted(p.relative_to(out).as_posix() for p in (out / "takes").rglob("*.mp4")) == [
        "takes/s__a/take1.mp4", "takes/s__a/take2.mp4", "takes/s__b/take1.mp4", "takes/s__c/take1.mp4",
        "takes/s__c/take2.mp4"]
    assert sorted(p.name.split(".")[:2] for p in (out / "review").iterdir() if p.name != "mine.jpg") == sorted(
        [job.id.replace("/", "__"), f"take{t.take}"] for job in api.plan(story).jobs for t in job.all_takes)


@pytest.mark.torch
@pytest.mark.slow
def test_torchrun_ranks_render_each_take_with_its_own_seed(write_story, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Rank 0 announces every take it renders; the other rank renders that take (its seed), not the pick."""
    pytest.importorskip("diffusers")
    from storyforge.backends.tiny import tiny_model_folder
    from storyforge.executors.ranks import CPU_VARIABLE
    from storyforge.render import render

    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", CPU_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STORYFORGE_HOME", str(tmp_path / "home"))
    tiny_model_folder()  # built once here: the ranks only load it
    story = write_story(STORY.split("      - id: b")[0].replace("render: {takes: 3}", "render: {takes: 2}"))
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "storyforge", "render", "film.yaml", "--backend", "skyreels-df", "--out", "two"],
                          capture_output=True, text=True, cwd=story.parent, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", CPU_VARIABLE: "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    render(api.plan(story), out=tmp_path / "one", backend="skyreels-df", cache_root=tmp_path / "cache")
    for n in (1, 2):  # the split adds up to the same pixels, take by take
        one = read_frames(tmp_path / "one" / f"takes/s__a/take{n}.mp4")
        two = read_frames(story.parent / "two" / f"takes/s__a/take{n}.mp4")
        assert abs(one.astype(int) - two.astype(int)).mean() < 0.5, n
    assert not np.array_equal(read_frames(tmp_path / "one/takes/s__a/take1.mp4"),
                              read_frames(tmp_path / "one/takes/s__a/take2.mp4"))
