"""Rendering: exact frame counts through the CLI, the cache (hits, edits, --only, --no-cache, corruption,
a killed run resumed), determinism, backend failures, the auto choice, and the real pipeline on `tiny`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, TINY, run_cli

from storyforge import api
from storyforge.backends.animatic import DELAY_VARIABLE, Animatic
from storyforge.backends.base import REGISTRY
from storyforge.clipfile import count_frames, read_frames
from storyforge.errors import RenderError, StoryforgeError
from storyforge.render import RunReport, choose_backend, fallback_notice, render

STORY = """\
storyforge: 1
title: Render
render: {resolution: 128x96, fps: 16, base_frames: 17, overlap_frames: 5}
scenes:
  - id: one
    shots:
      - id: a
        prompt: a red fox wakes up
        camera: slow push in
        duration: 17f
        transition: {type: fade, duration: 4f}
      - id: b
        prompt: the fox stretches
        duration: 12f
        transition: continue
  - id: two
    shots:
      - id: c
        prompt: the fox runs between the trees
        camera: pan left
        duration: 17f
        transition: {type: crossfade, duration: 4f}
      - id: d
        prompt: the fox sleeps
        image: refs/swan.png
        duration: 13f
        transition: {type: fade, duration: 6f}
"""
IDS = ["one/a", "one/b", "two/c", "two/d"]
TOTAL = 17 + 12 + 17 + 13 - 4  # the crossfade overlaps two/c with one/b
# take(s): DESIGN §8; rendered_by: §9
JOB_KEYS = {"id", "key", "status", "clip", "seconds", "started", "finished", "take", "takes", "rendered_by"}


def cli(*args: str, cwd: Path, env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess[str]:
    """`storyforge render ARGS` in this process (tests/conftest.run_cli)."""
    return run_cli("render", *args, cwd=cwd, env=env)


def statuses(out: Path) -> dict[str, str]:
    return {job["id"]: job["status"] for job in json.loads((out / "run.json").read_text())["jobs"]}


def entries(cache: Path) -> list[Path]:
    """The meta.json of every complete cache entry (not of staging folders under tmp/)."""
    return sorted(cache.glob("[0-9a-f][0-9a-f]/*/meta.json"))


def rendered(report: RunReport) -> list[str]:
    return [job.id for job in report.jobs if job.status == "rendered"]


def test_cli_renders_exact_frame_counts_and_the_run_manifest(write_story) -> None:
    story = write_story(STORY)
    done = cli(str(story), cwd=story.parent)
    assert done.returncode == 0, done.stderr
    out = story.parent / "renders" / "film"  # the default: renders/<story stem>/ beside the story
    plan = api.plan(story)
    run = json.loads((out / "run.json").read_text())
    assert {"jobs", "stitch_seconds", "total_frames"} <= set(run)
    assert isinstance(run["stitch_seconds"], float) and run["total_frames"] == plan.total_frames == TOTAL
    assert [job["id"] for job in run["jobs"]] == IDS
    for record, job in zip(run["jobs"], plan.jobs, strict=True):
        assert set(record) == JOB_KEYS
        clip = "clips/" + job.id.replace("/", "__") + ".mp4"
        assert (record["key"], record["status"], record["clip"]) == (job.key, "rendered", clip)
        assert record["started"] <= record["finished"] and record["seconds"] >= 0
        assert count_frames(out / record["clip"]) == job.frames
    assert count_frames(out / "film.mp4") == plan.total_frames
    assert (out / "plan.json").read_text() == plan.dumps()
    assert "no CUDA GPU here" in done.stderr

    film = (out / "film.mp4").stat().st_mtime_ns
    again = cli(str(story), cwd=story.parent)
    assert again.returncode == 0, again.stderr
    assert set(statuses(out).values()) == {"cached"}
    assert json.loads((out / "run.json").read_text())["stitch_seconds"] == 0.0  # the cut did not change either
    assert (out / "film.mp4").stat().st_mtime_ns == film
    assert "0 rendered, 4 cached" in again.stdout


def test_editing_a_prompt_renders_that_job_and_the_jobs_that_continue_it(write_story, tmp_path: Path) -> None:
    story = write_story(STORY)
    out = tmp_path / "out"
    assert rendered(render(api.plan(story), out=out, backend="animatic")) == IDS
    story.write_text(STORY.replace("a red fox wakes up", "a grey fox wakes up"))
    assert rendered(render(api.plan(story), out=out, backend="animatic")) == ["one/a", "one/b"]
    story.write_text(STORY.replace("a red fox wakes up", "a grey fox wakes up").replace("sleeps", "dreams"))
    report = render(api.plan(story), out=out, backend="animatic")
    assert rendered(report) == ["two/d"] and report.total_frames == TOTAL


def test_only_renders_the_shots_named_and_what_continues_them(write_story) -> None:
    story = write_story(STORY)
    out = story.parent / "out"
    done = cli(str(story), "--only", "one/b", "--out", str(out), cwd=story.parent)
    assert done.returncode == 0, done.stderr
    # one/b continues one/a, which was not cached: it is rendered too, and the run says so
    assert statuses(out) == {"one/a": "rendered", "one/b": "rendered"}
    assert "one/a was rendered too: a shot you asked for continues it" in done.stderr
    assert "film.mp4 was not cut: 2 shots have no clip yet (two/c, two/d)" in done.stderr
    assert not (out / "film.mp4").exists() and json.loads((out / "run.json").read_text())["film"] is None

    done = cli(str(story), "--only", "two", "--out", str(out), cwd=story.parent)  # a scene: all its shots
    assert done.returncode == 0, done.stderr
    assert statuses(out) == {"one/a": "cached", "one/b": "cached", "two/c": "rendered", "two/d": "rendered"}
    assert count_frames(out / "film.mp4") == TOTAL

    done = cli(str(story), "--only", "one/a,two/d", "--out", str(out), cwd=story.parent)
    assert set(statuses(out).values()) == {"cached"}


def test_only_an_unknown_id_lists_the_valid_ones(write_story) -> None:
    story = write_story(STORY)
    done = cli(str(story), "--only", "one/z", "--only", "three", cwd=story.parent)
    assert done.returncode == 1
    assert done.stderr.strip() == ("error: --only: no shot or scene called 'one/z', 'three'; valid ids: one, two, "
                                   "one/a, one/b, two/c, two/d")


def test_no_cache_renders_everything_and_leaves_the_cache_alone(write_story) -> None:
    story = write_story(STORY)
    out = story.parent / "out"
    render(api.plan(story), out=out, backend="animatic")
    cache = story.parent / ".storyforge" / "cache"
    before = {p: p.stat().st_mtime_ns for p in cache.rglob("*")}
    done = cli(str(story), "--no-cache", "--backend", "animatic", "--out", str(out), cwd=story.parent)
    assert done.returncode == 0, done.stderr
    assert set(statuses(out).values()) == {"rendered"}
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*")} == before
    listed = sorted(p.name for p in out.iterdir() if not p.name.startswith(".storyforge"))  # manifest and lock
    assert listed == ["clips", "film.mp4", "plan.json", "review", "review.html", "run.json",
                      "takes"]
    assert count_frames(out / "film.mp4") == TOTAL


def _entry(cache: Path, job_id: str) -> Path:
    return next(meta.parent for meta in entries(cache) if json.loads(meta.read_text())["job"] == job_id)


def test_a_corrupt_cache_entry_is_discarded_and_rendered_again(write_story, tmp_path: Path) -> None:
    story = write_story(STORY)
    cache, out = tmp_path / "cache", tmp_path / "out"
    render(api.plan(story), out=out, backend="animatic", cache_root=cache)
    clip = _entry(cache, "two/c") / "clip.mp4"
    clip.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    report = render(api.plan(story), out=out, backend="animatic", cache_root=cache)
    assert rendered(report) == ["two/c"]
    assert any("was discarded: its clip or meta changed" in n for n in report.notices)
    assert count_frames(out / "film.mp4") == TOTAL


def test_an_upstream_clip_that_does_not_decode_right_is_rendered_again_before_its_extension(
        write_story, tmp_path: Path) -> None:
    story = write_story(STORY)
    cache, out = tmp_path / "cache", tmp_path / "out"
    render(api.plan(story), out=out, backend="animatic", cache_root=cache)
    meta = _entry(cache, "one/a") / "meta.json"
    # an entry without a lossless tail (the extension decodes its clip), which promises a frame it lacks
    (meta.parent / "tail.npy").unlink()
    lines = {k: v for k, v in json.loads(meta.read_text()).items() if not k.startswith("tail_")}
    meta.write_text(json.dumps(dict(lines, frames=18)))
    story.write_text(STORY.replace("the fox stretches", "the fox yawns"))  # one/b must render: it decodes one/a
    report = render(api.plan(story), out=out, backend="animatic", cache_root=cache)
    assert rendered(report) == ["one/a", "one/b"]
    assert any("decodes to 17 frames, not 18" in n for n in report.notices)


def test_a_changed_neighbour_reencodes_a_cached_clip_instead_of_rendering_it(write_story, tmp_path: Path) -> None:
    story = write_story(STORY)
    cache, out = tmp_path / "cache", tmp_path / "out"
    render(api.plan(story), out=out, backend="animatic", cache_root=cache)
    assert json.loads((_entry(cache, "one/b") / "meta.json").read_text())["keyframes"] == [8]
    story.write_text(STORY.replace("{type: crossfade, duration: 4f}", "{type: crossfade, duration: 6f}"))
    report = render(api.plan(story), out=out, backend="animatic", cache_root=cache)
    # two/c and two/d moved on the timeline (the animatic burns in the timecode); one/b only needs a keyframe
    assert rendered(report) == ["two/c", "two/d"]
    assert "one/b: re-encoded its cached clip with sync frames at [6]" in report.notices[0]
    assert json.loads((_entry(cache, "one/b") / "meta.json").read_text())["keyframes"] == [6]
    assert count_frames(out / "film.mp4") == api.plan(story).total_frames == TOTAL - 2


def test_renders_are_deterministic(write_story, tmp_path: Path) -> None:
    story = write_story(STORY)
    first = render(api.plan(story), out=tmp_path / "a", backend="animatic", cache_root=tmp_path / "ca")
    second = render(api.plan(story), out=tmp_path / "b", backend="animatic", cache_root=tmp_path / "cb")
    assert rendered(first) == rendered(second) == IDS
    assert np.array_equal(read_frames(tmp_path / "a" / "film.mp4"), read_frames(tmp_path / "b" / "film.mp4"))
    for name in ("one__b.mp4", "two__d.mp4"):
        assert np.array_equal(read_frames(tmp_path / "a" / "clips" / name),
                              read_frames(tmp_path / "b" / "clips" / name))


def test_a_killed_render_resumes_with_only_the_missing_jobs(write_story, tmp_path: Path) -> None:
    story = write_story(STORY)
    cache, out = story.parent / ".storyforge" / "cache", story.parent / "renders" / "film"
    slow = subprocess.Popen([sys.executable, "-m", "storyforge", "render", str(story)], cwd=story.parent,
                            env={**os.environ, "PYTHONPATH": str(ROOT), DELAY_VARIABLE: "1.0"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(entries(cache)) and time.monotonic() < deadline:
        time.sleep(0.02)
    slow.send_signal(signal.SIGKILL)  # mid-way: the next job sleeps 1 s before its entry is written
    slow.wait()
    finished = sorted(json.loads(p.read_text())["job"] for p in entries(cache))
    assert 1 <= len(finished) < len(IDS), finished
    assert not (out / "film.mp4").exists()

    done = cli(str(story), cwd=story.parent)
    assert done.returncode == 0, done.stderr
    assert sorted(i for i, s in statuses(out).items() if s == "cached") == finished
    assert sorted(i for i, s in statuses(out).items() if s == "rendered") == sorted(set(IDS) - set(finished))
    assert list((cache / "tmp").iterdir()) == []  # what the killed writer left half done is swept

    whole = render(api.plan(story), out=tmp_path / "whole", backend="animatic", cache_root=tmp_path / "fresh")
    assert rendered(whole) == IDS
    assert np.array_equal(read_frames(out / "film.mp4"), read_frames(tmp_path / "whole" / "film.mp4"))


# Python as the `storyforge` script starts it, with Ctrl-C arriving while the command line is being imported
CTRL_C_WHILE_IMPORTING = (
    "import builtins, os, signal\n"
    "real = builtins.__import__\n"
    "def importing(name, *args, **kwargs):\n"
    "    if name == 'typer':  # the command line's first heavy import: the user presses Ctrl-C there\n"
    "        os.kill(os.getpid(), signal.SIGINT)\n"
    "    return real(name, *args, **kwargs)\n"
    "builtins.__import__ = importing\n"
    "from storyforge.launch import main\n"
    "main()\n")


@pytest.mark.parametrize("command", [["render", "film.yaml"], ["plan", "film.yaml"], ["--help"]])
def test_ctrl_c_while_the_command_line_starts_is_the_same_one_line(write_story, command: list[str]) -> None:
    story = write_story(STORY)
    done = subprocess.run([sys.executable, "-c", CTRL_C_WHILE_IMPORTING, *command], cwd=story.parent,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (
        130, "", "interrupted; finished work is kept and a new run resumes from it\n")
    assert not (story.parent / "renders").exists()


def test_ctrl_c_exits_130_and_keeps_the_finished_clips(write_story) -> None:
    story = write_story(STORY)
    cache = story.parent / ".storyforge" / "cache"
    slow = subprocess.Popen([sys.executable, "-m", "storyforge", "render", str(story)], cwd=story.parent,
                            env={**os.environ, "PYTHONPATH": str(ROOT), DELAY_VARIABLE: "1.0"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not entries(cache) and time.monotonic() < deadline:
        time.sleep(0.02)
    slow.send_signal(signal.SIGINT)
    stderr = slow.communicate(timeout=60)[1]
    assert slow.returncode == 130, stderr
    assert stderr.endswith("interrupted; finished work is kept and a new run resumes from it\n")
    assert "Traceback" not in stderr
    kept = [json.loads(p.read_text())["job"] for p in entries(cache)]
    assert kept and list((cache / "tmp").iterdir()) == []
    assert cli(str(story), cwd=story.parent).returncode == 0
    assert sorted(i for i, s in statuses(story.parent / "renders" / "film").items() if s == "cached") == sorted(kept)


class Flaky(Animatic):
    """The animatic, failing on one shot the way a real backend can."""

    name = "flaky"
    failure: BaseException | None = None

    def identity(self, job):  # type: ignore[no-untyped-def]
        return {**super().identity(job), "backend": self.name}

    def frames(self, job, inputs):  # type: ignore[no-untyped-def]
        if job.id == "two/c" and Flaky.failure is not None:
            raise Flaky.failure
        return super().frames(job, inputs)


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(REGISTRY, "flaky", f"{__name__}:Flaky")
    yield Flaky
    Flaky.failure = None


@pytest.mark.parametrize(("failure", "raised", "message"), [
    (RenderError("two/c: the model files are missing"), RenderError, "two/c: the model files are missing"),
    (MemoryError("cannot allocate"), RenderError, "two/c: out of memory while rendering (cannot allocate)"),
    (FileNotFoundError("no such model"), RenderError, "two/c: rendering failed: no such model"),
    (KeyboardInterrupt(), KeyboardInterrupt, ""),
])  # fmt: skip
def test_a_failing_job_keeps_the_finished_ones(write_story, tmp_path: Path, flaky, failure, raised, message) -> None:
    story = write_story(STORY)
    cache, out = tmp_path / "cache", tmp_path / "out"
    flaky.failure = failure
    with pytest.raises(raised) as caught:
        render(api.plan(story), out=out, backend="flaky", cache_root=cache)
    assert str(caught.value).startswith(message)
    assert sorted(json.loads(p.read_text())["job"] for p in entries(cache)) == ["one/a", "one/b"]
    assert list((cache / "tmp").iterdir()) == []
    flaky.failure = None
    assert rendered(render(api.plan(story), out=out, backend="flaky", cache_root=cache)) == ["two/c", "two/d"]


def test_progress_hears_every_job_and_its_steps(write_story, tmp_path: Path) -> None:
    events: list[tuple[object, ...]] = []

    class Recorder:
        def job_started(self, index, count, job):  # type: ignore[no-untyped-def]
            events.append(("start", index, count, job.id))

        def step(self, step, total):  # type: ignore[no-untyped-def]
            events.append(("step", step, total))

        def job_finished(self, job, status, seconds):  # type: ignore[no-untyped-def]
            events.append(("done", job.id, status))

    render(api.plan(write_story(STORY)), out=tmp_path / "out", backend="animatic", progress=Recorder())
    assert [e for e in events if e[0] != "step"] == [
        event for n, i in enumerate(IDS, start=1) for event in (("start", n, 4, i), ("done", i, "rendered"))]
    assert ("step", 17, 17) in events and ("step", 12, 12) in events


def test_auto_is_the_model_with_cuda_or_tiny_and_the_animatic_otherwise(write_story, monkeypatch) -> None:
    import storyforge.render as module

    plan = api.plan(write_story(STORY))
    monkeypatch.setattr(module, "cuda_available", lambda: False)
    name, notice = choose_backend(plan, "auto")
    assert name == "animatic" and notice is not None and notice.startswith("no CUDA GPU here, so this is an animatic")
    assert choose_backend(api.plan(plan.story, {"model": "tiny"}), "auto") == ("skyreels-df", None)
    assert choose_backend(plan, "animatic") == ("animatic", None)
    with pytest.raises(StoryforgeError, match="unknown backend 'nope'; choose one of: auto, animatic, skyreels-df"):
        choose_backend(plan, "nope")
    monkeypatch.setattr(module, "cuda_available", lambda: True)
    assert choose_backend(plan, "auto") == ("skyreels-df", None)


def test_looking_for_cuda_imports_torch_only_where_a_gpu_driver_is() -> None:
    code = "import sys; from storyforge.render import cuda_available; print(cuda_available(), 'torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    driver = any(Path(p).exists() for p in ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/kfd"))
    if not driver:
        assert done.stdout.split() == ["False", "False"]


@pytest.mark.torch
def test_the_tiny_model_renders_through_auto_with_exact_frame_counts(write_story, tmp_path: Path) -> None:
    plan = api.plan(write_story(TINY))
    out = tmp_path / "out"
    report = render(plan, out=out, backend="auto", cache_root=tmp_path / "cache")
    assert report.backend == "skyreels-df" and rendered(report) == ["s/a", "s/b", "s/c"]
    for job in plan.jobs:
        assert count_frames(out / "clips" / (job.id.replace("/", "__") + ".mp4")) == job.frames
    assert count_frames(out / "film.mp4") == plan.total_frames == 17 + 8 + 13 - 3
    assert set(statuses(out).values()) == {"rendered"}
    assert rendered(render(plan, out=out, backend="auto", cache_root=tmp_path / "cache")) == []



# -- --only leaves no stale film --------------------------------------------------------------------------------------

SMALL = """\
storyforge: 1
title: Small
render: {resolution: 64x48, fps: 24, base_frames: 17, overlap_frames: 5}
scenes:
  - id: s
    shots:
      - id: a
        prompt: a red fox
        duration: 13f
      - id: b
        prompt: a grey fox
        duration: 9f
      - id: c
        prompt: a white fox
        duration: 9f
