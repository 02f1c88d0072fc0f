"""OpenTimelineIO export: round trips of the animatic and rendered timelines, exact durations, CLI, missing extra."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest

from storyforge import api
from storyforge.errors import MissingExtra
from storyforge.export_otio import export_otio
from storyforge.plan.model import Plan

otio = pytest.importorskip("opentimelineio")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "stories"

# Every kind of join: a first-shot fade, a continue, a crossfade, a cut and a fade through black, with odd
# transition lengths so the F // 2 splits are uneven.
TINY = """\
storyforge: 1
title: Tiny Cuts
render: {model: df-1.3b-540p, fps: 24, seed: 1}
scenes:
  - id: a
    shots:
      - {id: one, prompt: a red ball rolls, duration: 25f, transition: {type: fade, duration: 7f}}
      - {id: two, prompt: the ball stops, duration: 20f, transition: continue}
      - {id: three, prompt: a blue cube, duration: 29f, transition: {type: crossfade, duration: 9f}}
  - id: b
    shots:
      - {id: four, prompt: a green cone, duration: 21f}
      - {id: five, prompt: a yellow star, duration: 33f, transition: {type: fade, duration: 11f}}
"""


def _frames(time: otio.opentime.RationalTime, fps: int) -> int:
    value = time.rescaled_to(fps).value
    assert value == int(value), time
    return int(value)


def _read(path: Path) -> otio.schema.Timeline:
    timeline = otio.adapters.read_from_file(str(path))
    assert isinstance(timeline, otio.schema.Timeline)
    return timeline


def check_timeline(timeline: otio.schema.Timeline, plan: Plan) -> None:
    """The export contract, item by item, against the plan."""
    fps = plan.fps
    assert timeline.name == plan.title
    assert timeline.global_start_time == otio.opentime.RationalTime(0, fps)
    assert len(timeline.tracks) == 1
    track = timeline.tracks[0]
    assert track.name == plan.title and track.kind == otio.schema.TrackKind.Video
    assert _frames(timeline.duration(), fps) == plan.total_frames

    clips = list(track.find_clips())
    assert [clip.name for clip in clips] == [job.id for job in plan.jobs]
    items = list(track)
    for job, clip in zip(plan.jobs, clips, strict=True):
        data = clip.metadata["storyforge"]
        assert data["prompt"] == job.prompt and data["prompt"]
        assert (data["kind"], data["key"], data["seed"]) == (job.kind, job.key, job.seed)
        assert [w["latent_frames"] for w in data["segments"]] == [w.latent_frames for w in job.segments]
        assert data["settings"]["steps"] == job.settings.steps
        # The clip's media, and what the timeline shows of it with its transitions' handles, is the whole job.
        assert _frames(clip.visible_range().duration, fps) == job.frames
        assert clip.available_range() == otio.opentime.TimeRange(
            otio.opentime.RationalTime(0, fps), otio.opentime.RationalTime(job.frames, fps))
        # Frame k of the job plays at film frame start_frame + k, as in the stitched film.
        placed = track.range_of_child(clip).start_time - clip.source_range.start_time
        assert _frames(placed, fps) == job.start_frame, job.id

        index = items.index(clip)
        before = items[index - 1] if index else None
        kind, length = job.transition.type, job.transition.frames
        if kind in ("cut", "continue"):
            assert before is None or isinstance(before, otio.schema.Clip), job.id
            assert ("continues" in data) == (kind == "continue")
            if kind == "continue":
                assert data["continues"] == job.after
        elif kind == "crossfade":
            assert isinstance(before, otio.schema.Transition)
            assert before.transition_type == otio.schema.TransitionTypes.SMPTE_Dissolve
            assert (_frames(before.in_offset, fps), _frames(before.out_offset, fps)) == (length // 2,
                                                                                         length - length // 2)
            assert before.metadata["storyforge"]["type"] == "crossfade"
            # The dissolve covers the previous clip's last F frames and this clip's first F.
            assert _frames(track.range_of_child(before).start_time, fps) == job.start_frame
            assert _frames(track.range_of_child(before).duration, fps) == length
        else:
            assert kind == "fade"
            fade_in, gap = items[index - 1], items[index - 2]
            out_part, in_part = (0, length) if index == 2 else (length // 2, length - length // 2)
            assert isinstance(fade_in, otio.schema.Transition) and isinstance(gap, otio.schema.Gap)
            assert fade_in.transition_type == otio.schema.TransitionTypes.SMPTE_Dissolve
            assert (_frames(fade_in.in_offset, fps), _frames(fade_in.out_offset, fps)) == (in_part, 0)
            assert _frames(gap.duration(), fps) == length
            # The black filler spans the fade: the previous clip's last F // 2 frames and this clip's first rest.
            assert _frames(track.range_of_child(gap).start_time, fps) == job.start_frame - out_part
            if index == 2:
                assert items[0] is gap  # the film fades in from black
            else:
                fade_out = items[index - 3]
                assert isinstance(fade_out, otio.schema.Transition)
                assert (_frames(fade_out.in_offset, fps), _frames(fade_out.out_offset, fps)) == (0, out_part)
    # OTIO's own transition expansion accepts the layout (every transition has media on both sides).
    otio.algorithms.track_with_expanded_transitions(track)


def test_swan_lake_round_trip(tmp_path: Path) -> None:
    plan = api.plan(EXAMPLES / "swan-lake.yaml")
    written = export_otio(plan, tmp_path / "swan.otio")
    assert written == tmp_path / "swan.otio"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["swan.otio"]  # nothing else, no temp left behind
    timeline = _read(written)
    check_timeline(timeline, plan)
    assert timeline.metadata["storyforge"]["media"] == "plan"
    clips = list(timeline.find_clips())
    assert len(clips) == len(plan.jobs) == 7
    kinds = [type(item).__name__ for item in timeline.tracks[0]]
    assert kinds == ["Gap", "Transition", "Clip", "Clip", "Clip", "Transition", "Clip", "Clip", "Transition",
                     "Gap", "Transition", "Clip", "Transition", "Clip"]
    takeoff = plan.job("flight/takeoff")
    refs = {clip.name: clip.media_reference for clip in clips}
    # A shot with a start image shows it until rendered; the others have no media yet.
    assert refs["flight/takeoff"].target_url == takeoff.image.path.resolve().as_uri()
    assert isinstance(refs["dawn/glide"], otio.schema.MissingReference)


def test_synthetic_story_every_transition(write_story, tmp_path: Path) -> None:
    story = write_story(TINY)
    plan = api.plan(story)
    timeline = _read(export_otio(plan, tmp_path / "tiny.otio"))
    check_timeline(timeline, plan)
    assert plan.total_frames == 25 + 20 + 29 + 21 + 33 - 9 == 119
    layout = []
    for item in timeline.tracks[0]:
        if isinstance(item, otio.schema.Transition):
            layout.append(("T", int(item.in_offset.value), int(item.out_offset.value)))
        else:
            layout.append((item.name or "gap", int(item.source_range.start_time.value),
                           int(item.source_range.duration.value)))
    assert layout == [
        ("gap", 0, 7), ("T", 7, 0), ("a/one", 7, 18),  # fade in from black over 7
        ("a/two", 0, 15),  # continue: a plain cut; gives 5 = 9 - 9 // 2 frames of handle to the crossfade
        ("T", 4, 5), ("a/three", 4, 25),  # crossfade 9: 4 before the cut, 5 after
        ("b/four", 0, 16),  # cut; its last 11 // 2 = 5 frames darken into black
        ("T", 0, 5), ("gap", 0, 11), ("T", 6, 0), ("b/five", 6, 27),  # fade 11 = 5 out + 6 in
    ]
    assert sum(size for name, _, size in layout if name != "T") == plan.total_frames


def test_markers_at_window_boundaries(tmp_path: Path) -> None:
    plan = api.plan(EXAMPLES / "long-take-async.yaml")
    timeline = _read(export_otio(plan, tmp_path / "long.otio"))
    check_timeline(timeline, plan)
    markers = {clip.name: [int(m.marked_range.start_time.value) for m in clip.markers]
               for clip in timeline.find_clips()}
    climb, lamp = plan.jobs[0], plan.jobs[1]
    assert len(climb.segments) == 9 and lamp.kind == "extend"
    # 97 frames from the first window, then 80 new frames (20 new latents) per window after it.
    assert markers[climb.id] == [97 + 80 * k for k in range(8)]
    # An extension's first window starts at its first frame, conditioned on the end of the take before.
    assert markers[lamp.id] == [0, 80, 160]
    # the markers are the plan's segment start_frames: the one place seams are computed
    for job in plan.jobs:
        assert markers[job.id] == [w.start_frame for i, w in enumerate(job.segments) if i or job.kind == "extend"]


def _render_folder(plan: Plan, folder: Path, *, stale: str | None = None) -> dict[str, Path]:
    """A real output folder as render.py writes it: tiny H.264 clips of the planned lengths and run.json."""
    np = pytest.importorskip("numpy")
    from storyforge.clipfile import write_clip

    entries, clips = [], {}
    for index, job in enumerate(plan.jobs):
        relative = f"clips/{job.id.replace('/', '__')}.mp4"
        frames = np.full((job.frames, 16, 16, 3), 40 * index, dtype=np.uint8)
        (folder / "clips").mkdir(parents=True, exist_ok=True)
        write_clip(frames, folder / relative, fps=plan.fps)
        clips[job.id] = folder / relative
        key = "0" * 64 if job.id == stale else job.key
        entries.append({"id": job.id, "key": key, "status": "rendered", "clip": relative, "seconds": 0.1,
                        "started": 1.0, "finished": 1.1})
    run = {"storyforge_run": 1, "jobs": entries, "stitch_seconds": 0.0, "total_frames": plan.total_frames}
    (folder / "run.json").write_text(json.dumps(run), encoding="utf-8")
    return clips


def test_rendered_cut_references_the_clip_files(write_story, tmp_path: Path) -> None:
    story = write_story(TINY)
    plan = api.plan(story)
    renders = tmp_path / "renders" / "film"
    clips = _render_folder(plan, renders)
    written = api.export(story)  # finds renders/<stem>/ beside the story and writes film.otio there
    assert written == renders / "film.otio"
    timeline = _read(written)
    check_timeline(timeline, plan)
    assert timeline.metadata["storyforge"]["media"] == "render"
    for clip in timeline.find_clips():
        reference = clip.media_reference
        assert isinstance(reference, otio.schema.ExternalReference)
        assert reference.target_url == clips[clip.name].resolve().as_uri()
        assert Path(url2pathname(urlparse(reference.target_url).path)).is_file()
        assert clip.metadata["storyforge"]["run"]["status"] == "rendered"


def test_a_clip_of_another_key_is_not_used(write_story, tmp_path: Path) -> None:
    story = write_story(TINY)
    plan = api.plan(story)
    renders = tmp_path / "elsewhere"
    _render_folder(plan, renders, stale="a/three")
    timeline = _read(api.export(story, output=tmp_path / "cut.otio", render_dir=renders))
    check_timeline(timeline, plan)
    assert timeline.metadata["storyforge"]["media"] == "partial render"
    refs = {clip.name: clip.media_reference for clip in timeline.find_clips()}
    assert isinstance(refs["a/three"], otio.schema.MissingReference)
    assert isinstance(refs["a/one"], otio.schema.ExternalReference)


def test_without_a_render_the_default_is_beside_the_story(write_story, tmp_path: Path) -> None:
    story = write_story(TINY)
    (tmp_path / "renders" / "film").mkdir(parents=True)  # a render folder with no run.json is no render
    written = api.export(story)
    assert written == tmp_path / "film.otio"
    timeline = _read(written)  # held: metadata views die with their timeline
    assert timeline.metadata["storyforge"]["media"] == "plan"
    written.write_text("old", encoding="utf-8")
    api.export(story)  # replaces the file in place
    assert _read(written).name == "Tiny Cuts"


def test_unknown_format_is_a_clear_error(write_story) -> None:
    story = write_story(TINY)
    with pytest.raises(Exception, match="unknown export format 'edl'; use one of: otio"):
        api.export(story, format="edl")


def test_cli_export(story_dir: Path) -> None:
    story = story_dir / "swan-lake.yaml"
    story.write_text((EXAMPLES / "swan-lake.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    target = story_dir / "cut" / "film.otio"
    result = subprocess.run([sys.executable, "-m", "storyforge", "export", str(story), "--format", "otio",
                             "-o", str(target)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "521 frames" in result.stdout
    assert _frames(_read(target).duration(), 24) == 521
    bad = subprocess.run([sys.executable, "-m", "storyforge", "export", str(story), "--format", "edl"],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "otio" in bad.stderr


MISSING = ("export to OpenTimelineIO needs the Python package 'opentimelineio', which is not installed. "
           "Install it with: pip install 'storyforge[otio]'")


def test_missing_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    plan = api.plan(EXAMPLES / "swan-lake.yaml")
    monkeypatch.setitem(sys.modules, "opentimelineio", None)  # import now raises ImportError
    with pytest.raises(MissingExtra) as raised:
        export_otio(plan, tmp_path / "film.otio")
    assert str(raised.value) == MISSING
    assert (raised.value.package, raised.value.extra) == ("opentimelineio", "otio")
    assert not list(tmp_path.iterdir())


def test_missing_extra_on_the_command_line(story_dir: Path) -> None:
    story = story_dir / "swan-lake.yaml"
    story.write_text((EXAMPLES / "swan-lake.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    code = ("import sys; sys.modules['opentimelineio'] = None\n"
            f"sys.argv = ['storyforge', 'export', {str(story)!r}, '--format', 'otio']\n"
            "from storyforge.cli import main; main()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=story_dir)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: {MISSING}"]
    assert not (story_dir / "swan-lake.otio").exists()
