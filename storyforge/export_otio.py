"""Export to OpenTimelineIO: the plan as an animatic timeline, or the rendered cut, for finishing in an editor."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyforge.atomic import write_text
from storyforge.confined import Folder, Refused, held
from storyforge.errors import MissingExtra, StoryforgeError
from storyforge.readback import RunFile, read_run

if TYPE_CHECKING:
    import opentimelineio as otio

    from storyforge.plan.model import Job, Plan

# How the timeline is laid out (one video track, in film order):
#
#   cut / continue   A | B                          plain butt joins; a continue says so in B's metadata
#   crossfade F      A [T] B                        one SMPTE_Dissolve centred on the cut: in_offset = F // 2
#                                                   (before the cut, B's head handle), out_offset = F - F // 2
#                                                   (after it, A's tail handle), so the cut is F frames shorter
#   fade F           A [T1] Gap(F) [T2] B           the F fade frames become black filler; T1 dissolves A's last
#                                                   F // 2 frames into it (out_offset, A's tail handle), T2
#                                                   dissolves out of it into B's first F - F // 2 (in_offset,
#                                                   B's head handle); nothing overlaps, so the cut keeps a + b
#   first-shot fade  Gap(F) [T] B                   the film fades in from black over B's first F frames
#
# A dissolve against a Gap is OTIO's own spelling of a fade to or from black (its CMX 3600 adapter reads an EDL
# dissolve to "BL" that way), and editors show an empty track as black. Every item has a positive length and
# every transition frame lies in real media (the clips' handles), so importers never meet a zero-length filler
# or a dissolve into frames that do not exist. Each clip's visible range (trimmed range plus the handles its
# transitions use) is exactly the job's frames, and the track's duration is the plan's total_frames.

_DISSOLVE = "SMPTE_Dissolve"
_USABLE = ("rendered", "cached")  # run.json statuses whose clip is on disk and complete


def _import_otio() -> Any:
    try:
        import opentimelineio
    except ImportError:
        raise MissingExtra("opentimelineio", "otio", "export to OpenTimelineIO") from None
    return opentimelineio


def rendered_clips(plan: Plan, render_dir: Path | None) -> dict[str, Path]:
    """Job id -> its rendered clip in `render_dir`, for the jobs whose run.json entry has the plan's key."""
    return {job_id: clip for job_id, (clip, _) in _rendered(plan, render_dir).items()}


def _rendered(plan: Plan, render_dir: Path | None) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Job id -> (clip, run.json entry) for every job with a usable clip of the plan's key.

    A clip whose key differs was rendered from another version of the story, so it is never used; a job
    without a usable clip is exported as it would be without a render. run.json is read through the folder door
    (storyforge.readback): a clip is only a regular file below the render folder, never a link or a path out.
    """
    run, folder = _run_file(render_dir)
    if folder is None:
        return {}
    found: dict[str, tuple[Path, dict[str, Any]]] = {}
    with folder:
        for job in plan.jobs:
            line = run.job(job.id)
            if line is None or not job.key or line.key != job.key or line.status not in _USABLE or not line.clip:
                continue
            try:
                if folder.is_file(line.clip):
                    found[job.id] = (folder.path_of(line.clip), {"status": line.status, **line.raw})
            except Refused:
                continue  # a link on the way: not a clip of this render
    return found


def _run_file(render_dir: Path | None) -> tuple[RunFile, Folder | None]:
    """The render folder's run.json, checked, and the folder held (None when there is no usable render there)."""
    if render_dir is None:
        return RunFile(), None
    found = held(render_dir)
    try:
        # held by `export` (reached from the story's folder without following a link): a new descriptor of it
        folder = found[0].folder(found[1]) if found is not None else Folder.open(render_dir, below=render_dir)
    except (OSError, StoryforgeError):
        return RunFile(), None  # no render there, or not one we can read: the plan alone is still worth exporting
    run = read_run(folder)
    if not run.found:
        folder.close()
        return run, None
    return run, folder


@dataclass(frozen=True)
class _Joint:
    """How the timeline passes from one job to the next (or from black to the first)."""

    kind: str  # cut | continue | crossfade | fade
    frames: int
    before: int  # frames of the outgoing clip moved into its tail handle
    after: int  # frames of the incoming clip moved into its head handle