"""


def test_render_only_removes_the_film_and_clips_it_leaves_out_of_date(write_story, story_dir: Path) -> None:
    pytest.importorskip("av")
    story = write_story(SMALL)
    first = run_cli("render", "film.yaml", "--backend", "animatic", cwd=story_dir)
    assert first.returncode == 0, first.stderr
    out = story_dir / "renders" / "film"
    assert (out / "film.mp4").is_file() and (out / "clips" / "s__c.mp4").is_file()
    story.write_text(SMALL.replace("a red fox", "a red fox, running").replace("a white fox", "a white fox, asleep"))
    again = run_cli("render", "film.yaml", "--backend", "animatic", "--only", "s/a", cwd=story_dir)
    assert again.returncode == 0, again.stderr
    assert "note: film.mp4 was not cut: 1 shot has no clip yet (s/c); render without --only to make them; " \
           "removed the out-of-date film.mp4, clips/s__c.mp4" in again.stderr.splitlines()
    assert not (out / "film.mp4").exists() and not (out / "clips" / "s__c.mp4").exists()
    assert (out / "clips" / "s__a.mp4").is_file() and (out / "clips" / "s__b.mp4").is_file()
    run = json.loads((out / "run.json").read_text())
    assert run["film"] is None and run["notices"][-1].startswith("film.mp4 was not cut: 1 shot has no clip yet")
    last = run_cli("render", "film.yaml", "--backend", "animatic", cwd=story_dir)
    assert last.returncode == 0 and (out / "film.mp4").is_file()


# -- a GPU without torch ----------------------------------------------------------------------------------------------

def test_auto_says_what_to_install_when_a_gpu_has_no_torch() -> None:
    preview = ("an animatic preview (title cards or start images, camera moves, captions, timecode) at the planned "
               "frame counts")
    assert fallback_notice(torch_installed=False, gpu_driver=True) == (
        f"this machine has a GPU driver but torch is not installed, so this is {preview}; to render the model's "
        "video, install the render extra: pip install 'storyforge[render]' (PyPI's torch for Linux is built for "
        "CUDA)")
    assert fallback_notice(torch_installed=True, gpu_driver=True) == (
        f"torch is installed but sees no CUDA GPU (a CPU-only build of torch?), so this is {preview}; install a "
        "CUDA build of torch (https://pytorch.org/get-started/locally/) to render the model's video")
    expected = f"no CUDA GPU here, so this is {preview}; render on a machine with CUDA for the model's video"
    assert fallback_notice(torch_installed=False, gpu_driver=False) == expected
    assert fallback_notice(torch_installed=True, gpu_driver=False) == expected