def _joint(job: Job, first: bool) -> _Joint:
    kind, n = job.transition.type, job.transition.frames
    if kind == "bridge":  # the bridge is its own clip just before this one: a plain cut in the timeline
        return _Joint("cut", 0, 0, 0)
    if kind in ("cut", "continue") or n <= 0:
        return _Joint(kind if kind == "continue" else "cut", 0, 0, 0)  # a zero-length dissolve is a cut
    if first:
        if kind != "fade":
            raise StoryforgeError(f"{job.id}: the first shot can only fade in, not {kind}")
        return _Joint(kind, n, 0, n)
    if kind == "crossfade":
        return _Joint(kind, n, n - n // 2, n // 2)
    if kind == "fade":
        return _Joint(kind, n, n // 2, n - n // 2)
    raise StoryforgeError(f"{job.id}: unknown transition {kind!r}; use cut, continue, crossfade or fade")


def _window_starts(job: Job) -> list[tuple[int, int, int]]:
    """(clip frame where a DF window's new frames begin, window number, prefix latents), for the markers.

    Every window after the first re-denoises the last latents of the one before as its conditioning prefix,
    so seams, colour drift and reference loss show up where its new frames begin (the plan's segment
    `start_frame`, placed as the pipelines place it). An extension's first window is one too: it begins at
    the clip's first frame, conditioned on the previous clip's end.
    """
    return [(window.start_frame, index, window.prefix_latents) for index, window in enumerate(job.segments)
            if (index or job.continues) and 0 <= window.start_frame < job.frames]


def _rt(otio_: Any, frames: int, fps: int) -> otio.opentime.RationalTime:
    return otio_.opentime.RationalTime(frames, fps)


def _range(otio_: Any, start: int, frames: int, fps: int) -> otio.opentime.TimeRange:
    return otio_.opentime.TimeRange(_rt(otio_, start, fps), _rt(otio_, frames, fps))


def _run_seams(plan: Plan, render_dir: Path | None, used: set[str]) -> dict[str, dict[int, dict[str, Any]]]:
    """Job id -> {clip frame: its line in run.json's `seams`}, for the jobs whose rendered clip is used."""
    run, folder = _run_file(render_dir)
    if folder is None:
        return {}
    folder.close()
    jobs = {job.id: job for job in plan.jobs}
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for line in run.seams:  # typed when read: frame an int, jump and color_shift numbers or None
        if line["job"] in used and line["job"] in jobs:
            job = jobs[line["job"]]
            frame = line["frame"] - job.start_frame
            if job.before is not None and frame >= job.frames:  # a bridge's arrival: the next clip's first frame
                if job.before in used:
                    found.setdefault(job.before, {})[0] = line
                continue
            found.setdefault(line["job"], {})[frame] = line
    return found


def _marker(otio_: Any, name: str, frame: int, fps: int, data: dict[str, Any], seam: dict[str, Any] | None) -> Any:
    """A marker at a clip frame; a measured seam adds its numbers to the name and metadata, red when visible."""
    from storyforge.seams import visible

    color = otio_.schema.MarkerColor.CYAN
    if seam is not None:
        data = {**data, "seam": seam}
        if seam.get("jump") is not None and seam.get("color_shift") is not None:
            name += f" — {seam['kind']} seam: jump {seam['jump']:.2f}, ΔE {seam['color_shift']:.2f}"
            if visible(seam):
                color = otio_.schema.MarkerColor.RED
    return otio_.schema.Marker(name=name, marked_range=_range(otio_, frame, 0, fps), color=color,
                               metadata={"storyforge": data})


def _clip(otio_: Any, plan: Plan, job: Job, head: int, tail: int, media: Path | None, run: dict[str, Any],
          seams: dict[int, dict[str, Any]] | None = None) -> Any:
    fps = plan.fps
    available = _range(otio_, 0, job.frames, fps)
    if media is not None:
        reference = otio_.schema.ExternalReference(target_url=media.as_uri(), available_range=available)
        source = "render"
    elif job.image is not None:
        # The shot's start image: an editor shows it as a still for the shot's length until the render exists.
        reference = otio_.schema.ExternalReference(
            target_url=Path(job.image.path).resolve().as_uri(), available_range=available
        )
        source = "start image"
    else:
        reference = otio_.schema.MissingReference(name=job.id, available_range=available)
        source = "plan"
    data = job.to_json()
    data["media"] = source
    if job.transition.type == "continue":
        data["continues"] = job.after
    if job.before is not None:
        data["leads_into"] = job.before
    if run:
        data["run"] = {k: run[k] for k in ("status", "seconds", "started", "finished") if k in run}
    clip = otio_.schema.Clip(
        name=job.id,
        media_reference=reference,
        source_range=_range(otio_, head, job.frames - head - tail, fps),
        metadata={"storyforge": data},
    )
    count = len(job.segments)
    measured = dict(seams or {})  # the render's numbers for this clip's seams, by clip frame
    for frame, index, prefix in _window_starts(job):
        clip.markers.append(_marker(otio_, f"DF window {index + 1}/{count}", frame, fps,
                                    {"window": index, "windows": count, "prefix_latents": prefix,
                                     "latent_frames": job.segments[index].latent_frames}, measured.pop(frame, None)))
    for frame, seam in sorted(measured.items()):  # a seam the render placed where no window marker is
        clip.markers.append(_marker(otio_, "seam", frame, fps, {}, seam))
    return clip


def _dissolve(otio_: Any, name: str, in_offset: int, out_offset: int, fps: int, data: dict[str, Any]) -> Any:
    """A dissolve: `in_offset` frames before the cut (the next item's head handle), `out_offset` after it."""
    return otio_.schema.Transition(
        name=name,
        transition_type=_DISSOLVE,
        in_offset=_rt(otio_, in_offset, fps),
        out_offset=_rt(otio_, out_offset, fps),
        metadata={"storyforge": data},
    )


def build_timeline(plan: Plan, *, render_dir: Path | None = None) -> Any:
    """The plan as an `opentimelineio.schema.Timeline`: rendered clips where they match, else the plan."""
    otio_ = _import_otio()
    fps = plan.fps
    rendered = _rendered(plan, render_dir)
    clips = {job_id: clip for job_id, (clip, _) in rendered.items()}
    runs = {job_id: entry for job_id, (_, entry) in rendered.items()}
    seams = _run_seams(plan, render_dir, set(clips))

    joints = [_joint(job, index == 0) for index, job in enumerate(plan.jobs)]
    track = otio_.schema.Track(name=plan.title, kind=otio_.schema.TrackKind.Video)
    for index, (job, joint) in enumerate(zip(plan.jobs, joints, strict=True)):
        following = joints[index + 1] if index + 1 < len(joints) else None
        spec = {"type": joint.kind, "frames": joint.frames, "into": job.id}
        if joint.kind == "fade":
            if index:
                previous = plan.jobs[index - 1].id
                if joint.before:
                    track.append(_dissolve(otio_, f"fade out {previous}", 0, joint.before, fps,
                                           {**spec, "part": "out", "from": previous}))
            track.append(otio_.schema.Gap(source_range=_range(otio_, 0, joint.frames, fps),
                                          metadata={"storyforge": {**spec, "part": "black"}}))
            track.append(_dissolve(otio_, f"fade in {job.id}", joint.after, 0, fps, {**spec, "part": "in"}))
        elif joint.kind == "crossfade":
            spec["from"] = plan.jobs[index - 1].id
            track.append(_dissolve(otio_, f"crossfade {joint.frames}f", joint.after, joint.before, fps, spec))
        tail = following.before if following is not None else 0
        track.append(_clip(otio_, plan, job, joint.after, tail, clips.get(job.id), runs.get(job.id, {}),
                           seams.get(job.id)))

    timeline = otio_.schema.Timeline(name=plan.title, global_start_time=_rt(otio_, 0, fps))
    timeline.tracks.append(track)
    media = "render" if len(clips) == len(plan.jobs) else ("partial render" if clips else "plan")
    timeline.metadata["storyforge"] = {
        "title": plan.title,
        "story": str(plan.story),
        "fps": fps,
        "width": plan.width,
        "height": plan.height,
        "total_frames": plan.total_frames,
        "media": media,
        "rendered_jobs": len(clips),
        "render_dir": str(Path(render_dir).resolve()) if clips and render_dir is not None else None,
    }
    frames = track.duration().rescaled_to(fps).value
    if round(frames) != plan.total_frames:  # an arithmetic bug here would shift every later cut in the editor
        raise RuntimeError(f"OTIO timeline is {frames} frames, the plan {plan.total_frames}")
    return timeline


def export_otio(plan: Plan, out: Path, *, render_dir: Path | None = None) -> Path:
    """Write the plan's timeline (the rendered cut where `render_dir` holds matching clips) to `out`."""
    otio_ = _import_otio()
    text = otio_.adapters.write_to_string(build_timeline(plan, render_dir=render_dir), "otio_json")
    out = Path(out)
    # Written beside the target and renamed: an editor watching the file never sees half of it.
    write_text(out, text)
    return out


def describe(path: Path) -> str:
    """One line on what an exported file holds, read from its metadata (no opentimelineio needed)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))["metadata"]["storyforge"]
    except (OSError, ValueError, KeyError, TypeError):
        return "an OpenTimelineIO timeline"
    frames, fps = data.get("total_frames"), data.get("fps")
    where = data.get("render_dir")
    what = {
        "render": f"the rendered cut from {where}",
        "partial render": f"rendered clips from {where} where they match the plan, the plan elsewhere",
    }.get(data.get("media"), "an animatic timeline of the plan (no matching render)")
    return f"{what}, {frames} frames at {fps} fps"
